"""DebugPanel: an HTML panel about the request, injected into HTML pages (development only).

When ``enabled`` (off by default; a bool or ``enabled(scope) -> bool``), a
``text/html`` response sent as one body (and not content-encoded) gets a
fixed panel before ``</body>``: the time to the response, the request line,
client, request headers, response status and headers, and the scope's keys
with short ``repr`` values. Every value is HTML-escaped. Streams and file
bodies are left alone.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any

from pagi.spec import App, Scope, Send
from pagi.tools.debug_page import safe_repr
from pagi.tools.middleware.base import Middleware, OptionError, ResponseStart, buffer_response

__all__ = ["DebugPanel"]

_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)
_STYLE = (
    "#pagi-debug{position:fixed;bottom:0;right:0;max-width:48em;max-height:60vh;overflow:auto;"
    "z-index:2147483647;background:#fff;color:#222;border:1px solid #888;font:12px/1.4 "
    "ui-monospace,monospace;padding:4px 8px}#pagi-debug table{border-collapse:collapse}"
    "#pagi-debug td{border-top:1px solid #eee;padding:1px 6px;vertical-align:top}"
)


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


class DebugPanel(Middleware):
    """``DebugPanel(app, enabled=False)``: inject a request panel into HTML responses."""

    def __init__(self, app: App, enabled: bool | Callable[[Scope], bool] = False) -> None:
        super().__init__(app)
        if not isinstance(enabled, bool) and not callable(enabled):
            raise OptionError(
                "DebugPanel", "enabled", f"must be a bool or callable, got {enabled!r}"
            )
        self.enabled = enabled

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        on = self.enabled if isinstance(self.enabled, bool) else bool(self.enabled(scope))
        if not on or scope.get("method") == "HEAD":
            return send
        began = time.perf_counter()

        def finish(start: ResponseStart, body: bytes) -> bytes:
            panel = self.panel(scope, start, (time.perf_counter() - began) * 1000).encode()
            ends = list(_BODY_END.finditer(body))
            cut = ends[-1].start() if ends else len(body)
            body = body[:cut] + panel + body[cut:]
            if "content-length" in start.headers:
                start.headers["content-length"] = str(len(body))
            return body

        return buffer_response(send, finish, accept=_is_plain_html)

    def panel(self, scope: Scope, start: ResponseStart, elapsed_ms: float) -> str:
        """The panel's HTML (every value escaped)."""
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        client = scope.get("client")
        request = [
            ("time", f"{elapsed_ms:.2f} ms to the response"),
            (
                "request",
                f"{scope.get('method')} {scope.get('path')}" + (f"?{query}" if query else ""),
            ),
            ("client", f"{client[0]}:{client[1]}" if client else "-"),
            ("status", str(start.status)),
        ]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        response = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.headers.raw]
        skipped = {"headers"}
        scope_rows: list[tuple[str, str]] = [
            (str(k), safe_repr(v)) for k, v in scope.items() if k not in skipped
        ]
        sections: list[tuple[str, Any]] = [
            ("Request", request),
            ("Request headers", headers),
            ("Response headers", response),
            ("Scope", scope_rows),
        ]
        body = "".join(
            f"<details><summary>{html.escape(title)}</summary>{_table(rows)}</details>"
            for title, rows in sections
        )
        return f'<style>{_STYLE}</style><div id="pagi-debug"><b>PAGI debug</b>{body}</div>'


def _is_plain_html(start: ResponseStart) -> bool:
    kind = (start.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return kind == "text/html" and "content-encoding" not in start.headers
