"""ContentLength: add ``Content-Length`` to responses sent as one body without it.

Only a response whose whole body arrives in one ``bytes`` event is held
(:func:`~pagi.tools.middleware.base.buffer_response`); streamed and file
bodies pass through as they are, so nothing streamed waits.
"""

from __future__ import annotations

from pagi.spec import App, Scope, Send
from pagi.tools.middleware.base import Middleware, ResponseStart, buffer_response

__all__ = ["ContentLength"]


class ContentLength(Middleware):
    """``ContentLength(app)``: set ``Content-Length`` on single-body responses that lack it."""

    def __init__(self, app: App) -> None:
        super().__init__(app)

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        if scope.get("method") == "HEAD":
            return send  # a HEAD body is empty whatever the length of the GET body
        return buffer_response(send, _set_length, accept=_lacks_length)


def _lacks_length(start: ResponseStart) -> bool:
    return start.status not in (204, 304) and "content-length" not in start.headers


def _set_length(start: ResponseStart, body: bytes) -> bytes:
    start.headers["content-length"] = str(len(body))
    return body
