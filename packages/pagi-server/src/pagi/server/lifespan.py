"""The lifespan protocol driver (docs/spec/lifespan.md).

Theory of operation
-------------------
The app is called once with a ``lifespan`` scope in its own task, on the
same event loop as the requests (R-LIFE-3). :meth:`Lifespan.startup`
delivers ``lifespan.startup`` and waits for the reply; the server accepts
connections only after ``lifespan.startup.complete`` (R-LIFE-10).

Outcomes of startup:

* ``startup.complete``: carry on; ``state`` is shallow-copied into every
  request scope from now on (R-LIFE-30).
* ``startup.failed``: :class:`LifespanFailure` with the app's message; the
  server never listens and exits non-zero (R-LIFE-11).
* the app raises before it has received ``lifespan.startup``, or returns
  without replying: lifespan is unsupported (R-LIFE-20). In ``auto`` mode
  that is logged at info level and the server starts without lifespan
  (R-LIFE-21); in ``on`` mode it is fatal.
* the app raises *after* it received ``lifespan.startup``: it supports
  lifespan and its startup failed, so :class:`LifespanFailure` (exit 3).
* no reply within ``lifespan_startup_timeout``: fatal, never a hang
  (R-LIFE-22).

:meth:`Lifespan.shutdown` runs after the connections have drained
(R-LIFE-13) and waits for the reply for at most ``shutdown_timeout``; a
``shutdown.failed`` or a timeout is logged and the server exits anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc

from pagi.spec import CORE_VERSION, LIFESPAN_SPEC_VERSION, App, EventError, SendMachine

__all__ = ["Lifespan", "LifespanFailure"]

log = logging.getLogger("pagi.server")


class LifespanFailure(RuntimeError):
    """Startup cannot go on: the app failed it, timed out, or (mode ``on``) declined it."""


class Lifespan:
    """Drives the lifespan scope of one worker."""

    def __init__(
        self,
        app: App,
        *,
        mode: str = "auto",
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 30.0,
        worker_num: int | None = None,
    ) -> None:
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        pagi: dict[str, Any] = {
            "version": CORE_VERSION,
            "spec_version": LIFESPAN_SPEC_VERSION,
            "is_worker": 1 if worker_num is not None else 0,
        }
        if worker_num is not None:
            pagi["worker_num"] = worker_num
        self.scope: dict[str, Any] = {"type": "lifespan", "pagi": pagi, "state": self.state}
        self.supported = False
        self._machine = SendMachine("lifespan")
        self._inbox: list[dict[str, Any]] = []
        self._inbox_ready: anyio.Event | None = None
        self._reply: anyio.Event | None = None
        self._reply_event: dict[str, Any] | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._received_startup = False

    async def startup(self, task_group: anyio.abc.TaskGroup) -> None:
        """Run startup; raise :class:`LifespanFailure` when the server must not start."""
        if self.mode == "off":
            return
        self._reply = anyio.Event()
        task_group.start_soon(self._run_app)
        self._deliver({"type": "lifespan.startup"})
        with anyio.move_on_after(self.startup_timeout or float("inf")) as waited:
            await self._reply.wait()
        if waited.cancelled_caught:
            raise LifespanFailure(
                f"application did not answer lifespan.startup within {self.startup_timeout}s"
            )
        reply = self._reply_event
        if reply is None and self._error is not None and self._received_startup:
            # It took lifespan.startup, so it speaks lifespan: raising is a failed startup.
            raise LifespanFailure(f"application raised during lifespan startup: {self._error!r}")
        if reply is None:  # the app ended without answering: lifespan is unsupported
            detail = f": {self._error!r}" if self._error is not None else ""
            if self.mode == "on":
                raise LifespanFailure(f"application does not support lifespan{detail}")
            log.info("Lifespan not supported by the application; continuing without it%s", detail)
            return
        if reply["type"] == "lifespan.startup.failed":
            raise LifespanFailure(reply.get("message") or "application startup failed")
        self.supported = True

    async def shutdown(self) -> None:
        """Run shutdown (only if startup completed); never raises."""
        if not self.supported or self._finished:
            return
        self._reply = anyio.Event()
        self._reply_event = None
        self._deliver({"type": "lifespan.shutdown"})
        with anyio.move_on_after(self.shutdown_timeout or float("inf")) as waited:
            await self._reply.wait()
        if waited.cancelled_caught:
            log.warning(
                "application did not finish lifespan.shutdown within %ss", self.shutdown_timeout
            )
        elif self._reply_event is not None and self._reply_event["type"].endswith(".failed"):
            log.error("application shutdown failed: %s", self._reply_event.get("message", ""))

    def _deliver(self, event: dict[str, Any]) -> None:
        self._inbox.append(event)
        if self._inbox_ready is not None:
            self._inbox_ready.set()

    async def _receive(self) -> dict[str, Any]:
        while not self._inbox:
            self._inbox_ready = anyio.Event()
            await self._inbox_ready.wait()
        event = self._inbox.pop(0)
        if event["type"] == "lifespan.startup":
            self._received_startup = True
        return event

    async def _send(self, event: Mapping[str, Any]) -> None:
        self._machine.send(event)
        self._reply_event = dict(event)
        if event["type"] == "lifespan.startup.complete":
            # Set here, not when startup() resumes: an app that raises right after
            # replying must still be logged as a failure after startup (R-LIFE-23).
            self.supported = True
        if self._reply is not None:
            self._reply.set()

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except EventError as exc:
            self._error = exc
            log.error("lifespan: the application sent a bad event: %s", exc)
        except Exception as exc:
            self._error = exc
            if self.supported:
                log.error("lifespan task raised after startup", exc_info=exc)  # R-LIFE-23
        finally:
            self._finished = True
            if self._reply is not None:
                self._reply.set()
