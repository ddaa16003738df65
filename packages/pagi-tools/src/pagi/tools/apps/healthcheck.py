"""``HealthcheckApp``: a JSON health endpoint as a whole app (any path).

``{"status", "timestamp", "uptime", "version"?, "checks"?}``, 200 when every
check passes and 503 otherwise, never cached. Checks run as in the
:class:`~pagi.tools.middleware.healthcheck.Healthcheck` middleware:
concurrently, each within ``timeout`` seconds, sync ones in a thread; a
check fails by raising or returning ``False``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pagi.spec import Receive, Scope, Send
from pagi.tools.middleware.healthcheck import Check, Healthcheck
from pagi.tools.response import JSONResponse, PlainTextResponse

__all__ = ["HealthcheckApp"]


async def _unused(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("HealthcheckApp answers every request itself")


class HealthcheckApp:
    """``HealthcheckApp(checks=None, version=None, timeout=5.0)``."""

    def __init__(
        self,
        checks: Mapping[str, Check] | None = None,
        version: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._runner = Healthcheck(_unused, checks=checks, timeout=timeout)
        self.version = version
        self.started = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD"):
            await PlainTextResponse("Method Not Allowed", 405, headers={"allow": "GET, HEAD"})(
                scope, receive, send
            )
            return
        body: dict[str, Any] = {
            "status": "ok",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "uptime": round(time.monotonic() - self.started, 3),
        }
        if self.version is not None:
            body["version"] = self.version
        status = 200
        checks = await self._runner.run_checks()
        if checks:
            body["checks"] = checks
            if any(c["status"] != "ok" for c in checks.values()):
                body["status"], status = "fail", 503
        headers = {"cache-control": "no-cache, no-store, must-revalidate"}
        response = JSONResponse(body, status, headers=headers)
        await response(scope, receive, send)
