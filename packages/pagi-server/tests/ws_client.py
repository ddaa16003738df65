"""A raw-socket WebSocket client and a recording app, shared by the WebSocket tests.

:class:`RawWS` lets a test choose every bit of every frame (masking, RSV
bits, lengths, opcodes), which well-behaved client libraries never allow.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any

import anyio
import anyio.abc

WS_HEADERS = (
    b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


class RawWS:
    """A deliberately low-level WebSocket client: we choose every bit of every frame."""

    def __init__(self, stream: anyio.abc.SocketStream, buf: bytes = b"") -> None:
        self.stream = stream
        self.buf = buf

    @classmethod
    async def open(
        cls,
        running: Any,
        path: str = "/",
        *,
        extra: bytes = b"",
        headers: bytes = WS_HEADERS,
        after_head: bytes = b"",
    ) -> tuple[RawWS, bytes]:
        """Connect and send an upgrade request; return the client and the response head."""
        stream = await running.connect()
        request = f"GET {path} HTTP/1.1\r\nhost: localhost\r\n".encode() + headers + extra + b"\r\n"
        await stream.send(request + after_head)
        ws = cls(stream)
        head = await ws._read_head()
        return ws, head

    async def _read_head(self) -> bytes:
        with anyio.fail_after(5):
            while b"\r\n\r\n" not in self.buf:
                self.buf += await self.stream.receive()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    async def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += await self.stream.receive()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    async def send_frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool = True,
        length: int | None = None,
    ) -> None:
        size = len(payload) if length is None else length
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        mask_bit = 0x80 if mask else 0
        if size < 126:
            header = struct.pack("!BB", first, mask_bit | size)
        elif size < 65536:
            header = struct.pack("!BBH", first, mask_bit | 126, size)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, size)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        await self.stream.send(header + payload)

    async def recv_frame(self, timeout: float = 5.0) -> tuple[bool, int, bytes, int]:
        """(fin, opcode, payload, rsv) of the next server frame."""
        with anyio.fail_after(timeout):
            first, second = await self._read(2)
            size = second & 0x7F
            assert not second & 0x80, "server frames are never masked"
            if size == 126:
                (size,) = struct.unpack("!H", await self._read(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self._read(8))
            payload = await self._read(size)
        return bool(first & 0x80), first & 0x0F, payload, (first >> 4) & 0x7

    async def recv_message(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next data message (fragments joined), answering pings on the way."""
        parts: list[bytes] = []
        kind = 0
        while True:
            fin, opcode, payload, _ = await self.recv_frame(timeout)
            if opcode == 0x9:
                await self.send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2):
                kind = opcode
            elif opcode == 0x8:
                return opcode, payload
            parts.append(payload)
            if fin:
                return kind, b"".join(parts)

    async def recv_close(self, timeout: float = 5.0) -> tuple[int | None, bytes]:
        """Skip data and pings until a Close frame; return (code, reason bytes)."""
        while True:
            _, opcode, payload, _ = await self.recv_frame(timeout)
            if opcode == 0x8:
                if not payload:
                    return None, b""
                return struct.unpack("!H", payload[:2])[0], payload[2:]

    async def expect_eof(self, timeout: float = 5.0) -> bytes:
        """Read until the server closes the TCP connection, then close ours.

        Returns what came before the end.
        """
        rest = self.buf
        self.buf = b""
        with anyio.fail_after(timeout):
            while True:
                try:
                    rest += await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    await self.stream.aclose()
                    return rest

    async def close(self, code: int | None = 1000, reason: bytes = b"") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason
        await self.send_frame(0x8, payload)

    async def aclose(self) -> None:
        await self.stream.aclose()


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class Recorder:
    """An app that accepts, records every event it receives, and echoes messages."""

    def __init__(self, *, accept: bool = True, echo: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.accept = accept
        self.echo = echo
        self.done = anyio.Event()
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        try:
            self.events.append(await receive())
            if self.accept:
                await send({"type": "websocket.accept"})
            while True:
                event = await receive()
                self.events.append(event)
                if event["type"] == "websocket.disconnect":
                    return
                if self.echo:
                    await send(
                        {
                            "type": "websocket.send",
                            **{k: v for k, v in event.items() if k in ("text", "bytes")},
                        }
                    )
        finally:
            self.done.set()

    async def disconnect(self, timeout: float = 5.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            await self.done.wait()
        assert self.events[-1]["type"] == "websocket.disconnect"
        return self.events[-1]


def deflate(data: bytes, compressor: Any | None = None) -> bytes:
    c = compressor or zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]
