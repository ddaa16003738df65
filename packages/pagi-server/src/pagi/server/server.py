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
(R-RUN-5): it picks the event loop, installs the signal handlers and calls
``serve``:

* SIGINT/SIGTERM: the first starts the drain, a second forces an
  immediate exit;
* SIGHUP: the drain, keeping the listening sockets open, then the process
  re-executes itself with them (``LISTEN_FDS``), so new code, new
  configuration and new TLS certificates are loaded while connections wait
  in the backlog instead of being refused (only when started by the
  ``pagi-server`` command, which sets :attr:`Server.restart_argv`). The same
  happens in one process when ``--max-requests`` is reached;
* SIGUSR1: reopen the access log and the logging file handlers (after a
  log rotation);
* SIGTTIN, SIGTTOU, SIGUSR2: logged and ignored (they concern workers).

With ``--workers`` above 1 the process becomes the supervisor of
:mod:`pagi.server.workers` instead.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import gc
import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, ClassVar

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from pagi.server.accesslog import AccessLog
from pagi.server.config import ConfigError, ServerConfig
from pagi.server.context import ServerContext
from pagi.server.implementation import describe
from pagi.server.lifespan import Lifespan, LifespanFailure
from pagi.server.metrics import Metrics, MetricsListener, MultiprocessRun
from pagi.server.net.listeners import (
    bind_sockets,
    listener_addresses,
    listener_closed,
    open_listeners,
    reuse_port_sockets,
    stop_new_connections,
)
from pagi.server.net.stream import accept, adopt, take_waiting
from pagi.server.privileges import drop_privileges
from pagi.server.protocols.responses import simple_response
from pagi.server.protocols.select import serve_connection
from pagi.server.proxy import ProxyTrust
from pagi.server.scope import ConnectionInfo
from pagi.server.tls import build_ssl_context, tls_scope_info
from pagi.server.workers import STARTUP_FAILED, Supervisor, WorkerLink, jitter
from pagi.spec import App

__all__ = ["Server"]

log = logging.getLogger("pagi.server")

_DEFAULT_LOG: Any = object()
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
CONFIG_ERROR = 2
_PLAIN_HTTP_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 48\r\nconnection: close\r\n\r\n"
    b"This port speaks HTTPS: use an https:// address\n"
)


class _RequestCounter:
    """Sits where the access log is called: counts requests, then logs the line."""

    __slots__ = ("access_log", "count", "limit", "on_limit")

    def __init__(self, access_log: Any, limit: int, on_limit: Any) -> None:
        self.access_log = access_log
        self.count = 0
        self.limit = limit
        self.on_limit = on_limit

    def log(self, scope: dict[str, Any], status: int, nbytes: int, duration: float) -> None:
        self.count += 1
        if self.count == self.limit:
            self.on_limit()
        if self.access_log is not None:
            self.access_log.log(scope, status, nbytes, duration)


class Server:
    """The PAGI reference server (runner contract, docs/spec/server.md).

    ``Server(app=..., host=..., port=..., quiet=..., access_log=...,
    loop_type=..., **server_options).run()``. Every option of
    :class:`~pagi.server.config.ServerConfig` is accepted as a keyword; an
    unknown one raises ``TypeError`` naming it (R-RUN-4).
    ``access_log`` is a text file object, ``None`` to disable it, or absent
    for the default (standard error).
    """

    #: The command that re-executes this server on SIGHUP (set by ``pagi-server``).
    restart_argv: ClassVar[list[str] | None] = None

    def __init__(
        self,
        app: App,
        *,
        access_log: IO[str] | None = _DEFAULT_LOG,
        config: ServerConfig | None = None,
        worker_num: int | None = None,
        sockets: Sequence[socket.socket] = (),
        link: WorkerLink | None = None,
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
            AccessLog(
                access_log,
                self.config.access_log_format,
                json=self.config.log_format == "json",
            )
            if access_log is not None
            else None
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
        #: False once the drain starts: accept loops stop (see _serve_connections).
        self._accepting = True
        #: Accepted connections whose handler has not finished (some not yet
        #: registered: a TLS handshake, or a task not started yet). The drain
        #: waits for them too, so none is cut off unanswered.
        self._handling = 0
        self._connection_tasks: set[asyncio.Task[None]] = set()  # asyncio only
        #: A worker leaves SIGINT to its supervisor (a terminal's Ctrl-C reaches the
        #: whole process group; the supervisor turns it into one SIGTERM per worker).
        self.handle_sigint = True
        self.link = link
        self._created_paths: list[str] = []
        self._reexec = False
        self._kept_fds: list[int] = []
        self._metrics_listener: MetricsListener | None = None
        self._metrics_registry: Any = None

    # --- blocking entry point ----------------------------------------------------------
    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (R-RUN-5).

        With ``workers`` above 1 this process becomes the pre-fork supervisor.
        Exits the process with status 3 if lifespan startup (or a worker's
        startup) fails, 2 for a configuration error found at startup (a TLS
        file, say) and 1 if a listening socket cannot be bound.
        """
        if self.config.ssl_certfile:
            try:
                build_ssl_context(self.config)  # checked once, before any fork or bind
            except ConfigError as exc:
                log.error("%s", exc)
                raise SystemExit(CONFIG_ERROR) from None
        if self.config.workers > 1 and self.worker_num is None and not self._sockets:
            self._run_supervisor()
            return
        backend = "trio" if self.config.loop_type == "trio" else "asyncio"
        options: dict[str, Any] = {}
        if self.config.loop_type == "auto":
            # uvloop when it is installed (pagi[speed]): the same server, a faster loop.
            try:
                import uvloop
            except ImportError:
                pass
            else:
                options["use_uvloop"] = True
        elif self.config.loop_type == "uvloop":
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
        except ConfigError as exc:
            log.error("%s", exc)
            raise SystemExit(CONFIG_ERROR) from None
        except OSError as exc:
            log.error("%s", _listen_error(exc))
            raise SystemExit(1) from None
        if self._reexec:
            self._exec_again()

    def _run_supervisor(self) -> None:
        _preload_event_loop(self.config.loop_type)

        def bind(cfg: ServerConfig) -> list[socket.socket]:
            sockets, self._created_paths = bind_sockets(cfg, listen_tcp=not cfg.reuse_port)
            drop_privileges(cfg.user, cfg.group)
            return sockets

        metrics: MultiprocessRun | None = None
        try:
            supervisor = Supervisor(
                self.config, self._run_worker, bind, stop_new=stop_new_connections
            )
            if self.config.metrics_bind:
                # Bound before the supervisor binds and drops privileges.
                metrics = MultiprocessRun(self.config.metrics_bind, lambda: len(supervisor.workers))
                supervisor.on_exit = metrics.worker_exited
            supervisor.run()
        except OSError as exc:
            log.error("%s", _listen_error(exc))
            raise SystemExit(1) from None
        except ConfigError as exc:
            log.error("%s", exc)
            raise SystemExit(CONFIG_ERROR) from None
        finally:
            if metrics is not None:
                metrics.close()
            self._unlink_created()

    def _unlink_created(self) -> None:
        for path in self._created_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._created_paths = []

    def _run_worker(self, sockets: list[socket.socket], number: int, link: WorkerLink) -> int:
        """The body of one pre-fork worker: this server's app and options on ``sockets``."""
        cfg = self.config
        worker = Server(
            self.app,
            config=cfg.replace(
                workers=1, max_requests=jitter(cfg.max_requests, cfg.max_requests_jitter)
            ),
            access_log=self.access_log_stream,
            worker_num=number,
            sockets=reuse_port_sockets(cfg, sockets),
            link=link,
        )
        worker.handle_sigint = False
        worker.run()
        return 0

    def _exec_again(self) -> None:
        """Replace this process with a fresh one that inherits the listening sockets."""
        argv = self.restart_argv
        assert argv is not None
        # systemd's convention, with this very pid (exec keeps it): fds 3, 4, ...
        # Out of the way first (above 3 + how many), so no target number is taken.
        floor = 3 + len(self._kept_fds) + 1
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in self._kept_fds]
        for fd in self._kept_fds:
            os.close(fd)
        for offset, fd in enumerate(high):
            os.dup2(fd, 3 + offset, inheritable=True)
            os.close(fd)
        os.environ["LISTEN_FDS"] = str(len(high))
        os.environ["LISTEN_PID"] = str(os.getpid())
        log.info("restarting: %s", " ".join(argv))
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.execv(argv[0], argv)

    async def _serve_with_signals(self) -> None:
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals)
            try:
                await self.serve()
            except (LifespanFailure, ConfigError, OSError) as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _watch_signals(self) -> None:
        signals = [signal.SIGTERM, signal.SIGUSR1]
        if self.handle_sigint:
            signals.append(signal.SIGINT)
        if self.link is None:  # in a worker these belong to the supervisor
            signals += [signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2]
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                name = signal.Signals(signum).name
                if signum == signal.SIGUSR1:
                    self.reopen_logs()
                elif signum == signal.SIGHUP:
                    self.request_restart("SIGHUP")
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    if self._shutdown_requested and not self._reexec:
                        log.warning("second signal: stopping now")
                        self._force = True
                        self.force_close_all()
                        os._exit(1)
                    self._reexec = False
                    log.info(
                        "received %s: draining (in-flight requests have up to %gs;"
                        " %s again stops at once)",
                        name,
                        self.config.shutdown_timeout,
                        "Ctrl-C" if signum == signal.SIGINT else name,
                    )
                    self.request_shutdown()
                elif signum == signal.SIGUSR2 and os.environ.get("PAGI_RELOADER") == "1":
                    log.info("reload: draining (up to %gs)", self.config.shutdown_timeout)
                    self.request_shutdown()
                else:
                    log.warning("%s ignored: it concerns workers (run with --workers)", name)

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen the access log file and the logging file handlers."""
        if self.access_log is not None:
            self.access_log.reopen()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()  # reopened on the next record
                finally:
                    handler.release()
        log.info("log files reopened")

    def request_restart(self, why: str) -> None:
        """Drain and re-execute (single process); without a command, just say why not."""
        if self._shutdown_requested:
            return
        if self.restart_argv is None or self.worker_num is not None:
            log.warning("%s: no restart command (not started by pagi-server); ignored", why)
            return
        log.info(
            "%s: draining (up to %gs), then restarting with the same listening sockets",
            why,
            self.config.shutdown_timeout,
        )
        self._reexec = True
        self.request_shutdown()

    def _on_max_requests(self) -> None:
        log.info("served --max-requests %d requests", self.config.max_requests)
        if self.link is not None:
            self.link.retire()  # the supervisor starts a replacement, then stops us
        else:
            self.request_restart("--max-requests")

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
                except (LifespanFailure, ConfigError, OSError) as exc:
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
            if self._metrics_listener is not None:
                self._metrics_listener.close()
                self._metrics_listener = None
            if not self._reexec:
                self._unlink_created()
        if failure is not None:
            raise failure

    async def _serve_connections(
        self,
        listeners: list[anyio.abc.SocketListener],
        lifespan: Lifespan,
        ssl_context: ssl.SSLContext | None,
        task_status: anyio.abc.TaskStatus[Any],
    ) -> None:
        observer: Any = self.access_log
        metrics = None
        if self.config.metrics_bind:
            # In a worker the registry is None: values go to the supervisor's directory.
            metrics = observer = Metrics(self._metrics_registry, access_log=self.access_log)
        if self.config.max_requests:
            observer = _RequestCounter(observer, self.config.max_requests, self._on_max_requests)
        self.ctx = ctx = ServerContext(
            self.app, self.config, access_log=observer, state=lifespan.state, metrics=metrics
        )
        self._banner(ssl_context is not None)
        # Everything loaded so far (the app, its modules, lifespan state) lives
        # as long as the process: keep it out of the collector's full passes,
        # which otherwise show up as latency spikes under load.
        gc.freeze()
        task_status.started(self.addresses)
        if self.link is not None:
            self.link.ready()
        assert self._shutdown is not None
        self._accepting = True
        async with anyio.create_task_group() as conns:
            conns.start_soon(self._tick, ctx)
            async with anyio.create_task_group() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept_loop, listener, conns, ctx, ssl_context)
                await self._shutdown.wait()
                self._accepting = False  # a loop busy setting up stops once it is done
                accepting.cancel_scope.cancel()
            # No accept loop waits on a listening socket any more.
            if self._reexec:  # kept for the next process: new clients wait in the backlog
                self._kept_fds = [
                    os.dup(listener.extra(SocketAttribute.raw_socket).fileno())
                    for listener in listeners
                ]
            waiting: list[socket.socket] = []
            # This process holds the last descriptor of its listening sockets alone,
            # or with --reuse-port; a worker's shared ones are stopped by its
            # supervisor at shutdown (not in a rolling restart: the others serve on).
            last_holder = self.link is None or self.config.reuse_port
            for listener in listeners:
                raw = listener.extra(SocketAttribute.raw_socket)
                if not self._reexec:
                    # Closing the socket would reset every connection the kernel has
                    # queued on it (when this process holds the last descriptor), so
                    # new ones are stopped and the queued ones taken and served.
                    if last_holder:
                        stop_new_connections(raw)
                    waiting += _take_all(raw)
                raw.close()  # new connections are refused from here on
                await listener.aclose()
            for stream in await adopt(waiting):
                self._spawn_connection(conns, stream, ctx, ssl_context)
            await self._drain(ctx)
            await self._cancel_connection_tasks()
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
        link = self.link
        beat = min(1.0, cfg.worker_timeout / 5) if cfg.worker_timeout else 1.0
        while True:
            await anyio.sleep(interval)
            if link is not None and not link.beat(beat) and not self._shutdown_requested:
                log.warning("the supervisor is gone: draining")
                self.request_shutdown()
            now = time.monotonic()
            for conn in list(ctx.connections):
                try:
                    conn.check_timeouts(now)
                except Exception:
                    # A bug in one connection's check must not end the ticker, and
                    # with it the whole server.
                    log.exception("checking a connection's deadlines failed")

    async def _drain(self, ctx: ServerContext) -> None:
        ctx.draining = True
        for conn in list(ctx.connections):
            conn.begin_drain()
        with anyio.move_on_after(self.config.shutdown_timeout):
            # Connections accepted before the drain but not registered yet (their
            # task not started, or a TLS handshake under way) are waited for too:
            # they answer their first request and close.
            while ctx.connections or self._handling:
                await anyio.sleep(0.02)
        if ctx.connections:
            log.warning("shutdown timeout: closing %d connection(s)", len(ctx.connections))
            for conn in list(ctx.connections):
                conn.force_close()
            with anyio.move_on_after(1):
                while ctx.connections:
                    await anyio.sleep(0.02)

    async def _listen(self) -> list[anyio.abc.SocketListener]:
        if self.config.metrics_bind and self.link is None and self._metrics_listener is None:
            # One process: its own scrape endpoint (a supervisor has the workers' one).
            self._metrics_listener, self._metrics_registry = MetricsListener.single_process(
                self.config.metrics_bind
            )
        sockets = self._sockets
        if not sockets:
            sockets, self._created_paths = bind_sockets(self.config)
            drop_privileges(self.config.user, self.config.group)
        listeners = await open_listeners(sockets)
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
            log.info(
                "pagi-server listening on %s (pid %d, %s, %s loop)",
                where,
                os.getpid(),
                describe(),
                _loop_name(),
            )

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        tg: anyio.abc.TaskGroup,
        ctx: ServerContext,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        # Cancelled (and stopped by _accepting) before the listener closes, so no
        # accept waits on a closed socket; cancelling takes no connection from the
        # kernel that is not then served.
        while self._accepting:
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
                self._spawn_connection(tg, stream, ctx, ssl_context)

    def _spawn_connection(
        self,
        tg: anyio.abc.TaskGroup,
        stream: anyio.abc.ByteStream,
        ctx: ServerContext,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        """Start serving one connection in a task of its own.

        On asyncio the task is a plain ``asyncio`` task: an anyio task adds a
        cancel scope, an event and a wrapper coroutine to every connection
        (about 1.7 KiB of an idle connection's memory) for services the server
        does not use; it tracks these tasks itself, cancels any still running
        when it stops, and logs what one raises. Cancel scopes inside the
        task work as in any other (anyio supports native tasks).
        """
        self._handling += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio
            tg.start_soon(self._handle_counted, stream, ctx, ssl_context)
            return
        task = loop.create_task(self._handle_counted(stream, ctx, ssl_context))
        self._connection_tasks.add(task)
        task.add_done_callback(self._connection_done)

    def _connection_done(self, task: asyncio.Task[None]) -> None:
        self._connection_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("connection task failed", exc_info=task.exception())

    async def _cancel_connection_tasks(self) -> None:
        """Cancel the connection tasks still running at the end, and wait for them."""
        tasks = list(self._connection_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks, timeout=5)

    async def _handle_counted(
        self,
        raw: anyio.abc.ByteStream,
        ctx: ServerContext,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        """Serve one connection, counted in ``_handling`` until it ends.

        One coroutine rather than a counting wrapper around a handler: it stays
        on the stack of every connection for its whole life (~250 bytes each).
        """
        try:
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
                            raw,
                            server_side=True,
                            ssl_context=ssl_context,
                            standard_compatible=False,
                        )
                except ssl.SSLError as exc:
                    if exc.reason in ("HTTP_REQUEST", "HTTPS_PROXY_REQUEST"):
                        await _refuse_plain_http(raw)
                    await raw.aclose()
                    return
                except (
                    TimeoutError,
                    OSError,
                    anyio.BrokenResourceError,
                    anyio.EndOfStream,
                ):
                    await raw.aclose()
                    return
                tls = tls_scope_info(stream)
            info = _connection_info(raw, tls, cfg.root_path, ctx.state)
            if info is None:  # already gone: nothing to serve
                await stream.aclose()
                return
            info.proxy = self._proxy
            alpn = stream.extra(TLSAttribute.alpn_protocol, None) if tls is not None else None
            await serve_connection(ctx, stream, info, alpn=alpn)
        finally:
            self._handling -= 1


def _preload_event_loop(loop_type: str) -> None:
    """Import the workers' event loop modules once, in the supervisor, before forking.

    Otherwise every worker, and every respawned one, imports them itself
    after the fork: anyio's trio backend takes ~0.26 s, its asyncio backend
    ~0.08 s, which is most of a worker's start (respawn time after a crash,
    each step of a rolling restart).
    """
    names = ["anyio._backends._trio" if loop_type == "trio" else "anyio._backends._asyncio"]
    if loop_type in ("auto", "uvloop"):
        names.append("uvloop")
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # the worker reports it (a missing optional loop)


def _loop_name() -> str:
    """Which event loop runs this process: uvloop, asyncio or trio (for the startup line)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _connection_info(
    raw: anyio.abc.ByteStream,
    tls: dict[str, Any] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> ConnectionInfo | None:
    """The connection's addresses; None once it is gone (uvloop then forgets its socket)."""
    local = raw.extra(SocketAttribute.local_address, None)
    if local is None:
        return None
    remote = raw.extra(SocketAttribute.remote_address, None)
    if isinstance(local, tuple):
        server: tuple[str, int | None] = (str(local[0]), int(local[1]))
        client = (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None
    else:
        server = (str(local), None)  # R-HTTP-3: [path, None] for a Unix socket
        client = None
    return ConnectionInfo(client=client, server=server, tls=tls, root_path=root_path, state=state)


def _take_all(listening: socket.socket) -> list[socket.socket]:
    """Every connection queued on ``listening`` now (none on an error such as EMFILE)."""
    taken: list[socket.socket] = []
    while True:
        try:
            batch = take_waiting(listening)
        except OSError:
            return taken
        if not batch:
            return taken
        taken += batch


def _listen_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text if text.startswith("cannot listen") else f"cannot listen: {text}"


async def _refuse_plain_http(raw: anyio.abc.ByteStream) -> None:
    """Plain HTTP on the TLS port: a readable 400 instead of an empty reply."""
    remote = raw.extra(SocketAttribute.remote_address, None)
    who = remote[0] if isinstance(remote, tuple) else "unix"
    log.info("plain HTTP from %s on the HTTPS port: answered 400", who)
    with anyio.move_on_after(1):
        try:
            await raw.send(_PLAIN_HTTP_ON_TLS)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


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
