"""Prometheus metrics for ``--metrics-bind`` (the ``metrics`` extra).

What is counted, and where
--------------------------
Nothing here sits on a path of its own: the server already sees every
request where it writes the access log, so :class:`Metrics` is that
observer (it records, then hands the record to the access log, if any).
Three more places call it once each:

* ``protocols/select.py``: a connection while a driver serves it, by
  protocol (``http/1.1``, ``h2``; a prior-knowledge HTTP/2 connection moves
  from the first to the second);
* ``protocols/ws_session.py`` and ``streams/sse.py``: an open WebSocket or
  SSE session;
* ``protocols/responses.py``: every answer the server makes on its own goes
  through ``error_response``; the limit ones are counted as rejections
  (413, 414, 431, 503 and the 408 of a timeout).

The listener
------------
The endpoint is ``prometheus_client``'s own small HTTP server, on a daemon
thread, in the process that owns the listening sockets (the single process,
or the supervisor with ``--workers``). It never runs on the serving event
loop, so a slow scrape cannot delay a request, and its requests are not
counted.

With ``--workers N`` the numbers are aggregated by ``prometheus_client``'s
multi-process mode: the supervisor creates a directory for this run
(``pagi-metrics-*`` under the temporary directory), exports it as
``PROMETHEUS_MULTIPROC_DIR`` before forking, and removes it at exit. Each
worker writes its values to files there; a scrape of the supervisor merges
them. Counters and histograms of replaced workers keep counting toward the
totals; the open-connection and open-session gauges of a dead worker are
dropped when the supervisor reaps it.

``prometheus_client`` is imported only when ``--metrics-bind`` is given;
without it the server stops with a message naming the extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pagi.server.config import ConfigError, parse_bind

__all__ = ["Metrics", "MetricsListener", "MultiprocessRun", "require_client"]

log = logging.getLogger("pagi.server")

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_EXTRA_HINT = "--metrics-bind needs prometheus-client: pip install 'pagi-server[metrics]'"

#: Server-made answers that mean a limit was hit, by kind.
REJECTIONS = {
    408: "timeout",
    413: "body_too_large",
    414: "request_line_too_long",
    431: "header_too_large",
    503: "unavailable",
}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SESSION_BUCKETS = (0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


class _Observer(Protocol):
    def log(self, scope: dict[str, Any], status: int, nbytes: int, duration: float) -> None: ...


def require_client() -> Any:
    """``prometheus_client``, or a :class:`ConfigError` naming the extra to install."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(_EXTRA_HINT) from None
    return prometheus_client


class Metrics:
    """The per-process recorder; also the access-log observer it wraps.

    ``registry`` is where the metrics are registered (a private registry in
    a single process) or ``None`` in a worker, whose values go to the
    multi-process directory instead.
    """

    def __init__(self, registry: Any, *, access_log: _Observer | None = None) -> None:
        pc = require_client()
        self.access_log = access_log
        mode: dict[str, Any] = {"registry": registry}
        live = {**mode, "multiprocess_mode": "livesum"}
        self.requests = pc.Counter(
            "pagi_server_requests",
            "Requests answered (WebSocket and SSE: sessions ended), by scope type,"
            " protocol and status",
            ["type", "protocol", "status"],
            **mode,
        )
        self.latency = pc.Histogram(
            "pagi_server_request_duration_seconds",
            "HTTP request latency, from the request head to the last byte of the response",
            ["protocol"],
            buckets=_LATENCY_BUCKETS,
            **mode,
        )
        self.session_length = pc.Histogram(
            "pagi_server_session_duration_seconds",
            "Length of WebSocket and SSE sessions that have ended",
            ["type"],
            buckets=_SESSION_BUCKETS,
            **mode,
        )
        self.bytes_sent = pc.Counter(
            "pagi_server_response_bytes",
            "Response body bytes sent (WebSocket: message payload), by scope type and protocol",
            ["type", "protocol"],
            **mode,
        )
        self.connections = pc.Gauge(
            "pagi_server_connections",
            "Open client connections, by protocol",
            ["protocol"],
            **live,
        )
        self.sessions = pc.Gauge(
            "pagi_server_sessions", "Open WebSocket and SSE sessions", ["type"], **live
        )
        self.rejections = pc.Counter(
            "pagi_server_rejections",
            "Requests or connections refused at a limit: 413, 414, 431, 503 (connection limit,"
            " shutdown) and 408 (timeout)",
            ["kind", "status"],
            **mode,
        )
        # Label lookups take a lock and build a tuple: keep the children.
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    # --- the access-log observer (hot path) -------------------------------------------
    def log(self, scope: dict[str, Any], status: int, nbytes: int, duration: float) -> None:
        kind = scope["type"]
        protocol = "HTTP/" + str(scope.get("http_version", "1.1"))
        key = (kind, protocol, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(kind, protocol, str(status))
        child.inc()
        if nbytes:
            self.bytes_sent.labels(kind, protocol).inc(nbytes)
        if kind == "http":
            timer = self._latency.get(protocol)
            if timer is None:
                timer = self._latency[protocol] = self.latency.labels(protocol)
            timer.observe(duration)
        else:
            self.session_length.labels(kind).observe(duration)
        if self.access_log is not None:
            self.access_log.log(scope, status, nbytes, duration)

    # --- the hooks ---------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self, protocol: str) -> Iterator[None]:
        gauge = self.connections.labels(protocol)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    @contextlib.contextmanager
    def session(self, kind: str) -> Iterator[None]:
        gauge = self.sessions.labels(kind)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def answered(self, status: int) -> None:
        """A server-made answer: counted when it is a limit's."""
        kind = REJECTIONS.get(status)
        if kind is not None:
            self.rejections.labels(kind, str(status)).inc()


def _workers_collector(pc: Any, count: Callable[[], int]) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    class Workers:
        def collect(self) -> Iterator[Any]:
            yield GaugeMetricFamily(
                "pagi_server_workers", "Worker processes serving (1 without --workers)", count()
            )

    return Workers()


class MetricsListener:
    """The scrape endpoint: ``prometheus_client``'s HTTP server on a daemon thread."""

    def __init__(self, bind: str, registry: Any) -> None:
        pc = require_client()
        spec = parse_bind(bind)
        try:
            started = pc.start_http_server(spec.port, addr=spec.host, registry=registry)
        except OSError as exc:
            text = exc.strerror or str(exc)
            raise OSError(exc.errno, f"cannot listen for metrics on {bind}: {text}") from None
        self._httpd = started[0] if isinstance(started, tuple) else None
        self.port = int(self._httpd.server_port) if self._httpd is not None else spec.port
        log.info("metrics on http://%s:%d/metrics", _url_host(spec.host), self.port)

    @classmethod
    def single_process(cls, bind: str) -> tuple[MetricsListener, Any]:
        """A listener and the private registry the process's :class:`Metrics` use."""
        pc = require_client()
        registry = pc.CollectorRegistry(auto_describe=True)
        registry.register(_workers_collector(pc, lambda: 1))
        return cls(bind, registry), registry

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class MultiprocessRun:
    """The supervisor's side of ``--workers`` with metrics: directory, listener, bookkeeping."""

    def __init__(self, bind: str, workers: Callable[[], int]) -> None:
        pc = require_client()
        import prometheus_client.multiprocess
        import prometheus_client.values

        multiprocess: Any = prometheus_client.multiprocess
        values: Any = prometheus_client.values
        self._multiprocess = multiprocess
        self.directory = tempfile.mkdtemp(prefix="pagi-metrics-")
        self._previous = os.environ.get(_ENV)
        os.environ[_ENV] = self.directory
        # Chosen when prometheus_client was first imported (the app may have done
        # that already): values the workers create from now on go to the files.
        values.ValueClass = values.MultiProcessValue()
        registry = pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        registry.register(_workers_collector(pc, workers))
        try:
            self.listener = MetricsListener(bind, registry)
        except BaseException:
            self._remove()
            raise

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's open-connection and open-session gauges."""
        self._multiprocess.mark_process_dead(pid, self.directory)

    def close(self) -> None:
        self.listener.close()
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._previous is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = self._previous
