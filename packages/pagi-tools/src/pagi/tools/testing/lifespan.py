"""Drive an app's lifespan scope in memory: startup on enter, shutdown on exit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from pagi.spec import CORE_VERSION, LIFESPAN_SPEC_VERSION, App, SendMachine
from pagi.tools.testing.session import AppSession

__all__ = ["LifespanDriver", "LifespanFailed"]


class LifespanFailed(Exception):
    """The app answered ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``."""

    def __init__(self, phase: str, message: str) -> None:
        self.phase = phase
        self.message = message
        super().__init__(
            f"lifespan {phase} failed: {message}" if message else f"lifespan {phase} failed"
        )


class LifespanDriver(AppSession):
    """Plays the server's side of the lifespan protocol (R-LIFE-*).

    ``mode="auto"``: an app that raises or returns without answering
    startup has declined lifespan (R-LIFE-20) and the client goes on
    without it. ``mode="on"``: that is an error (the exception re-raised).
    """

    def __init__(self, app: App, mode: Literal["auto", "on"], timeout: float) -> None:
        self.state: dict[str, Any] = {}
        scope: dict[str, Any] = {
            "type": "lifespan",
            "pagi": {
                "version": CORE_VERSION,
                "spec_version": LIFESPAN_SPEC_VERSION,
                "is_worker": False,
            },
            "state": self.state,
        }
        super().__init__(app, scope, timeout)
        self.mode = mode
        self.machine = SendMachine("lifespan")
        self.supported = False
        self._to_app_in, self._to_app_out = anyio.create_memory_object_stream[Mapping[str, Any]](
            math.inf
        )

    async def _receive(self) -> Mapping[str, Any]:
        return await self._to_app_out.receive()

    async def _send(self, event: Mapping[str, Any]) -> None:
        if self.machine.send(event):
            self._from_app_in.send_nowait(dict(event))

    async def startup(self, group: TaskGroup) -> None:
        """Send ``lifespan.startup`` and wait for the answer."""
        group.start_soon(self._run_app)
        self._to_app_in.send_nowait({"type": "lifespan.startup"})
        reply = await self._next_event()
        if reply is None:
            if self.mode == "on":
                if self.exception is not None:
                    raise self.exception
                raise LifespanFailed(
                    "startup", "the app returned without answering lifespan.startup"
                )
            return  # declined (R-LIFE-20, R-LIFE-21)
        if reply["type"] == "lifespan.startup.failed":
            raise LifespanFailed("startup", str(reply.get("message") or ""))
        self.supported = True

    def dispose(self) -> None:
        """Close the in-memory queues."""
        super().dispose()
        self._to_app_in.close()
        self._to_app_out.close()

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` (only if startup completed) and wait for the answer."""
        if not self.supported:
            return
        self._to_app_in.send_nowait({"type": "lifespan.shutdown"})
        reply = await self._next_event()
        if reply is None:
            if self.exception is not None:
                raise self.exception
            return
        if reply["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed("shutdown", str(reply.get("message") or ""))
        await self._wait_app_done(self.timeout)
