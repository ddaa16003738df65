"""An app that answers every scope with "not found" in that scope's terms."""

from __future__ import annotations

from collections.abc import Callable

from pagi.spec import Receive, Scope, Send
from pagi.tools.response import Response

__all__ = ["NotFound"]


class NotFound:
    """404 (or ``status``) with ``body``, which may be a function of the scope.

    On a websocket scope this denies the handshake and on an sse scope it
    declines the stream (see :class:`~pagi.tools.response.Response`).
    """

    def __init__(
        self,
        body: str | Callable[[Scope], str] = "Not Found",
        *,
        status: int = 404,
        media_type: str = "text/plain",
    ) -> None:
        self.body = body
        self.status = status
        self.media_type = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            raise TypeError("NotFound does not handle lifespan")
        body = self.body(scope) if callable(self.body) else self.body
        await Response(body, self.status, media_type=self.media_type)(scope, receive, send)
