"""The development error page: an exception as escaped HTML or as JSON.

``ErrorHandler(app, debug=True)`` answers an unhandled exception with this
page. Every frame shows its file, line, function, the source line and its
local variables; each frame is a ``<details>`` element (the innermost,
where the error was raised, starts open). Chained exceptions (``raise ...
from``, or raised while handling another) are listed after the main one.
Everything that came from the program -- messages, source, ``repr`` of
locals -- goes through :func:`html.escape`; a ``repr`` that fails or runs
long is replaced or cut, so the page itself cannot fail on odd objects.
"""

from __future__ import annotations

import html
import linecache
import reprlib
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = ["exception_chain", "frames", "render_html", "render_json", "safe_repr"]

_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 20
_MAX_LOCALS = 50


def safe_repr(value: object) -> str:
    """``repr(value)`` cut to a readable length; never raises."""
    try:
        return _REPR.repr(value)
    except Exception as exc:  # a broken __repr__ must not break the error page
        return f"<repr failed: {type(exc).__name__}>"


def frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    """One dict per frame, outermost first: file, line, function, code, locals (as reprs)."""
    out: list[dict[str, Any]] = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        local_items = list(frame.f_locals.items())[:_MAX_LOCALS]
        out.append(
            {
                "file": code.co_filename,
                "line": lineno,
                "function": code.co_name,
                "code": linecache.getline(code.co_filename, lineno).strip(),
                "locals": {name: safe_repr(value) for name, value in local_items},
            }
        )
    return out


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` then its causes/contexts, newest first, without cycles."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain


def _describe(exc: BaseException) -> dict[str, Any]:
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "message": str(exc),
        "frames": frames(exc.__traceback__),
    }


def render_json(exc: BaseException) -> dict[str, Any]:
    """The exception (and its chain) as JSON-ready data."""
    chain = exception_chain(exc)
    described = _describe(chain[0])
    described["chain"] = [_describe(e) for e in chain[1:]]
    return {"error": described}


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#8b1a1a;color:#fff;padding:16px 24px}
header h1{margin:0;font-size:20px}header p{margin:6px 0 0;white-space:pre-wrap}
main{padding:16px 24px}
details{background:#fff;border:1px solid #ddd;border-radius:4px;margin:6px 0}
summary{cursor:pointer;padding:6px 10px;font-family:ui-monospace,monospace}
pre{margin:0;padding:6px 10px;background:#f3f3f3;overflow-x:auto}
table{border-collapse:collapse;margin:6px 10px 10px}
td{border-top:1px solid #eee;padding:2px 8px;vertical-align:top;font-family:ui-monospace,monospace}
td:first-child{color:#555}h2{font-size:16px;margin:18px 0 6px}
"""


def _frames_html(items: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for index, frame in enumerate(items):
        opened = " open" if index == len(items) - 1 else ""
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
            for name, value in frame["locals"].items()
        )
        parts.append(
            f'<details class="frame"{opened}><summary>{html.escape(frame["file"])}:'
            f"{frame['line']} in <b>{html.escape(frame['function'])}</b></summary>"
            f"<pre>{html.escape(frame['code'])}</pre>"
            + (f"<table>{rows}</table>" if rows else "")
            + "</details>"
        )
    return "".join(parts)


def render_html(exc: BaseException, request: Mapping[str, str] | None = None) -> str:
    """A full HTML page for ``exc``; ``request`` adds a table (method, path, headers...)."""
    data = render_json(exc)["error"]
    title = html.escape(data["type"])
    body = [
        f"<header><h1>{title}</h1><p>{html.escape(data['message'])}</p></header><main>",
        "<h2>Traceback (most recent call last)</h2>",
        _frames_html(data["frames"]),
    ]
    for link in data["chain"]:
        body.append(
            f"<h2>While handling or caused by: {html.escape(link['type'])}: "
            f"{html.escape(link['message'])}</h2>"
        )
        body.append(_frames_html(link["frames"]))
    if request:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in request.items()
        )
        body.append(f"<h2>Request</h2><table>{rows}</table>")
    body.append("</main>")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )
