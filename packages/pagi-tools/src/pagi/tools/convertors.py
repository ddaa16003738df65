"""Path parameter convertors: ``{id:int}``, ``{rest:path}``, ``{key:uuid}``...

A convertor has a regex (what the segment may look like), ``convert``
(text -> value for the handler) and ``to_string`` (value -> text for
``url_path_for``). Register your own with :func:`register_convertor`.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, ClassVar

__all__ = [
    "CONVERTORS",
    "Convertor",
    "FloatConvertor",
    "IntConvertor",
    "PathConvertor",
    "StringConvertor",
    "UUIDConvertor",
    "register_convertor",
]


class Convertor:
    """Base class: subclasses set ``regex`` and override the two methods."""

    regex: ClassVar[str] = "[^/]+"

    def convert(self, value: str) -> Any:
        """Turn the matched text into the value handlers receive."""
        return value

    def to_string(self, value: Any) -> str:
        """Turn a value back into path text (before percent-encoding)."""
        return str(value)


class StringConvertor(Convertor):
    """One non-empty path segment (the default)."""

    def to_string(self, value: Any) -> str:
        text = str(value)
        if not text:
            raise ValueError("a path segment cannot be empty")
        return text


class PathConvertor(Convertor):
    """The rest of the path, slashes included (may be empty)."""

    regex = ".*"


class IntConvertor(Convertor):
    """A non-negative decimal integer."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: Any) -> str:
        number = int(value)
        if number < 0:
            raise ValueError(f"{number} does not fit an int path parameter (non-negative only)")
        return str(number)


class FloatConvertor(Convertor):
    """A non-negative decimal number, ``1`` or ``1.5``."""

    regex = r"[0-9]+(?:\.[0-9]+)?"

    def convert(self, value: str) -> float:
        return float(value)

    def to_string(self, value: Any) -> str:
        number = float(value)
        if number < 0 or not math.isfinite(number):
            raise ValueError(f"{number} does not fit a float path parameter")
        return f"{number:.15g}" if "e" not in f"{number:.15g}" else f"{number:f}"


class UUIDConvertor(Convertor):
    """A UUID in its canonical 8-4-4-4-12 hex form."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: Any) -> str:
        return str(uuid.UUID(str(value)))


#: The registry consulted by route patterns.
CONVERTORS: dict[str, Convertor] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}


def register_convertor(name: str, convertor: Convertor) -> None:
    """Make ``{param:name}`` available in route patterns compiled from now on."""
    CONVERTORS[name] = convertor
