import hashlib
import socket
from pathlib import Path

import httpx
from example_harness import serve, wait


def _raw_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _dechunk(body: bytes) -> tuple[bytes, dict[str, str]]:
    out = b""
    while True:
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    trailers = {}
    for line in body.split(b"\r\n"):
        if line:
            name, value = line.decode().split(":", 1)
            trailers[name.strip().lower()] = value.strip()
    return out, trailers


def test_count_ends_with_trailers(tmp_path: Path) -> None:
    with serve("streaming/app.py", tmp_path) as server:
        response = _raw_get(server.port, "/count?n=3")
        head, body = response.split(b"\r\n\r\n", 1)
        assert b"transfer-encoding: chunked" in head.lower()
        text, trailers = _dechunk(body)
        assert text == b"line 1\nline 2\nline 3\n"
        assert trailers == {"x-lines": "3", "x-checksum": hashlib.sha256(text).hexdigest()}


def test_forever_stops_when_the_client_leaves(tmp_path: Path) -> None:
    with serve("streaming/app.py", tmp_path) as server:
        with httpx.stream("GET", server.url + "/forever", timeout=5) as stream:
            lines = stream.iter_lines()
            assert [next(lines) for _ in range(3)] == ["tick"] * 3
        # The client closed the connection: the app saw it and stopped.
        # The reason depends on how the server noticed: the FIN ("client_closed")
        # or a failed write ("write_error"); either way it is a standard reason.
        last = wait(
            "the disconnect to be reported",
            lambda: (
                (r := httpx.get(server.url + "/last").json())["reason"] != "still streaming" and r
            ),
        )
        assert last["reason"] in ("client_closed", "write_error")
        assert last["lines"] >= 3
        settled = last["lines"]
        assert httpx.get(server.url + "/last").json()["lines"] == settled  # no longer sending
