"""Every server option, declared once.

``ServerConfig`` is the single source of truth for options: its fields carry
the default, the validation and (in ``metadata``) the help text and group the
CLI is generated from. Adding an option means adding one field here; the
runner, the CLI, ``--help`` and the worker processes all pick it up.

Limits and timeouts default to values that are safe on the open internet:
every buffer the server keeps for a client is bounded, and every wait on a
client has a deadline.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pagi.server.accesslog import compile_format

__all__ = ["BindSpec", "ConfigError", "ServerConfig", "parse_bind"]

LoopType = Literal["auto", "asyncio", "uvloop", "trio"]
LifespanMode = Literal["auto", "on", "off"]


class ConfigError(ValueError):
    """An option has a value the server cannot run with; the message names it."""


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True, slots=True)
class BindSpec:
    """One address to listen on, parsed from ``--bind``."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(spec: str) -> BindSpec:
    """``HOST:PORT``, ``[V6]:PORT``, ``unix:/PATH`` (or a path) or ``fd://N``."""
    if spec.startswith("unix:"):
        if not spec[5:]:
            raise ConfigError(f"bind {spec!r}: unix: needs a path")
        return BindSpec("unix", path=spec[5:])
    if spec.startswith(("/", "./")):
        return BindSpec("unix", path=spec)
    if spec.startswith("fd://"):
        if not spec[5:].isdigit():
            raise ConfigError(f"bind {spec!r}: fd:// needs a descriptor number")
        return BindSpec("fd", fd=int(spec[5:]))
    host, sep, port = spec.rpartition(":")
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"bind {spec!r}: expected HOST:PORT, [IPV6]:PORT, unix:/PATH or fd://N")
    return BindSpec("tcp", host=host or "0.0.0.0", port=int(port))


def _opt(default: Any, help: str, group: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Options of the PAGI reference server (see ``pagi-server --help``)."""

    # --- listening -----------------------------------------------------------
    host: str = _opt("127.0.0.1", "interface to bind", "listen")
    port: int = _opt(5000, "TCP port to bind (0 picks a free port)", "listen", short="-p")
    uds: str | None = _opt(None, "bind a Unix domain socket at this path instead", "listen")
    fd: int | None = _opt(None, "serve on an already-bound listening socket fd", "listen")
    bind: tuple[str, ...] = _opt(
        (),
        "listen on ADDRESS: HOST:PORT, [IPV6]:PORT, unix:/PATH or fd://N; repeat for several"
        " (replaces --host/--port/--uds/--fd)",
        "listen",
        multiple=True,
        metavar="ADDRESS",
    )
    uds_mode: str | None = _opt(
        None,
        "permissions of Unix socket files, octal (e.g. 660); they are created 600",
        "listen",
        metavar="MODE",
    )
    reuse_port: bool = _opt(
        False,
        "SO_REUSEPORT: each worker listens on its own socket and the kernel balances them",
        "listen",
    )
    backlog: int = _opt(2048, "listen backlog", "listen", short="-b")

    # --- limits --------------------------------------------------------------
    max_request_line_size: int = _opt(
        8192, "longest request line in bytes; longer gets 414", "limits"
    )
    max_header_size: int = _opt(
        16384, "largest request head (line + headers) in bytes; larger gets 431", "limits"
    )
    max_header_count: int = _opt(100, "most header fields in a request; more gets 431", "limits")
    max_body_size: int = _opt(
        10 * 1024 * 1024,
        "largest request body in bytes, declared or streamed (0 = unlimited); larger gets 413",
        "limits",
    )
    max_drain_size: int = _opt(
        256 * 1024,
        "unread request body bytes discarded to keep a connection alive; more closes it",
        "limits",
    )
    max_connections: int = _opt(
        1000, "concurrent connections per process; more get 503 (0 = unlimited)", "limits"
    )
    max_ws_message_size: int = _opt(
        16 * 1024 * 1024, "largest WebSocket message in bytes; larger closes with 1009", "limits"
    )
    max_ws_frame_size: int = _opt(
        16 * 1024 * 1024, "largest WebSocket frame in bytes; larger closes with 1009", "limits"
    )
    max_receive_queue: int = _opt(
        256,
        "WebSocket messages queued for an app that does not receive; more closes with 1008",
        "limits",
    )
    max_receive_queue_bytes: int = _opt(
        64 * 1024 * 1024,
        "decompressed WebSocket payload bytes queued for an app that does not receive;"
        " at this many the server stops reading the socket until the app has taken"
        " the queue below half (never closes; the queue stays under this plus one message)",
        "limits",
    )
    write_high_watermark: int = _opt(
        65536, "buffered outbound bytes at which send() blocks (pagi.transport)", "limits"
    )
    write_low_watermark: int = _opt(
        16384, "buffered outbound bytes below which a blocked send() resumes", "limits"
    )
    h2_max_concurrent_streams: int = _opt(
        100,
        "HTTP/2 streams a client may have open, and app tasks per connection whether or not"
        " the client reset them; more are refused with RST_STREAM REFUSED_STREAM",
        "limits",
    )
    h2_initial_stream_window: int = _opt(
        65535,
        "HTTP/2 flow-control window per stream in bytes: at most this much of a request"
        " body is buffered until the app reads it",
        "limits",
    )
    h2_initial_connection_window: int = _opt(
        1024 * 1024,
        "HTTP/2 flow-control window per connection in bytes (65535 or more): request body"
        " bytes buffered across all the streams of a connection",
        "limits",
    )
    h2_max_frame_size: int = _opt(
        16384, "largest HTTP/2 frame a client may send (16384-16777215)", "limits"
    )
    h2_max_header_list_size: int = _opt(
        65536,
        "largest HTTP/2 header block, HPACK-encoded (CONTINUATION frames included) or decoded;"
        " larger ends the connection with GOAWAY (below it --max-header-size and"
        " --max-header-count give 431)",
        "limits",
    )
    h2_max_resets_per_window: int = _opt(
        200,
        "HTTP/2 streams a client may reset (or have refused) before their response within"
        " --h2-flood-window; more ends the connection with GOAWAY ENHANCE_YOUR_CALM"
        " (Rapid Reset; 0 = unlimited)",
        "limits",
    )
    h2_max_control_frames_per_window: int = _opt(
        1000,
        "HTTP/2 SETTINGS, PING, PRIORITY, CONTINUATION, empty DATA, unknown frames, and"
        " WINDOW_UPDATE/RST_STREAM for streams not open, a client may send within"
        " --h2-flood-window; more ends the connection with GOAWAY ENHANCE_YOUR_CALM"
        " (0 = unlimited)",
        "limits",
    )

    # --- timeouts (seconds; 0 disables where noted) ----------------------------
    header_timeout: float = _opt(
        10.0, "total deadline to receive a request head once it starts (slowloris)", "timeouts"
    )
    keepalive_timeout: float = _opt(
        5.0, "idle time allowed between requests on a persistent connection", "timeouts"
    )
    body_timeout: float = _opt(
        30.0, "longest wait for more request body bytes while the app reads", "timeouts"
    )
    write_timeout: float = _opt(
        30.0, "longest a write to a client may stall before the connection is dropped", "timeouts"
    )
    ws_idle_timeout: float = _opt(
        0.0, "close a WebSocket with no traffic either way for this long (0 = off)", "timeouts"
    )
    sse_idle_timeout: float = _opt(
        0.0, "close an SSE stream with nothing sent for this long (0 = off)", "timeouts"
    )
    h2_flood_window: float = _opt(
        10.0, "window over which HTTP/2 resets and control frames are counted", "timeouts"
    )
    ws_close_timeout: float = _opt(
        5.0, "how long to wait for the peer's Close frame after sending ours", "timeouts"
    )
    shutdown_timeout: float = _opt(
        30.0, "on SIGTERM/SIGINT, how long in-flight requests may finish", "timeouts"
    )
    lifespan_startup_timeout: float = _opt(
        30.0, "how long the app may take to answer lifespan.startup (0 = no limit)", "timeouts"
    )

    # --- protocol --------------------------------------------------------------
    lifespan: LifespanMode = _opt(  # noqa: RUF009
        "auto",
        "lifespan protocol: auto (use if the app supports it), on, off",
        "protocol",
        choices=("auto", "on", "off"),
    )
    interface: Literal["pagi", "asgi", "asgi2", "wsgi"] = _opt(
        "pagi",
        "what the app speaks: pagi, asgi (ASGI 3, or ASGI 2 detected), asgi2 or wsgi;"
        " the runner wraps asgi/wsgi apps in the pagi-tools bridges",
        "protocol",
        choices=("pagi", "asgi", "asgi2", "wsgi"),
    )
    ws_per_message_deflate: bool = _opt(
        True, "negotiate permessage-deflate when a WebSocket client offers it", "protocol"
    )
    ws_deflate_window_bits: int = _opt(
        12,
        "server window bits for permessage-deflate (9-15; smaller uses less memory)",
        "protocol",
    )
    http2: bool = _opt(
        True, "offer HTTP/2 (ALPN h2 over TLS; prior-knowledge h2c in cleartext)", "protocol"
    )
    h2_websocket: bool = _opt(
        True,
        "offer WebSockets over HTTP/2 streams (RFC 8441 Extended CONNECT)",
        "protocol",
    )
    server_header: bool = _opt(True, "send a 'server: pagi' header unless the app did", "protocol")
    proxy_headers: bool = _opt(
        False, "trust X-Forwarded-For/-Proto from --forwarded-allow-ips", "protocol"
    )
    forwarded_allow_ips: str = _opt(
        "127.0.0.1", "comma-separated proxy addresses whose X-Forwarded-* are trusted", "protocol"
    )
    root_path: str = _opt(
        "", "mount point of the whole app (scope root_path; empty: none)", "protocol"
    )
    date_header: bool = _opt(True, "send a 'date' header unless the app did", "protocol")
    headers: tuple[str, ...] = _opt(
        (),
        "add the header NAME:VALUE to every response (repeatable)",
        "protocol",
        multiple=True,
        flag="--header",
        metavar="NAME:VALUE",
    )

    # --- TLS -------------------------------------------------------------------
    ssl_certfile: str | None = _opt(None, "TLS certificate chain (PEM); enables HTTPS", "tls")
    ssl_keyfile: str | None = _opt(None, "TLS private key (PEM)", "tls")
    ssl_keyfile_password: str | None = _opt(
        None, "password of an encrypted --ssl-keyfile", "tls", metavar="PASSWORD"
    )
    ssl_ca_certs: str | None = _opt(None, "CA bundle to verify client certificates", "tls")
    ssl_cert_reqs: str | None = _opt(
        None,
        "client certificates: none (not asked for), optional (verified if sent) or required;"
        " unset: optional with --ssl-ca-certs, none without",
        "tls",
        choices=("none", "optional", "required"),
    )
    ssl_min_version: str = _opt(
        "1.2", "oldest TLS version accepted: 1.2 or 1.3", "tls", choices=("1.2", "1.3")
    )
    ssl_ciphers: str | None = _opt(
        None,
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's own)",
        "tls",
        metavar="CIPHERS",
    )

    # --- process and logging ---------------------------------------------------
    workers: int = _opt(1, "worker processes (pre-fork when more than 1)", "process", short="-w")
    max_requests: int = _opt(
        0,
        "with --workers: a worker that has served this many requests is replaced,"
        " the replacement listening before it drains (0 = never)",
        "process",
    )
    max_requests_jitter: int = _opt(
        0,
        "add a random 0..N to --max-requests per worker, so they do not recycle at once",
        "process",
    )
    worker_timeout: float = _opt(
        60.0,
        "with --workers: kill and replace a worker whose event loop sent no heartbeat for"
        " this many seconds (0 = off)",
        "process",
    )
    user: str | None = _opt(None, "switch to this user after binding (run as root)", "process")
    group: str | None = _opt(
        None, "switch to this group after binding (default: the user's group)", "process"
    )
    loop_type: LoopType = _opt(  # noqa: RUF009
        "auto",
        "event loop: auto (uvloop when installed, as by the speed extra, else asyncio), "
        "asyncio, uvloop or trio",
        "process",
        choices=("auto", "asyncio", "uvloop", "trio"),
        flag="--loop",
    )
    quiet: bool = _opt(False, "no banner or informational messages", "process")
    log_level: str = _opt(
        "info", "log level", "process", choices=("critical", "error", "warning", "info", "debug")
    )
    access_log_format: str = _opt(
        "clf",
        "access log format: clf, combined, common, tiny or a string of %-atoms",
        "process",
    )
    log_format: str = _opt(
        "text",
        "text, or json: one JSON object per line for the error and access logs",
        "process",
        choices=("text", "json"),
    )

    metrics_bind: str | None = _opt(
        None,
        "serve Prometheus metrics on HOST:PORT, a listener of its own (needs the"
        " metrics extra: pip install 'pagi-server[metrics]')",
        "process",
        metavar="HOST:PORT",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices is not None and value is not None and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")
        nonneg = (
            "port",
            "backlog",
            "max_body_size",
            "max_drain_size",
            "max_connections",
            "header_timeout",
            "keepalive_timeout",
            "body_timeout",
            "write_timeout",
            "ws_idle_timeout",
            "sse_idle_timeout",
            "ws_close_timeout",
            "shutdown_timeout",
            "lifespan_startup_timeout",
            "write_low_watermark",
            "h2_max_resets_per_window",
            "h2_max_control_frames_per_window",
            "max_requests",
            "max_requests_jitter",
            "worker_timeout",
        )
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative; got {getattr(self, name)!r}")
        positive = (
            "max_request_line_size",
            "max_header_size",
            "max_header_count",
            "workers",
            "max_ws_message_size",
            "max_ws_frame_size",
            "max_receive_queue",
            "max_receive_queue_bytes",
            "write_high_watermark",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive; got {getattr(self, name)!r}")
        if self.port > 65535:
            raise ConfigError(f"port must be 0-65535; got {self.port}")
        h2_ranges = (
            ("h2_max_concurrent_streams", 1, 2**31 - 1),
            ("h2_initial_stream_window", 1, 2**31 - 1),
            ("h2_initial_connection_window", 65535, 2**31 - 1),
            ("h2_max_frame_size", 16384, 2**24 - 1),
            ("h2_max_header_list_size", 1, 2**31 - 1),
        )
        for name, low, high in h2_ranges:
            if not low <= getattr(self, name) <= high:
                raise ConfigError(f"{name} must be {low}-{high}; got {getattr(self, name)!r}")
        if self.h2_flood_window <= 0:
            raise ConfigError(f"h2_flood_window must be positive; got {self.h2_flood_window!r}")
        if self.write_low_watermark > self.write_high_watermark:
            raise ConfigError("write_low_watermark must not exceed write_high_watermark")
        if not 9 <= self.ws_deflate_window_bits <= 15:
            raise ConfigError("ws_deflate_window_bits must be 9-15")
        try:
            compile_format(self.access_log_format)
        except ValueError as exc:
            raise ConfigError(f"access_log_format: {exc}") from None
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("ssl_certfile and ssl_keyfile go together")
        if self.ssl_cert_reqs in ("optional", "required") and not self.ssl_ca_certs:
            raise ConfigError(f"ssl_cert_reqs {self.ssl_cert_reqs} needs ssl_ca_certs")
        if self.uds_mode is not None:
            try:
                mode = int(self.uds_mode, 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o777:
                raise ConfigError(
                    f"uds_mode must be octal permissions like 660; got {self.uds_mode!r}"
                )
        for spec in self.bind:
            parse_bind(spec)
        if self.metrics_bind is not None:
            try:
                tcp = parse_bind(self.metrics_bind).kind == "tcp"
            except ConfigError:
                tcp = False
            if not tcp:
                raise ConfigError(
                    f"metrics_bind {self.metrics_bind!r}: expected HOST:PORT or [IPV6]:PORT"
                )
        for header in self.headers:
            name, sep, value = header.partition(":")
            if not sep or not name.strip() or not _TOKEN.fullmatch(name.strip()):
                raise ConfigError(f"headers: {header!r} is not NAME:VALUE")
            if any(c in value for c in "\r\n\0"):
                raise ConfigError(f"headers: {header!r} has a control character")

    def listen_specs(self) -> list[BindSpec]:
        """Where to listen: every ``bind``, else ``fd``, ``uds`` or host and port."""
        if self.bind:
            return [parse_bind(spec) for spec in self.bind]
        if self.fd is not None:
            return [BindSpec("fd", fd=self.fd)]
        if self.uds:
            return [BindSpec("unix", path=self.uds)]
        return [BindSpec("tcp", host=self.host, port=self.port)]

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers`` as lower-case name and value bytes."""
        out = []
        for header in self.headers:
            name, _, value = header.partition(":")
            out.append((name.strip().lower().encode("ascii"), value.strip().encode("latin-1")))
        return out

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """Names of every option, for refusing unknown ones (R-RUN-4)."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)
