"""Which request paths a middleware applies to (its ``paths=`` option).

``None`` means every path. Otherwise a list of prefixes and patterns: a
string ``"/admin"`` covers ``/admin`` and everything under ``/admin/`` (not
``/administrator``); a compiled ``re.Pattern`` must match the whole path.
The path tested is the full one, ``root_path + path``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pagi.tools.middleware.base import OptionError

__all__ = ["PathMatcher"]


class PathMatcher:
    """``PathMatcher("BasicAuth", "paths", ["/admin", re.compile(r"/api/v\\d+/.*")])``."""

    __slots__ = ("everything", "patterns", "prefixes")

    def __init__(
        self, owner: str, option: str, paths: Iterable[str | re.Pattern[str]] | None
    ) -> None:
        self.everything = paths is None
        self.prefixes: tuple[str, ...] = ()
        self.patterns: tuple[re.Pattern[str], ...] = ()
        if paths is None:
            return
        if isinstance(paths, str):
            raise OptionError(owner, option, "must be a list of paths, not one string")
        prefixes, patterns = [], []
        for item in paths:
            if isinstance(item, re.Pattern):
                patterns.append(item)
            elif isinstance(item, str) and item.startswith("/"):
                prefixes.append(item.rstrip("/") or "/")
            else:
                raise OptionError(
                    owner, option, f"has {item!r}; use '/prefixes' or re.compile(...) patterns"
                )
        self.prefixes = tuple(prefixes)
        self.patterns = tuple(patterns)

    def matches(self, scope: dict[str, Any] | Any) -> bool:
        """True if the middleware applies to this scope's path."""
        if self.everything:
            return True
        path = str(scope.get("root_path", "")) + str(scope.get("path", "/"))
        for prefix in self.prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return True
        return any(p.fullmatch(path) for p in self.patterns)
