"""Pre-fork worker supervisor for ``--workers N``.

The supervisor binds the listening socket once, then forks N workers that
each run a full :class:`~pagi.server.server.Server` (own event loop, own
lifespan, R-LIFE-2) on the inherited socket; the kernel spreads the
connections. The supervisor only watches:

* a worker that dies is replaced, unless it exited with status 3 (its
  lifespan startup failed): respawning would fail the same way, so the
  supervisor stops everything and exits 3;
* SIGTERM/SIGINT are passed to every worker, which drain gracefully; after
  ``shutdown_timeout`` plus a margin, stragglers get SIGKILL;
* SIGHUP restarts the workers one at a time (rolling restart).

Every option reaches the workers unchanged, since they are built from the
same option dict (the Perl server dropped several, server-digest 8.8).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any

__all__ = ["Supervisor"]

log = logging.getLogger("pagi.server")

STARTUP_FAILED = 3


class Supervisor:
    """Forks and supervises worker processes; see the module docstring."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = dict(options)
        self.count = int(self.options.pop("workers", 2))
        self.workers: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self.failed = False
        self._signals: list[int] = []

    def _bind(self) -> socket.socket:
        uds = self.options.get("uds")
        backlog = int(self.options.get("backlog", 2048))
        if uds:
            if os.path.exists(uds):
                os.unlink(uds)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(uds)
            sock.listen(backlog)
            return sock
        fd = self.options.get("fd")
        if fd is not None:
            return socket.socket(fileno=int(fd))
        host = self.options.get("host", "127.0.0.1")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server(
            (host, int(self.options.get("port", 5000))), family=family, backlog=backlog
        )

    def _spawn(self, sock: socket.socket, number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            from pagi.server.server import Server

            code = 0
            try:
                options = {k: v for k, v in self.options.items() if k not in ("uds", "fd")}
                Server(sockets=[sock], worker_num=number, **options).run()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d crashed", number)
                code = 1
            os._exit(code)
        self.workers[pid] = number

    def run(self) -> None:
        """Supervise until told to stop; exits the process with the right status."""
        sock = self._bind()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda s, f: self._signals.append(s))
        for number in range(1, self.count + 1):
            self._spawn(sock, number)
        deadline: float | None = None
        while self.workers:
            while self._signals:
                self._on_signal(self._signals.pop(0), sock)
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + float(self.options.get("shutdown_timeout", 30)) + 5
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    for worker in self.workers:
                        os.kill(worker, signal.SIGKILL)
                time.sleep(0.05)
                continue
            number = self.workers.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == STARTUP_FAILED:
                log.error("worker %d failed to start; stopping", number)
                self.failed = True
                self._stop()
                deadline = deadline or time.monotonic() + 10
            elif not self.stopping:
                log.warning("worker %d (pid %d) exited with %d; respawning", number, pid, code)
                self._spawn(sock, number)
        sock.close()
        if self.failed:
            raise SystemExit(STARTUP_FAILED)

    def _stop(self) -> None:
        self.stopping = True
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum: int, sock: socket.socket) -> None:
        if signum == signal.SIGHUP and not self.stopping:
            log.info("SIGHUP: restarting workers one at a time")
            for pid, number in list(self.workers.items()):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
                del self.workers[pid]
                self._spawn(sock, number)
            return
        if self.stopping:
            for pid in self.workers:
                os.kill(pid, signal.SIGKILL)
            return
        self._stop()
