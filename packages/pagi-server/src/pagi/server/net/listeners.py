"""Listening sockets: TCP, Unix, an inherited descriptor or sockets handed in.

Both the server (one process) and the pre-fork supervisor (which binds once
and hands the socket to its workers) open listeners; the rules for a Unix
socket path left behind by a dead server live here once.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from pagi.server.config import ServerConfig

__all__ = [
    "bind_socket",
    "listener_addresses",
    "listener_closed",
    "open_listeners",
    "remove_stale_socket",
]


async def open_listeners(
    cfg: ServerConfig, sockets: Sequence[socket.socket] = ()
) -> list[anyio.abc.SocketListener]:
    """Listeners for ``sockets`` if given, else for ``--fd``, ``--uds`` or host and port."""
    listeners: list[anyio.abc.SocketListener] = []
    if sockets:
        for sock in sockets:
            listeners.append(await anyio.abc.SocketListener.from_socket(sock))
    elif cfg.fd is not None:
        sock = socket.socket(fileno=cfg.fd)
        listeners.append(await anyio.abc.SocketListener.from_socket(sock))
    elif cfg.uds:
        remove_stale_socket(cfg.uds)
        listeners.append(await anyio.create_unix_listener(cfg.uds, backlog=cfg.backlog))
    else:
        multi = await anyio.create_tcp_listener(
            local_host=cfg.host, local_port=cfg.port, backlog=cfg.backlog
        )
        listeners.extend(multi.listeners)  # type: ignore[arg-type]
    return listeners


def bind_socket(cfg: ServerConfig) -> socket.socket:
    """A bound, listening socket for ``--fd``, ``--uds`` or host and port (pre-fork)."""
    if cfg.fd is not None:
        return socket.socket(fileno=cfg.fd)
    if cfg.uds:
        remove_stale_socket(cfg.uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(cfg.uds)
        sock.listen(cfg.backlog)
        return sock
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    return socket.create_server((cfg.host, cfg.port), family=family, backlog=cfg.backlog)


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
