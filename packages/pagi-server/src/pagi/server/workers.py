"""Pre-fork worker supervisor for ``--workers N``.

The supervisor binds the listening socket once, then forks N workers that
each run the callable it was given on the inherited socket (the server
passes one that runs a full server there: own event loop, own lifespan,
R-LIFE-2); the kernel spreads the connections. The supervisor knows nothing
of servers, protocols or apps: it imports only the configuration, so it
can supervise any worker body. It only watches:

* a worker that dies is replaced, unless it exited with status 3 (its
  lifespan startup failed): respawning would fail the same way, so the
  supervisor stops everything and exits 3. A worker that dies within a
  second of its start is replaced after a short pause, so a crash at start
  cannot turn into a busy fork loop;
* SIGTERM/SIGINT are passed to every worker as one SIGTERM, which drain
  gracefully (workers ignore SIGINT, so a terminal's Ctrl-C, which reaches
  the whole process group, does not count twice); after ``shutdown_timeout``
  plus a margin, or on a second signal, stragglers get SIGKILL;
* SIGHUP restarts the workers one at a time (rolling restart).

Every option reaches the workers unchanged: the worker callable closes over
the supervising server's own config, app and access log (the Perl server
dropped several options, server-digest 8.8).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from pagi.server.config import ServerConfig

__all__ = ["STARTUP_FAILED", "Supervisor", "WorkerBody"]

log = logging.getLogger("pagi.server")

STARTUP_FAILED = 3
_KILL_MARGIN = 5.0
_QUICK_DEATH = 1.0

#: What a worker process runs: ``(listening socket, worker number) -> exit status``.
WorkerBody = Callable[[socket.socket, int], int]
#: Binds the listening socket the workers share (called once, in the supervisor).
Binder = Callable[[ServerConfig], socket.socket]


class Supervisor:
    """Forks and supervises worker processes; see the module docstring."""

    def __init__(self, config: ServerConfig, work: WorkerBody, bind: Binder) -> None:
        self.config = config
        self.work = work
        self.bind = bind
        self.count = self.config.workers
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (worker number, start time)
        self.stopping = False
        self.failed = False
        self._signals: list[int] = []
        self._created_uds: str | None = None

    def _spawn(self, sock: socket.socket, number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                code = self.work(sock, number)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d crashed", number)
            finally:
                os._exit(code)
        self.workers[pid] = (number, time.monotonic())

    def run(self) -> None:
        """Supervise until told to stop; exits the process with the right status."""
        sock = self.bind(self.config)
        if self.config.uds and self.config.fd is None:
            self._created_uds = self.config.uds  # ours to unlink at the end
        previous = {
            signum: signal.signal(signum, lambda s, f: self._signals.append(s))
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            self._supervise(sock)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            sock.close()
            if self._created_uds:
                try:
                    os.unlink(self._created_uds)
                except OSError:
                    pass
        if self.failed:
            raise SystemExit(STARTUP_FAILED)

    def _supervise(self, sock: socket.socket) -> None:
        if not self.config.quiet:
            address = sock.getsockname()
            where = f"unix:{address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"
            log.info(
                "pagi-server supervisor (pid %d) on %s with %d workers",
                os.getpid(),
                where,
                self.count,
            )
        for number in range(1, self.count + 1):
            self._spawn(sock, number)
        deadline: float | None = None
        while self.workers:
            while self._signals:
                self._on_signal(self._signals.pop(0), sock)
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.config.shutdown_timeout + _KILL_MARGIN
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    self._kill_all(signal.SIGKILL)
                time.sleep(0.05)
                continue
            if pid not in self.workers:
                continue
            number, started = self.workers.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == STARTUP_FAILED:
                if not self.failed:
                    log.error("worker %d failed to start; stopping", number)
                self.failed = True
                self._stop()
            elif not self.stopping:
                log.warning("worker %d (pid %d) exited with %d; respawning", number, pid, code)
                if time.monotonic() - started < _QUICK_DEATH:
                    time.sleep(0.5)
                self._spawn(sock, number)

    def _kill_all(self, signum: int) -> None:
        for pid in self.workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _stop(self) -> None:
        self.stopping = True
        self._kill_all(signal.SIGTERM)

    def _on_signal(self, signum: int, sock: socket.socket) -> None:
        if signum == signal.SIGHUP and not self.stopping:
            log.info("SIGHUP: restarting workers one at a time")
            for pid, (number, _) in list(self.workers.items()):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                self._reap(pid, time.monotonic() + self.config.shutdown_timeout + _KILL_MARGIN)
                del self.workers[pid]
                self._spawn(sock, number)
            return
        if signum == signal.SIGHUP:
            return
        if self.stopping:
            log.warning("second signal: killing workers")
            self._kill_all(signal.SIGKILL)
            return
        log.info("received %s: stopping workers", signal.Signals(signum).name)
        self._stop()

    @staticmethod
    def _reap(pid: int, deadline: float) -> None:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = float("inf")
            time.sleep(0.05)
