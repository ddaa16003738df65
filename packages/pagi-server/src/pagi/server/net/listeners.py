"""Listening sockets: TCP, Unix, an inherited descriptor or sockets handed in.

Both the server (one process) and the pre-fork supervisor (which binds once
and hands the socket to its workers) open listeners; the rules for a Unix
socket path left behind by a dead server live here once.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import struct
import weakref
from collections.abc import Sequence

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from pagi.server.config import ServerConfig

__all__ = [
    "bind_sockets",
    "listener_addresses",
    "listener_closed",
    "open_listeners",
    "remove_stale_socket",
    "reuse_port_sockets",
    "stop_new_connections",
    "systemd_sockets",
]

log = logging.getLogger("pagi.server")

_SD_LISTEN_FDS_START = 3


async def open_listeners(sockets: Sequence[socket.socket]) -> list[anyio.abc.SocketListener]:
    """anyio listeners for bound, listening ``sockets``."""
    return [await anyio.abc.SocketListener.from_socket(sock) for sock in sockets]


def systemd_sockets() -> list[socket.socket]:
    """Sockets passed by systemd socket activation (``LISTEN_FDS``/``LISTEN_PID``).

    Taken only when ``LISTEN_PID`` is this process; the variables are then
    removed from the environment so that children do not take them again.
    """
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if not pid or not count or not pid.isdigit() or int(pid) != os.getpid():
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sockets = []
    for fd in range(_SD_LISTEN_FDS_START, _SD_LISTEN_FDS_START + int(count or 0)):
        os.set_inheritable(fd, True)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def bind_sockets(
    cfg: ServerConfig, *, listen_tcp: bool = True
) -> tuple[list[socket.socket], list[str]]:
    """Bound, listening sockets for the configuration, and the Unix socket files made.

    Sockets from systemd socket activation take the place of every configured
    address. A socket that cannot be bound raises ``OSError`` naming the
    address; the ones bound before it are closed. ``listen_tcp=False`` (a
    supervisor with ``--reuse-port``) binds TCP sockets without listening:
    they hold the port while each worker listens on its own.
    """
    inherited = systemd_sockets()
    if inherited:
        return inherited, []
    sockets: list[socket.socket] = []
    created: list[str] = []
    try:
        for spec in cfg.listen_specs():
            try:
                if spec.kind == "fd":
                    sockets.append(socket.socket(fileno=spec.fd))
                elif spec.kind == "unix":
                    sockets.append(_bind_unix(spec.path, cfg))
                    created.append(spec.path)
                else:
                    sockets.extend(_bind_tcp(spec.host, spec.port, cfg, listen_tcp))
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot listen on {spec}: {exc.strerror or exc}"
                ) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, created


def _bind_unix(path: str, cfg: ServerConfig) -> socket.socket:
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Created owner-only, then opened up: no window in which anyone else can connect.
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        if cfg.uds_mode is not None:
            os.chmod(path, int(cfg.uds_mode, 8))
        sock.listen(cfg.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_tcp(host: str, port: int, cfg: ServerConfig, listen: bool = True) -> list[socket.socket]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen: set[tuple[int, str]] = set()
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in infos:
            key = (int(family), str(address[0]))
            if key in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            _bound_here.add(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # one free port for every address of the name
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            if listen:
                sock.listen(cfg.backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def reuse_port_sockets(cfg: ServerConfig, sockets: Sequence[socket.socket]) -> list[socket.socket]:
    """For a worker with ``--reuse-port``: its own socket for every TCP address.

    The supervisor's TCP sockets keep the port but do not stay in the kernel's
    balancing once the workers have theirs; Unix and inherited sockets are
    shared as they are.
    """
    if not cfg.reuse_port or not hasattr(socket, "SO_REUSEPORT"):
        return list(sockets)
    own: list[socket.socket] = []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEPORT
        ):
            host, port = sock.getsockname()[:2]
            own.extend(_bind_tcp(host, port, cfg))
            sock.close()
        else:
            own.append(sock)
    return own


#: TCP sockets this process created and bound (not inherited from systemd or --fd).
_bound_here: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)  # Linux
#: Classic BPF, run on the TCP header: drop a segment whose flags have SYN without ACK
#: (a new connection), keep everything else (the ACK that completes a handshake
#: already under way, which then joins the queue instead of being reset later).
_DROP_SYN = b"".join(
    struct.pack("HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x30, 0, 0, 13),  # ldb [13]: the flags byte
        (0x54, 0, 0, 0x12),  # and #(SYN | ACK)
        (0x15, 0, 1, 0x02),  # jeq #SYN: next, else skip one
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep all of it
    )
)


def stop_new_connections(sock: socket.socket) -> bool:
    """Make a TCP listening socket drop new connection attempts; False where unsupported.

    Closing a listening socket resets every connection queued on it. To
    close one without resetting anyone, the last holder first stops new
    connections from entering its queue (a socket filter: new SYNs are
    dropped, so their clients retry and, the socket being closed by then,
    are refused), then takes what is queued and closes it. Connections
    already queued, or whose handshake is under way, stay acceptable. Linux
    only, and only for TCP sockets this process bound: an inherited one
    (systemd, an fd) lives on elsewhere, and the filter would go with it.
    """
    if sock not in _bound_here or sock.fileno() < 0:
        return False
    program = ctypes.create_string_buffer(_DROP_SYN)  # copied by the kernel
    fprog = struct.pack("HL", len(_DROP_SYN) // 8, ctypes.addressof(program))  # sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def listener_addresses(
    listeners: Sequence[anyio.abc.SocketListener],
) -> list[tuple[str, int | None]]:
    """``(host, port)`` per listener; ``(path, None)`` for a Unix socket."""
    addresses: list[tuple[str, int | None]] = []
    for listener in listeners:
        address = listener.extra(SocketAttribute.local_address)
        if isinstance(address, tuple):
            addresses.append((str(address[0]), int(address[1])))
        else:
            addresses.append((str(address), None))
    return addresses


def listener_closed(exc: OSError) -> bool:
    """True for the errors a listening socket gives once it has been closed."""
    return exc.errno in (errno.EBADF, errno.EINVAL, errno.ENOTSOCK)


def remove_stale_socket(path: str) -> None:
    """Unlink a Unix socket file nobody listens on; refuse if a server is there."""
    if os.path.exists(path) and _is_stale_socket(path):
        os.unlink(path)


def _is_stale_socket(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return True
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another server is listening on {path}")
