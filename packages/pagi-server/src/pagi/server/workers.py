"""Pre-fork worker supervisor for ``--workers N``.

The supervisor binds the listening sockets once, then forks N workers that
each run the callable it was given on the inherited sockets (the server
passes one that runs a full server there: own event loop, own lifespan,
R-LIFE-2); the kernel spreads the connections. The supervisor knows nothing
of servers, protocols or apps: it imports only the configuration and a
listening-socket helper, so it can supervise any worker body.

Each worker gets the write end of a pipe (:class:`WorkerLink`) on which it
reports, one byte at a time:

* ``R``: ready (lifespan startup done, listening). A worker that exits
  before it was ready (rather than being killed by a signal) failed to
  start: respawning would fail the same way, so the supervisor stops
  everything and exits 3, naming the worker and its exit status. No
  respawn loop;
* ``.``: a heartbeat, at least every ``worker_timeout / 5`` seconds from the
  worker's ticker. A ready worker silent for ``--worker-timeout`` (its event
  loop blocked by a sync call, say) is killed with a log line naming it and
  replaced;
* ``M``: it has served ``--max-requests`` requests. A replacement is forked;
  once the replacement is ready the old worker gets SIGTERM and drains, so
  the listener never goes unserved.

Signals:

* SIGTERM/SIGINT are passed to every worker as one SIGTERM, which drain
  gracefully (workers ignore SIGINT, so a terminal's Ctrl-C, which reaches
  the whole process group, does not count twice); after ``shutdown_timeout``
  plus a margin, or on a second signal, stragglers get SIGKILL;
* SIGHUP: rolling restart, one worker at a time, each replacement ready
  before its predecessor is told to drain (new code, new TLS certificates);
* SIGTTIN adds a worker, SIGTTOU removes one (never below one);
* SIGUSR1 is passed on to the workers (they reopen their log files);
  SIGUSR2 is logged and ignored.

A worker that dies unexpectedly after it was ready is respawned; if it ran
for less than a second the respawn waits, doubling up to 10 s, so a crash
loop cannot become a busy fork loop. A worker whose pipe breaks (the
supervisor died) stops by itself, so no worker outlives its supervisor.

Every option reaches the workers unchanged: the worker callable closes over
the supervising server's own config, app and access log (the Perl server
dropped several options, server-digest 8.8).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from pagi.server.config import ServerConfig

__all__ = ["STARTUP_FAILED", "Supervisor", "WorkerBody", "WorkerLink"]

log = logging.getLogger("pagi.server")

STARTUP_FAILED = 3
_KILL_MARGIN = 5.0
_QUICK_DEATH = 1.0
_MAX_BACKOFF = 10.0
_HANDLED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class WorkerLink:
    """A worker's end of its pipe to the supervisor (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._last_beat = 0.0

    def _write(self, byte: bytes) -> bool:
        try:
            os.write(self.fd, byte)
        except BlockingIOError:
            pass  # the supervisor is behind; it will read the earlier bytes
        except OSError:
            return False  # the supervisor is gone
        return True

    def ready(self) -> bool:
        return self._write(b"R")

    def beat(self, interval: float = 1.0) -> bool:
        """A heartbeat, at most one per ``interval``; False once the supervisor is gone."""
        now = time.monotonic()
        if now - self._last_beat < interval:
            return True
        self._last_beat = now
        return self._write(b".")

    def retire(self) -> bool:
        """Ask to be replaced (``--max-requests`` reached)."""
        return self._write(b"M")


#: What a worker process runs: ``(listening sockets, worker number, link) -> exit status``.
WorkerBody = Callable[[list[socket.socket], int, WorkerLink], int]
#: Binds the listening sockets the workers share (called once, in the supervisor).
Binder = Callable[[ServerConfig], list[socket.socket]]


@dataclass
class _Worker:
    number: int
    started: float
    fd: int
    ready: bool = False
    last_beat: float = 0.0
    leaving: bool = False  # told to stop (retired, removed, replaced, shutdown): no respawn
    replaces: int | None = None  # pid of the worker to stop once this one is ready
    retire_asked: bool = False


class Supervisor:
    """Forks and supervises worker processes; see the module docstring."""

    def __init__(
        self,
        config: ServerConfig,
        work: WorkerBody,
        bind: Binder,
        stop_new: Callable[[socket.socket], object] | None = None,
    ) -> None:
        self.config = config
        self.work = work
        self.bind = bind
        #: Called on each listening socket at SIGTERM so that new connections are not
        #: queued (given by the server: the supervisor imports nothing but the config).
        self.stop_new = stop_new
        self.count = self.config.workers
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.failed = False
        self.failure: str | None = None
        self._signals: list[int] = []
        self._pending: list[tuple[float, int]] = []  # (respawn time, worker number)
        self._backoff: dict[int, float] = {}
        self._rolling: list[int] = []  # pids still to be replaced by a rolling restart
        self._rolling_current: int | None = None
        self._sockets: list[socket.socket] = []
        self._deadline: float | None = None
        #: Called with the pid of every reaped worker (metrics bookkeeping).
        self.on_exit: Callable[[int], None] | None = None

    # --- forking ------------------------------------------------------------------------
    def _spawn(self, number: int, replaces: int | None = None) -> int:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read_fd)
                for other in self.workers.values():
                    try:
                        os.close(other.fd)
                    except OSError:
                        pass
                os.set_blocking(write_fd, False)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                for signum in (signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
                    signal.signal(signum, signal.SIG_IGN)  # the worker's server may take them
                signal.signal(signal.SIGUSR2, signal.SIG_IGN)
                code = self.work(self._sockets, number, WorkerLink(write_fd))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d crashed", number)
            finally:
                os._exit(code)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.workers[pid] = _Worker(number, time.monotonic(), read_fd, replaces=replaces)
        return pid

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Supervise until told to stop; exits the process with the right status."""
        self._sockets = self.bind(self.config)
        previous = {
            signum: signal.signal(signum, lambda s, f: self._signals.append(s))
            for signum in _HANDLED
        }
        try:
            self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in self._sockets:
                sock.close()
        if self.failed:
            raise SystemExit(STARTUP_FAILED)

    def _supervise(self) -> None:
        if not self.config.quiet:
            where = ", ".join(_describe(s) for s in self._sockets)
            log.info(
                "pagi-server supervisor (pid %d) on %s with %d workers",
                os.getpid(),
                where,
                self.count,
            )
        for number in range(1, self.count + 1):
            self._spawn(number)
        while self.workers or (self._pending and not self.stopping):
            while self._signals:
                self._on_signal(self._signals.pop(0))
            self._read_links(0.05)
            self._reap()
            now = time.monotonic()
            self._check_heartbeats(now)
            if self._pending and not self.stopping:
                due = [p for p in self._pending if p[0] <= now]
                for item in due:
                    self._pending.remove(item)
                    self._spawn(item[1])
            self._advance_rolling()
            if self._deadline is not None and now > self._deadline:
                self._kill_all(signal.SIGKILL)
                self._deadline = float("inf")

    def _read_links(self, timeout: float) -> None:
        fds = {w.fd: pid for pid, w in self.workers.items() if w.fd >= 0}
        if not fds:
            time.sleep(timeout)
            return
        try:
            readable, _, _ = select.select(list(fds), [], [], timeout)
        except InterruptedError:
            return
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return
            raise
        now = time.monotonic()
        for fd in readable:
            pid = fds[fd]
            worker = self.workers[pid]
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # the worker is exiting; waitpid will tell how
                os.close(fd)
                worker.fd = -1
                continue
            worker.last_beat = now
            if b"R" in data and not worker.ready:
                worker.ready = True
                self._backoff.pop(worker.number, None)
                if worker.replaces is not None:
                    self._terminate(worker.replaces)
            if b"M" in data and not worker.retire_asked and not self.stopping:
                worker.retire_asked = True
                log.info(
                    "worker %d (pid %d) served its --max-requests; replacing it",
                    worker.number,
                    pid,
                )
                self._replace(pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if self.on_exit is not None:
                try:
                    self.on_exit(pid)
                except Exception:
                    log.exception("after worker %d exited", worker.number)
            if worker.fd >= 0:
                os.close(worker.fd)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping or worker.leaving:
                continue
            if code == STARTUP_FAILED or (not worker.ready and code >= 0):
                how = f"exit status {code}" if code >= 0 else f"signal {-code}"
                self.failure = f"worker {worker.number} (pid {pid}) failed to start ({how})"
                log.error("%s; stopping (see the worker's messages above)", self.failure)
                self.failed = True
                self._stop()
                continue
            delay = 0.0
            if time.monotonic() - worker.started < _QUICK_DEATH:
                delay = min(self._backoff.get(worker.number, 0.25) * 2, _MAX_BACKOFF)
                self._backoff[worker.number] = delay
            log.warning(
                "worker %d (pid %d) exited with %d; respawning%s",
                worker.number,
                pid,
                code,
                f" in {delay:.1f}s" if delay else "",
            )
            self._pending.append((time.monotonic() + delay, worker.number))
            if worker.replaces is not None:
                self._terminate(worker.replaces)

    def _check_heartbeats(self, now: float) -> None:
        timeout = self.config.worker_timeout
        if not timeout or self.stopping:
            return
        for pid, worker in list(self.workers.items()):
            if worker.ready and not worker.leaving and now - worker.last_beat > timeout:
                log.error(
                    "worker %d (pid %d) sent no heartbeat for %.1fs (--worker-timeout %g;"
                    " event loop blocked?); killing it",
                    worker.number,
                    pid,
                    now - worker.last_beat,
                    timeout,
                )
                worker.last_beat = now  # one kill, one line
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # --- replacing, adding, removing -------------------------------------------------------
    def _replace(self, pid: int) -> None:
        """Fork a replacement for ``pid``; ``pid`` gets SIGTERM once it is ready."""
        old = self.workers.get(pid)
        if old is None or old.leaving:
            return
        old.leaving = True
        self._spawn(old.number, replaces=pid)

    def _terminate(self, pid: int) -> None:
        worker = self.workers.get(pid)
        if worker is not None:
            worker.leaving = True
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _advance_rolling(self) -> None:
        if self.stopping:
            self._rolling.clear()
            return
        if self._rolling_current is not None and self._rolling_current in self.workers:
            return  # its replacement is starting or it is draining
        self._rolling_current = None
        while self._rolling:
            pid = self._rolling.pop(0)
            if pid in self.workers and not self.workers[pid].leaving:
                self._rolling_current = pid
                self._replace(pid)
                return

    def _add_worker(self) -> None:
        used = {w.number for w in self.workers.values() if not w.leaving}
        used.update(n for _, n in self._pending)
        number = next(n for n in range(1, len(used) + 2) if n not in used)
        self.count += 1
        log.info("SIGTTIN: adding worker %d (now %d)", number, self.count)
        self._spawn(number)

    def _remove_worker(self) -> None:
        if self.count <= 1:
            log.info("SIGTTOU: already down to one worker")
            return
        self.count -= 1
        live = [(w.number, pid) for pid, w in self.workers.items() if not w.leaving]
        if not live:
            return
        number, pid = max(live)
        log.info("SIGTTOU: stopping worker %d (pid %d) (now %d)", number, pid, self.count)
        self._terminate(pid)

    def _kill_all(self, signum: int) -> None:
        for pid in self.workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _stop(self) -> None:
        self.stopping = True
        self._pending.clear()
        self._deadline = time.monotonic() + self.config.shutdown_timeout + _KILL_MARGIN
        for worker in self.workers.values():
            worker.leaving = True
        # New connections are dropped from here on (their clients retry and are
        # refused once the sockets are closed); the ones already queued stay for
        # the workers' drains to take, so the last close resets nobody.
        if self.stop_new is not None:
            for sock in self._sockets:
                self.stop_new(sock)
        self._kill_all(signal.SIGTERM)
        # No worker will be forked any more. Holding the listening sockets open
        # until the workers have drained would let clients connect into a backlog
        # nobody accepts, to be reset when the supervisor exits; without this copy
        # the last draining worker closes them, taking what is queued (refused
        # from then on).
        for sock in self._sockets:
            sock.close()

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGUSR2:
            log.warning("SIGUSR2 ignored (no binary upgrade; SIGHUP restarts the workers)")
            return
        if signum == signal.SIGUSR1:
            log.info("SIGUSR1: workers reopen their log files")
            self._kill_all(signal.SIGUSR1)
            return
        if self.stopping:
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.warning("second signal: killing workers")
                self._kill_all(signal.SIGKILL)
            return
        if signum == signal.SIGHUP:
            log.info("SIGHUP: restarting workers one at a time")
            self._rolling = [pid for pid, w in self.workers.items() if not w.leaving]
            self._rolling_current = None
            return
        if signum == signal.SIGTTIN:
            self._add_worker()
            return
        if signum == signal.SIGTTOU:
            self._remove_worker()
            return
        log.info(
            "received %s: stopping workers (up to %gs for in-flight requests)",
            signal.Signals(signum).name,
            self.config.shutdown_timeout,
        )
        self._stop()


def _describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if isinstance(address, str):
        return f"unix:{address}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"


def jitter(limit: int, spread: int) -> int:
    """``limit`` plus a random 0..``spread``, so workers do not all recycle at once."""
    return limit + random.randint(0, spread) if spread > 0 else limit
