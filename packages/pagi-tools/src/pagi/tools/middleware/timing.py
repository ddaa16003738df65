"""Timing and AccessLog: how long a request took, in a header and in a log line.

``Timing(app)`` puts a :class:`ServerTiming` in the scope as
``pagi.timing``; the app adds metrics (``scope["pagi.timing"].add("db",
12.5)`` or ``with scope["pagi.timing"].measure("db"): ...``) and the
response start carries them in ``Server-Timing`` with ``total`` (time from
the middleware to the response start).

``AccessLog(app, logger=None, format="combined")`` logs one line per HTTP
request when it ends (status 500 if the app raised before answering), for
apps on servers without their own access log: ``combined`` and ``common``
are the Apache formats, ``tiny`` is ``METHOD path status seconds``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import (
    Middleware,
    OptionError,
    ResponseStart,
    copy_scope,
    intercept_start,
)

__all__ = ["AccessLog", "ServerTiming", "Timing"]

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


class ServerTiming:
    """Metrics for one response: ``add(name, duration_ms, description=None)``, ``measure(name)``."""

    __slots__ = ("metrics",)

    def __init__(self) -> None:
        self.metrics: list[tuple[str, float | None, str | None]] = []

    def add(
        self, name: str, duration_ms: float | None = None, description: str | None = None
    ) -> None:
        """Record a metric; ``name`` must be an HTTP token."""
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"Server-Timing metric name {name!r} is not a token")
        self.metrics.append((name, duration_ms, description))

    @contextmanager
    def measure(self, name: str, description: str | None = None) -> Iterator[None]:
        """Time the ``with`` block as metric ``name``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - began) * 1000, description)

    def header_value(self) -> str:
        """The ``Server-Timing`` value."""
        parts = []
        for name, duration, description in self.metrics:
            part = name
            if duration is not None:
                part += f";dur={duration:.3f}"
            if description is not None:
                escaped = description.replace("\\", "\\\\").replace('"', '\\"')
                part += f';desc="{escaped}"'
            parts.append(part)
        return ", ".join(parts)


class Timing(Middleware):
    """``Timing(app, header="server-timing")``: add ``total`` and the app's metrics."""

    def __init__(self, app: App, header: str = "server-timing") -> None:
        super().__init__(app)
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise OptionError("Timing", "header", f"must be a header name, got {header!r}")
        self.header = header.lower()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        timing = ServerTiming()

        def stamp(start: ResponseStart) -> None:
            timing.add("total", (time.perf_counter() - began) * 1000)
            start.headers.append(self.header, timing.header_value())

        scope = copy_scope(scope, {"pagi.timing": timing})
        await self.app(scope, receive, intercept_start(send, stamp))


_FORMATS = ("combined", "common", "tiny")


class AccessLog(Middleware):
    """``AccessLog(app, logger=None, format="combined")``: one log line per HTTP request."""

    def __init__(
        self, app: App, logger: logging.Logger | None = None, format: str = "combined"
    ) -> None:
        super().__init__(app)
        if logger is not None and not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
            raise OptionError("AccessLog", "logger", f"must be a logging.Logger, got {logger!r}")
        if format not in _FORMATS:
            raise OptionError("AccessLog", "format", f"must be one of {_FORMATS}, got {format!r}")
        self.logger = logger or logging.getLogger("pagi.tools.access")
        self.format = format

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        status: int | None = None
        size = 0

        async def counting_send(event: Event) -> None:
            nonlocal status, size
            kind = event.get("type")
            if kind == "http.response.start":
                status = int(event["status"])
            elif kind == "http.response.body":
                size += len(event.get("body", b""))
                if "file" in event or "fh" in event:
                    length = event.get("length")
                    size += int(length) if length is not None else 0
            await send(event)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.logger.info(self.line(scope, status or 500, size, time.perf_counter() - began))

    def line(self, scope: Scope, status: int, size: int, seconds: float) -> str:
        """The log line for one request."""
        method = scope.get("method", "GET")
        path = scope.get("root_path", "") + scope.get("path", "/")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        target = path + (f"?{query}" if query else "")
        if self.format == "tiny":
            return f"{method} {target} {status} {seconds:.6f}"
        client = scope.get("client")
        host = client[0] if client else "-"
        when = datetime.now(timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        version = scope.get("http_version", "1.1")
        line = f'{host} - - [{when}] "{method} {target} HTTP/{version}" {status} {size or "-"}'
        if self.format == "combined":
            headers = Headers.from_scope(scope)
            referer = headers.get("referer", "-").replace('"', "%22")
            agent = headers.get("user-agent", "-").replace('"', "%22")
            line += f' "{referer}" "{agent}"'
        return line
