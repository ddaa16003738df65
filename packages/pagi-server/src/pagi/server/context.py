"""What every connection shares with its server: app, config, clock, registry.

Drivers take a :class:`ServerContext` instead of a dozen arguments, and the
server uses it to find live connections when it drains.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextlib import AbstractContextManager
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

from pagi.server.config import ServerConfig
from pagi.spec import App

if TYPE_CHECKING:
    from pagi.server.accesslog import AccessLog
    from pagi.server.metrics import Metrics

__all__ = ["LiveConnection", "ServerContext"]

log = logging.getLogger("pagi.server")

_UNTRACKED: AbstractContextManager[None] = contextlib.nullcontext()


class LiveConnection(Protocol):
    """A connection as the server sees it while draining."""

    def begin_drain(self) -> None:
        """Finish the request in flight (if any), then close; close now if idle."""

    def force_close(self) -> None:
        """Abort now: in-flight scopes see reason ``server_shutdown``."""

    def check_timeouts(self, now: float) -> None:
        """End any wait of this connection whose deadline has passed."""


class ServerContext:
    """Shared, per-process state of a running server."""

    __slots__ = (
        "_date",
        "_date_second",
        "_extra",
        "access_log",
        "app",
        "config",
        "connections",
        "draining",
        "metrics",
        "state",
    )

    def __init__(
        self,
        app: App,
        config: ServerConfig,
        *,
        access_log: AccessLog | None = None,
        state: dict[str, Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.access_log = access_log
        self.state = state
        #: ``--metrics-bind``: also the ``access_log`` observer (it passes records on).
        self.metrics = metrics
        self.connections: set[LiveConnection] = set()
        self.draining = False
        self._date_second = -1
        self._date = b""
        self._extra = config.extra_headers()

    def track_connection(self, protocol: str) -> AbstractContextManager[None]:
        """While a driver serves a connection (an open-connections gauge with metrics)."""
        return self.metrics.connection(protocol) if self.metrics is not None else _UNTRACKED

    def track_session(self, kind: str) -> AbstractContextManager[None]:
        """While a WebSocket or SSE session runs (a gauge with metrics)."""
        return self.metrics.session(kind) if self.metrics is not None else _UNTRACKED

    def server_fields(self, has_date: bool, has_server: bool) -> list[tuple[bytes, bytes]]:
        """The ``date`` and ``server`` fields to add when the app did not set them (R-HSRV-1)."""
        fields = [] if has_date or not self.config.date_header else [(b"date", self.date_value())]
        if not has_server and self.config.server_header:
            fields.append((b"server", b"pagi"))
        if self._extra:
            fields.extend(self._extra)  # --header
        return fields

    def date_value(self) -> bytes:
        """The current HTTP-date, recomputed at most once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode("ascii")
        return self._date
