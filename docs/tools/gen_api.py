"""Regenerate docs/tools/api.md from the docstrings of pagi.tools.

Run from the repository root: ``uv run python docs/tools/gen_api.py``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

MODULES = [
    "pagi.tools.request",
    "pagi.tools.response",
    "pagi.tools.fileresponse",
    "pagi.tools.websocket",
    "pagi.tools.sse",
    "pagi.tools.routing",
    "pagi.tools.handlers",
    "pagi.tools.context",
    "pagi.tools.convertors",
    "pagi.tools.endpoints",
    "pagi.tools.lifespan",
    "pagi.tools.headers",
    "pagi.tools.datastructures",
    "pagi.tools.cookies",
    "pagi.tools.negotiation",
    "pagi.tools.conditional",
    "pagi.tools.forms",
    "pagi.tools.multipart_stream",
    "pagi.tools.exceptions",
    "pagi.tools.middleware",
    "pagi.tools.middleware.lint",
    "pagi.tools.middleware.base",
    "pagi.tools.exception_handlers",
    "pagi.tools.background",
    "pagi.tools.apps.file",
    "pagi.tools.apps.directory",
    "pagi.tools.apps.not_found",
    "pagi.tools.apps.redirect",
    "pagi.tools.apps.urlmap",
    "pagi.tools.apps.cascade",
    "pagi.tools.channels",
    "pagi.tools.channels_redis",
    "pagi.tools.apps.sse_pubsub",
    "pagi.tools.apps.websocket_broadcast",
    "pagi.tools.apps.websocket_chat",
    "pagi.tools.apps.websocket_echo",
    "pagi.tools.apps.throttle",
    "pagi.tools.apps.healthcheck",
    "pagi.tools.apps.loader",
    "pagi.tools.testing.client",
    "pagi.tools.testing.sync",
    "pagi.tools.testing.response",
    "pagi.tools.testing.http",
    "pagi.tools.testing.websocket",
    "pagi.tools.testing.sse",
    "pagi.tools.testing.lifespan",
    "pagi.tools.testing.connection",
    "pagi.tools.testing.cookies",
]

INTRO = [
    "# pagi.tools API reference",
    "",
    "Generated from the modules' docstrings by `uv run python docs/tools/gen_api.py`",
    "(rerun it after changing a public name). The most used names are re-exported",
    "from `pagi.tools`; the test client and its doubles from `pagi.tools.testing`.",
    "",
]


def signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def first_line(obj: Any) -> str:
    text = inspect.getdoc(obj) or ""
    return text.splitlines()[0] if text else ""


def describe_class(name: str, cls: type) -> list[str]:
    shown = "" if issubclass(cls, BaseException) else signature(cls)
    lines = [f"### class `{name}{shown}`", "", inspect.getdoc(cls) or "", ""]
    for attr, member in cls.__dict__.items():
        if attr.startswith("_") and attr not in ("__call__", "__aiter__"):
            continue
        if isinstance(member, property):
            lines.append(f"- `{attr}` (property): {first_line(member)}")
        elif isinstance(member, (classmethod, staticmethod)):
            func = member.__func__
            lines.append(f"- `{attr}{signature(func)}`: {first_line(func)}")
        elif inspect.isfunction(member):
            lines.append(f"- `{attr}{signature(member)}`: {first_line(member)}")
    lines.append("")
    return lines


def describe(name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        return describe_class(name, obj)
    if inspect.isfunction(obj):
        return [f"### `{name}{signature(obj)}`", "", inspect.getdoc(obj) or "", ""]
    if isinstance(obj, dict):
        return [f"### `{name}`", "", f"A registry with keys {sorted(obj)}.", ""]
    if isinstance(obj, (set, frozenset)):
        # Sorted: a set's repr order changes from one interpreter run to the next.
        return [f"### `{name}`", "", f"A set: {sorted(obj)!r}.", ""]
    return [f"### `{name}`", "", f"`{obj!r}`"[:300], ""]


def render() -> str:
    """The text of docs/tools/api.md for the code as it is now."""
    out = list(INTRO)
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        out += [f"## `{module_name}`", "", inspect.getdoc(module) or "", ""]
        for public in getattr(module, "__all__", []):
            out += describe(public, getattr(module, public))
    return "\n".join(out).replace("\n\n\n", "\n\n")


def main() -> None:
    Path(__file__).with_name("api.md").write_text(render())


if __name__ == "__main__":
    main()
