"""The part every in-memory session shares: run the app, read what it sends.

:class:`AppSession` plays the server for one scope. The app runs in a task
of the caller's task group; every event it sends (once the subclass's
``_send`` has checked it) lands in a queue the test reads with real
timeouts. The app's exception is recorded, not raised, so each session
decides when to surface it. WebSocket, SSE and lifespan sessions build on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anyio

from pagi.spec import App

__all__ = ["AppSession"]


class AppSession:
    """Runs ``app`` on ``scope`` with in-memory queues; subclasses give ``_receive``, ``_send``."""

    def __init__(self, app: App, scope: dict[str, Any], timeout: float) -> None:
        self.app = app
        self.scope = scope
        self.timeout = timeout
        self._from_app_in, self._from_app_out = anyio.create_memory_object_stream[
            Mapping[str, Any]
        ](math.inf)
        self._app_done = anyio.Event()
        self.exception: BaseException | None = None

    async def _receive(self) -> Mapping[str, Any]:
        raise NotImplementedError

    async def _send(self, event: Mapping[str, Any]) -> None:
        raise NotImplementedError

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except Exception as exc:
            self.exception = exc
        finally:
            self._from_app_in.close()
            self._app_done.set()

    async def _next_event(self) -> Mapping[str, Any] | None:
        """The app's next queued event; ``None`` once it has returned and the queue is empty."""
        try:
            with anyio.fail_after(self.timeout):
                return await self._from_app_out.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    async def _read_body(self) -> bytes:
        """The body events after a plain HTTP response start (a denial or a decline)."""
        body = []
        while True:
            event = await self._next_event()
            if event is None:
                break
            body.append(bytes(event.get("body") or b""))
            if not event.get("more"):
                break
        return b"".join(body)

    async def _wait_app_done(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._app_done.wait()

    def dispose(self) -> None:
        """Close the in-memory queues (the session is over)."""
        self._from_app_in.close()
        self._from_app_out.close()

    @property
    def app_finished(self) -> bool:
        """True once the app has returned."""
        return self._app_done.is_set()
