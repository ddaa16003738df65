"""Connections waiting in the listening socket's queue when a drain starts (bench/chaos.py).

Closing a listening socket resets every connection the kernel has queued on
it. The drain takes them first and answers them; with ``--workers`` the
supervisor lets go of its copy of the socket at SIGTERM, so clients arriving
during the drain are refused at once instead of queueing where nobody
accepts, to be reset when the supervisor exits. Whoever holds the last
descriptor first stops new connections from entering the queue (Linux), so
none can slip in between taking the queue and closing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from server_helpers import hello, read_response
from server_subprocess import PID_APP, ServerProcess, free_port, wait_children, write_app

from pagi.server.config import ServerConfig
from pagi.server.net import listeners
from pagi.server.net.listeners import bind_sockets, stop_new_connections

pytestmark = pytest.mark.anyio

GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def read_all(client: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything until the server closes (raises on a reset or a timeout)."""
    client.settimeout(timeout)
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


async def test_a_connection_queued_when_the_drain_starts_is_answered(serve: Any) -> None:
    state: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/stop":
            state["server"].request_shutdown()
            # The event loop is blocked here: this client's connection and request
            # wait in the listening socket's queue when the drain begins.
            state["client"] = socket.create_connection(state["address"])
            state["client"].sendall(GET)
        await hello(scope, receive, send)

    async with serve(app) as running:
        state["server"] = running.server
        state["address"] = (running.host, running.port)
        stream = await running.connect()
        await stream.send(b"GET /stop HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
    client: socket.socket = state["client"]
    try:
        assert read_all(client).startswith(b"HTTP/1.1 200 ")
    finally:
        client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # a subprocess; one run is enough
def test_clients_arriving_during_a_workers_drain_are_refused_not_reset(
    tmp_path: Path, anyio_backend: str
) -> None:
    write_app(tmp_path, "papp.py", PID_APP)
    port = free_port()
    server = ServerProcess(
        ["papp.py", "--workers", "2", "--port", str(port), "--shutdown-timeout", "10"], tmp_path
    )
    try:
        server.wait_port(port)  # the supervisor's socket: the workers may still be starting
        wait_children(server.proc.pid, 2)
        deadline = time.monotonic() + 15
        while server.stderr.count("pagi-server listening on") < 2:  # each worker, once ready
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.02)
        slow: list[bytes] = []
        slow_client = socket.create_connection(("127.0.0.1", port))
        slow_client.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")  # 1 s in the app
        reader = threading.Thread(target=lambda: slow.append(read_all(slow_client, 10)))
        reader.start()
        server.signal(signal.SIGTERM)
        outcomes: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
            except ConnectionRefusedError:
                outcomes.append("refused")
                break
            try:
                client.sendall(GET)
                # Answered by a worker that has not stopped accepting yet, or taken
                # from the queue by its drain; a reset or a hang fails here.
                outcomes.append(read_all(client)[:12].decode())
            finally:
                client.close()
            time.sleep(0.01)
        reader.join(15)
        assert outcomes[-1] == "refused", outcomes
        assert set(outcomes[:-1]) <= {"HTTP/1.1 200"}, outcomes
        assert slow and slow[0].startswith(b"HTTP/1.1 200 ")  # in flight: completed
        assert server.wait(15) == 0
        slow_client.close()
    finally:
        server.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux socket filter")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # no event loop involved
def test_a_stopped_listener_keeps_its_queue_and_takes_no_new_connection(
    anyio_backend: str,
) -> None:
    (listening,), _ = bind_sockets(ServerConfig(host="127.0.0.1", port=0))
    port = listening.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))
    late: socket.socket | None = None
    try:
        queued.sendall(GET)
        assert stop_new_connections(listening)
        with pytest.raises(TimeoutError):  # its SYN is dropped: no reset, the client retries
            late = socket.create_connection(("127.0.0.1", port), timeout=0.3)
        listening.setblocking(False)
        conn, _ = listening.accept()  # what was queued before is still there
        with conn:
            conn.settimeout(5)
            assert conn.recv(100) == GET
        with pytest.raises(BlockingIOError):
            listening.accept()
        listening.close()
        with pytest.raises(ConnectionRefusedError):  # the retry, once the socket is closed
            late = socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        queued.close()
        listening.close()
        if late is not None:
            late.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_an_inherited_listener_is_never_stopped(anyio_backend: str) -> None:
    """A socket from systemd or --fd lives on after us: a filter would go with it."""
    (bound,), _ = bind_sockets(ServerConfig(host="127.0.0.1", port=0))
    inherited = socket.socket(fileno=os.dup(bound.fileno()))
    try:
        assert not stop_new_connections(inherited)
        inherited.close()
        client = socket.create_connection(bound.getsockname()[:2], timeout=2)
        client.close()
    finally:
        inherited.close()
        bound.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux socket filter")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_the_filter_drops_only_a_new_connections_syn(anyio_backend: str) -> None:
    """Segments without a bare SYN pass: the ACK that completes a handshake already
    under way when the listener is stopped joins the queue (it is taken and served)
    instead of being dropped, which reset that client ~0.2 s later."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname()[:2])
    conn, _ = server.accept()
    try:
        program = ctypes.create_string_buffer(listeners._DROP_SYN)
        fprog = struct.pack("HL", len(listeners._DROP_SYN) // 8, ctypes.addressof(program))
        conn.setsockopt(socket.SOL_SOCKET, listeners._SO_ATTACH_FILTER, fprog)
        client.sendall(b"an ACK with data")
        conn.settimeout(2)
        assert conn.recv(100) == b"an ACK with data"
    finally:
        conn.close()
        client.close()
        server.close()
