"""Head: answer HEAD with the app's GET response, headers kept, body dropped.

The app sees a scope copy with ``method`` ``GET`` (and
``pagi.original_method`` ``HEAD``). Its start goes out unchanged, except
that trailers are not announced; its first body event becomes one empty
final body and every later body or trailers event is dropped.
"""

from __future__ import annotations

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, copy_scope

__all__ = ["Head"]


class Head(Middleware):
    """``Head(app)``: serve HEAD from GET handlers."""

    def __init__(self, app: App) -> None:
        super().__init__(app)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return
        body_sent = False

        async def headless_send(event: Event) -> None:
            nonlocal body_sent
            kind = event.get("type")
            if kind == "http.response.start":
                event = {k: v for k, v in event.items() if k != "trailers"}
                await send(event)
            elif kind in ("http.response.body", "http.response.trailers"):
                if not body_sent:
                    body_sent = True
                    await send({"type": "http.response.body", "body": b""})
            else:
                await send(event)

        get_scope = copy_scope(scope, {"pagi.original_method": "HEAD"}, method="GET")
        await self.app(get_scope, receive, headless_send)
