"""An in-process pagi-server on 127.0.0.1 for the CGI and proxy tests (asyncio and trio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from pagi.server import Server


@asynccontextmanager
async def live_server(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port; yields ``host:port``, shuts the server down on exit."""
    options.setdefault("access_log", None)
    options.setdefault("quiet", True)
    options.setdefault("port", 0)
    options.setdefault("host", "127.0.0.1")
    options.setdefault("shutdown_timeout", 1.0)
    options.setdefault("lifespan", "off")
    server = Server(app, **options)
    async with anyio.create_task_group() as group:
        addresses = await group.start(server.serve)
        host, port = addresses[0]
        try:
            yield f"{host}:{port}"
        finally:
            server.request_shutdown()
