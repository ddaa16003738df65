"""Healthcheck: answer health probes with JSON, per-check status and timing.

``path`` (``/health``) and ``ready_path`` run every check; ``live_path``
answers ``{"status": "ok"}`` without running any (the process is alive).
Checks are ``name -> callable`` (plain callables run in a worker thread,
async ones on the loop), run concurrently, each within ``timeout`` seconds;
a check passes when it returns anything but ``False`` and does not raise.
The answer is 200 when all pass, else 503, and is never cached. Only GET
and HEAD on those paths are answered; everything else goes to the app.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.response import JSONResponse

__all__ = ["Healthcheck"]

Check = Callable[[], Any]


def _path_option(name: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise OptionError("Healthcheck", name, f"must be a path starting with '/', got {value!r}")
    return value


class Healthcheck(Middleware):
    """``Healthcheck(app, path="/health", live_path=None, ready_path=None, checks=None)``."""

    def __init__(
        self,
        app: App,
        path: str | None = "/health",
        live_path: str | None = None,
        ready_path: str | None = None,
        checks: Mapping[str, Check] | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(app)
        self.path = _path_option("path", path)
        self.live_path = _path_option("live_path", live_path)
        self.ready_path = _path_option("ready_path", ready_path)
        if checks is not None and not isinstance(checks, Mapping):
            raise OptionError(
                "Healthcheck", "checks", f"must map names to callables, got {checks!r}"
            )
        for name, check in (checks or {}).items():
            if not callable(check):
                raise OptionError("Healthcheck", "checks", f"{name!r} is not callable")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise OptionError("Healthcheck", "timeout", f"must be seconds > 0, got {timeout!r}")
        self.checks = dict(checks or {})
        self.timeout = float(timeout)

    async def run_checks(self) -> dict[str, dict[str, Any]]:
        """Run every check concurrently; ``{name: {"status", "duration_ms", "error"?}}``."""
        results: dict[str, dict[str, Any]] = {}

        async def run(name: str, check: Check) -> None:
            began = time.perf_counter()
            outcome: dict[str, Any] = {"status": "ok"}
            try:
                with anyio.fail_after(self.timeout):
                    if inspect.iscoroutinefunction(check):
                        value = await check()
                    else:
                        value = await anyio.to_thread.run_sync(
                            partial(check), abandon_on_cancel=True
                        )
                        if inspect.isawaitable(value):
                            value = await value
                if value is False:
                    outcome = {"status": "fail", "error": "check returned False"}
            except TimeoutError:
                outcome = {"status": "fail", "error": f"timed out after {self.timeout}s"}
            except Exception as exc:
                outcome = {"status": "fail", "error": f"{type(exc).__name__}: {exc}"}
            outcome["duration_ms"] = round((time.perf_counter() - began) * 1000, 3)
            results[name] = outcome

        async with anyio.create_task_group() as group:
            for name, check in self.checks.items():
                group.start_soon(run, name, check)
        return {name: results[name] for name in self.checks}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope.get("method") not in ("GET", "HEAD") or path not in (
            self.path,
            self.live_path,
            self.ready_path,
        ):
            await self.app(scope, receive, send)
            return
        body: dict[str, Any] = {
            "status": "ok",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        status = 200
        if path != self.live_path or path in (self.path, self.ready_path):
            checks = await self.run_checks()
            if any(c["status"] != "ok" for c in checks.values()):
                body["status"], status = "fail", 503
            if checks:
                body["checks"] = checks
        headers = {"cache-control": "no-cache, no-store, must-revalidate"}
        await JSONResponse(body, status, headers=headers)(scope, receive, send)
