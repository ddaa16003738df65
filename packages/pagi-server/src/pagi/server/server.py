"""The server: listeners, accept loop, lifespan, signals and graceful drain.

Theory of operation
-------------------
:meth:`Server.serve` is the whole life of one worker process:

1. bind the listeners (TCP, Unix socket or an inherited fd);
2. run lifespan startup; a failure ends here, before any connection is
   accepted (R-LIFE-10/11);
3. accept connections, each in its own task, until shutdown is requested.
   At ``max_connections`` a new client gets ``503`` with ``Retry-After``;
   running out of file descriptors pauses accepting instead of crashing;
4. drain: close the listeners, ask every connection to finish what it has
   in flight (idle keep-alive connections close at once), wait up to
   ``shutdown_timeout``, then abort the rest with reason
   ``server_shutdown``;
5. lifespan shutdown (R-LIFE-13), then return.

:meth:`Server.run` is the blocking entry point of the runner contract
(R-RUN-5): it picks the event loop, installs SIGINT/SIGTERM handlers (the
first starts the drain, a second forces an immediate exit) and calls
``serve``.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from pagi.server.accesslog import AccessLog
from pagi.server.config import ServerConfig
from pagi.server.context import ServerContext
from pagi.server.lifespan import Lifespan, LifespanFailure
from pagi.server.net.listeners import (
    bind_socket,
    listener_addresses,
    listener_closed,
    open_listeners,
)
from pagi.server.net.stream import accept
from pagi.server.protocols.responses import simple_response
from pagi.server.protocols.select import serve_connection
from pagi.server.proxy import ProxyTrust
from pagi.server.scope import ConnectionInfo
from pagi.server.tls import build_ssl_context, tls_scope_info
from pagi.server.workers import STARTUP_FAILED, Supervisor
from pagi.spec import App

__all__ = ["Server"]

log = logging.getLogger("pagi.server")

_DEFAULT_LOG: Any = object()
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Server:
    """The PAGI reference server (runner contract, docs/spec/server.md).

    ``Server(app=..., host=..., port=..., quiet=..., access_log=...,
    loop_type=..., **server_options).run()``. Every option of
    :class:`~pagi.server.config.ServerConfig` is accepted as a keyword; an
    unknown one raises ``TypeError`` naming it (R-RUN-4).
    ``access_log`` is a text file object, ``None`` to disable it, or absent
    for the default (standard error).
    """

    def __init__(
        self,
        app: App,
        *,
        access_log: IO[str] | None = _DEFAULT_LOG,
        config: ServerConfig | None = None,
        worker_num: int | None = None,
        sockets: Sequence[socket.socket] = (),
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - ServerConfig.option_names())
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        self.app = app
        self.config = config.replace(**options) if config is not None else ServerConfig(**options)
        if access_log is _DEFAULT_LOG:
            access_log = sys.stderr
        self.access_log_stream = access_log
        self.access_log = (
            AccessLog(access_log, self.config.access_log_format) if access_log is not None else None
        )
        self.worker_num = worker_num
        self._proxy = (
            ProxyTrust(self.config.forwarded_allow_ips) if self.config.proxy_headers else None
        )
        self._sockets = list(sockets)
        self._shutdown: anyio.Event | None = None
        self._shutdown_requested = False
        self._force = False
        self.addresses: list[tuple[str, int | None]] = []
        self.ctx: ServerContext | None = None
        self._accept_scopes: list[anyio.CancelScope] = []
        #: A worker leaves SIGINT to its supervisor (a terminal's Ctrl-C reaches the
        #: whole process group; the supervisor turns it into one SIGTERM per worker).
        self.handle_sigint = True

    # --- blocking entry point ----------------------------------------------------------
    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (R-RUN-5).

        With ``workers`` above 1 this process becomes the pre-fork supervisor.
        Exits the process with status 3 if lifespan startup fails and 1 if the
        listening socket cannot be bound.
        """
        if self.config.workers > 1 and self.worker_num is None and not self._sockets:
            Supervisor(self.config, self._run_worker, bind_socket).run()
            return
        backend = "trio" if self.config.loop_type == "trio" else "asyncio"
        options: dict[str, Any] = {}
        if self.config.loop_type == "uvloop":
            try:
                import uvloop  # noqa: F401
            except ImportError:
                raise SystemExit(
                    "--loop uvloop needs uvloop: pip install 'pagi-server[uvloop]'"
                ) from None
            options["use_uvloop"] = True
        elif self.config.loop_type == "trio":
            try:
                import trio  # noqa: F401
            except ImportError:
                raise SystemExit(
                    "--loop trio needs trio: pip install 'pagi-server[trio]'"
                ) from None
        try:
            anyio.run(self._serve_with_signals, backend=backend, backend_options=options)
        except LifespanFailure as exc:
            log.error("startup failed: %s", exc)
            raise SystemExit(STARTUP_FAILED) from None
        except OSError as exc:
            log.error("cannot listen: %s", exc)
            raise SystemExit(1) from None

    def _run_worker(self, sock: socket.socket, number: int) -> int:
        """The body of one pre-fork worker: this server's app and options on ``sock``."""
        worker = Server(
            self.app,
            config=self.config.replace(workers=1),
            access_log=self.access_log_stream,
            worker_num=number,
            sockets=[sock],
        )
        worker.handle_sigint = False
        worker.run()
        return 0

    async def _serve_with_signals(self) -> None:
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            try:
                await self.serve()
            except (LifespanFailure, OSError) as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _watch_signals(self) -> None:
        signals = (signal.SIGINT, signal.SIGTERM) if self.handle_sigint else (signal.SIGTERM,)
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                if self._shutdown_requested:
                    log.warning("second signal: stopping now")
                    self._force = True
                    self.force_close_all()
                    os._exit(1)
                log.info("received %s: draining", signal.Signals(signum).name)
                self.request_shutdown()

    # --- the life of a worker -----------------------------------------------------------
    def request_shutdown(self) -> None:
        """Start the graceful drain (call from the event loop's thread)."""
        self._shutdown_requested = True
        if self._shutdown is not None:
            self._shutdown.set()

    def force_close_all(self) -> None:
        if self.ctx is not None:
            for conn in list(self.ctx.connections):
                conn.force_close()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start up, bind, serve until :meth:`request_shutdown`, drain, shut down.

        Raises :class:`LifespanFailure` (the port is then never bound) or the
        ``OSError`` of a failed bind (lifespan shutdown has run by then).
        """
        cfg = self.config
        self._shutdown = anyio.Event()
        if self._shutdown_requested:
            self._shutdown.set()
        ssl_context = build_ssl_context(cfg) if cfg.ssl_certfile else None
        lifespan = Lifespan(
            self.app,
            mode=cfg.lifespan,
            startup_timeout=cfg.lifespan_startup_timeout,
            shutdown_timeout=cfg.shutdown_timeout,
            worker_num=self.worker_num,
        )
        listeners: list[anyio.abc.SocketListener] = []
        failure: BaseException | None = None
        try:
            # Errors are carried out of the task group by hand, so callers see them
            # as they are rather than wrapped in an exception group.
            async with anyio.create_task_group() as tg:
                try:
                    await lifespan.startup(tg)  # R-LIFE-10: before anything is bound
                    listeners = await self._listen()
                except (LifespanFailure, OSError) as exc:
                    failure = exc
                    if not isinstance(exc, LifespanFailure):
                        await lifespan.shutdown()
                    tg.cancel_scope.cancel()
                else:
                    await self._serve_connections(listeners, lifespan, ssl_context, task_status)
                    await lifespan.shutdown()  # R-LIFE-13: after the drain
                    tg.cancel_scope.cancel()
        finally:
            for listener in listeners:
                with anyio.CancelScope(shield=True):
                    await listener.aclose()
            if cfg.uds and not self._sockets and cfg.fd is None and listeners:
                try:
                    os.unlink(cfg.uds)
                except OSError:
                    pass
        if failure is not None:
            raise failure

    async def _serve_connections(
        self,
        listeners: list[anyio.abc.SocketListener],
        lifespan: Lifespan,
        ssl_context: ssl.SSLContext | None,
        task_status: anyio.abc.TaskStatus[Any],
    ) -> None:
        self.ctx = ctx = ServerContext(
            self.app, self.config, access_log=self.access_log, state=lifespan.state
        )
        self._banner(ssl_context is not None)
        # Everything loaded so far (the app, its modules, lifespan state) lives
        # as long as the process: keep it out of the collector's full passes,
        # which otherwise show up as latency spikes under load.
        gc.freeze()
        task_status.started(self.addresses)
        assert self._shutdown is not None
        async with anyio.create_task_group() as conns:
            conns.start_soon(self._tick, ctx)
            for listener in listeners:
                conns.start_soon(self._accept_loop, listener, conns, ctx, ssl_context)
            await self._shutdown.wait()
            for scope in self._accept_scopes:
                scope.cancel()
            for listener in listeners:
                await listener.aclose()  # new connections are refused from here on
            await self._drain(ctx)
            conns.cancel_scope.cancel()

    async def _tick(self, ctx: ServerContext) -> None:
        """Check every connection's deadlines a few times a second.

        One task for the whole server instead of a timer per read and write:
        the hot path only records timestamps. Granularity is a fifth of the
        shortest timeout, between 20 ms and 500 ms.
        """
        cfg = self.config
        configured = (
            cfg.header_timeout,
            cfg.keepalive_timeout,
            cfg.body_timeout,
            cfg.write_timeout,
        )
        shortest = min((t for t in configured if t > 0), default=2.5)
        interval = min(max(shortest / 5, 0.02), 0.5)
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for conn in list(ctx.connections):
                conn.check_timeouts(now)

    async def _drain(self, ctx: ServerContext) -> None:
        ctx.draining = True
        for conn in list(ctx.connections):
            conn.begin_drain()
        with anyio.move_on_after(self.config.shutdown_timeout):
            while ctx.connections:
                await anyio.sleep(0.02)
        if ctx.connections:
            log.warning("shutdown timeout: closing %d connection(s)", len(ctx.connections))
            for conn in list(ctx.connections):
                conn.force_close()
            with anyio.move_on_after(1):
                while ctx.connections:
                    await anyio.sleep(0.02)

    async def _listen(self) -> list[anyio.abc.SocketListener]:
        listeners = await open_listeners(self.config, self._sockets)
        self.addresses = listener_addresses(listeners)
        return listeners

    def _banner(self, secure: bool) -> None:
        if self.config.quiet:
            return
        scheme = "https" if secure else "http"
        for host, port in self.addresses:
            where = f"{scheme}://{host}:{port}" if port is not None else f"unix:{host}"
            if ":" in host and port is not None:
                where = f"{scheme}://[{host}]:{port}"
            log.info("pagi-server listening on %s (pid %d)", where, os.getpid())

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        tg: anyio.abc.TaskGroup,
        ctx: ServerContext,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        # Cancelled before the listener closes, so no accept waits on a dead socket.
        with anyio.CancelScope() as scope:
            self._accept_scopes.append(scope)
            while True:
                try:
                    streams = await accept(listener)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                except OSError as exc:
                    if exc.errno in _ACCEPT_RETRY_ERRNOS:
                        log.warning("accept failed (%s); pausing for 100 ms", exc)
                        await anyio.sleep(0.1)
                        continue
                    if listener_closed(exc):
                        return
                    log.warning("accept failed: %s", exc)
                    continue
                except Exception:
                    # One bad connection must never stop the server from accepting.
                    log.exception("could not set up an accepted connection")
                    continue
                for stream in streams:
                    tg.start_soon(self._handle, stream, ctx, ssl_context)

    async def _handle(
        self,
        raw: anyio.abc.ByteStream,
        ctx: ServerContext,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        cfg = self.config
        if cfg.max_connections and len(ctx.connections) >= cfg.max_connections:
            await _refuse(raw, ctx)
            return
        stream: anyio.abc.ByteStream = raw
        tls: dict[str, Any] | None = None
        if ssl_context is not None:
            try:
                with anyio.fail_after(cfg.header_timeout or 10):
                    stream = await TLSStream.wrap(
                        raw, server_side=True, ssl_context=ssl_context, standard_compatible=False
                    )
            except (
                TimeoutError,
                ssl.SSLError,
                OSError,
                anyio.BrokenResourceError,
                anyio.EndOfStream,
            ):
                await raw.aclose()
                return
            tls = tls_scope_info(stream)
        info = _connection_info(raw, tls, cfg.root_path, ctx.state)
        info.proxy = self._proxy
        alpn = stream.extra(TLSAttribute.alpn_protocol, None) if tls is not None else None
        await serve_connection(ctx, stream, info, alpn=alpn)


def _connection_info(
    raw: anyio.abc.ByteStream,
    tls: dict[str, Any] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> ConnectionInfo:
    local = raw.extra(SocketAttribute.local_address)
    remote = raw.extra(SocketAttribute.remote_address, None)
    if isinstance(local, tuple):
        server: tuple[str, int | None] = (str(local[0]), int(local[1]))
        client = (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None
    else:
        server = (str(local), None)  # R-HTTP-3: [path, None] for a Unix socket
        client = None
    return ConnectionInfo(client=client, server=server, tls=tls, root_path=root_path, state=state)


async def _refuse(stream: anyio.abc.ByteStream, ctx: ServerContext) -> None:
    """At ``max_connections``: a short 503 instead of a silent hang."""
    with anyio.move_on_after(1):
        try:
            await stream.send(
                simple_response(
                    503,
                    ctx,
                    text="Server is at its connection limit",
                    headers=((b"retry-after", b"5"),),
                )
            )
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
    await stream.aclose()
