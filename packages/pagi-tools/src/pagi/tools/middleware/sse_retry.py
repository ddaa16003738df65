"""SSERetry: tell EventSource clients how long to wait before reconnecting.

On ``sse`` scopes the ``retry`` field (milliseconds) is added to the first
``sse.send`` after ``sse.start`` (``on_start``) and/or to every ``sse.send``
that lacks one (``on_events``); an event that sets its own ``retry`` keeps
it. (A retry hint cannot travel alone: ``sse.send`` needs ``data``, and an
empty ``data`` line would reach the page's ``onmessage``.) The value is in
the scope copy as ``pagi.sse.retry``.
"""

from __future__ import annotations

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError, copy_scope

__all__ = ["SSERetry"]


class SSERetry(Middleware):
    """``SSERetry(app, retry_ms=3000, on_start=True, on_events=False)``."""

    scope_types = ("sse",)

    def __init__(
        self, app: App, retry_ms: int = 3000, on_start: bool = True, on_events: bool = False
    ) -> None:
        super().__init__(app)
        if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
            raise OptionError("SSERetry", "retry_ms", f"must be an int >= 0, got {retry_ms!r}")
        for name, value in (("on_start", on_start), ("on_events", on_events)):
            if not isinstance(value, bool):
                raise OptionError("SSERetry", name, f"must be a bool, got {value!r}")
        self.retry_ms = retry_ms
        self.on_start = on_start
        self.on_events = on_events

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = self.on_start

        async def retry_send(event: Event) -> None:
            nonlocal first
            if event.get("type") == "sse.send":
                if (first or self.on_events) and event.get("retry") is None:
                    event = {**event, "retry": self.retry_ms}
                first = False
            await send(event)

        await self.app(copy_scope(scope, {"pagi.sse.retry": self.retry_ms}), receive, retry_send)
