"""WebSocket wire-level behaviour over raw sockets: handshake checks and RFC 6455 enforcement.

Requirement ids: R-WS-3, R-WS-15, R-WSP-1..5, R-WS-30..33.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import anyio
import pytest
from ws_client import WS_HEADERS, RawWS, Recorder, close_payload, deflate

pytestmark = pytest.mark.anyio


# --- handshake ---------------------------------------------------------------------------


async def test_handshake_accept_token_and_headers(serve: Any) -> None:
    app = Recorder()
    async with serve(app) as running:
        ws, head = await RawWS.open(running)
        assert head.startswith(b"HTTP/1.1 101 ")
        lower = head.lower()
        # RFC 6455 section 1.3's worked example.
        assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in lower
        assert b"upgrade: websocket" in lower and b"connection: upgrade" in lower
        await ws.close(1000)
        assert (await ws.recv_close())[0] == 1000
        await ws.expect_eof()
        assert (await app.disconnect())["code"] == 1000


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (WS_HEADERS.replace(b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), 400),
        (WS_HEADERS.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"not-base64!"), 400),
        (WS_HEADERS.replace(b"dGhlIHNhbXBsZSBub25jZQ==", base64.b64encode(b"short")), 400),
        (WS_HEADERS.replace(b"version: 13", b"version: 8"), 426),
        (WS_HEADERS.replace(b"sec-websocket-version: 13\r\n", b""), 426),
        (WS_HEADERS + b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400),
    ],
    ids=["no-key", "bad-base64", "short-key", "version-8", "no-version", "two-keys"],
)
async def test_bad_handshake_is_refused_without_calling_the_app(
    serve: Any, headers: bytes, status: int
) -> None:
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async with serve(app) as running:
        ws, head = await RawWS.open(running, headers=headers)
        assert head.startswith(b"HTTP/1.1 %d " % status)
        body = await ws.expect_eof()
        assert body  # a body says why
        if status == 426:
            assert b"sec-websocket-version: 13" in head.lower()
    assert called == []


async def test_frames_sent_with_the_handshake_are_delivered(serve: Any) -> None:
    app = Recorder()
    async with serve(app) as running:
        stream = await running.connect()
        ws = RawWS(stream)
        request = b"GET / HTTP/1.1\r\nhost: x\r\n" + WS_HEADERS + b"\r\n"
        frame = RawWS(stream)
        await stream.send(request)
        await frame.send_frame(0x1, b"early")
        head = await ws._read_head()
        assert head.startswith(b"HTTP/1.1 101")
        assert await ws.recv_message() == (0x1, b"early")
        await ws.close()
        await ws.expect_eof()


# --- framing -----------------------------------------------------------------------------


async def test_fragmented_message_with_interleaved_ping(serve: Any) -> None:
    """R-WS-3: fragments are reassembled; a ping between them is answered."""
    app = Recorder()
    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x1, "hé".encode(), fin=False)
        await ws.send_frame(0x9, b"p1")
        await ws.send_frame(0x0, b"ll", fin=False)
        await ws.send_frame(0x0, "ö!".encode())
        _, opcode, payload, _ = await ws.recv_frame()
        assert (opcode, payload) == (0xA, b"p1")
        assert await ws.recv_message() == (0x1, "héllö!".encode())
        await ws.send_frame(0x2, b"\x00\x01", fin=False)
        await ws.send_frame(0x0, b"\x02")
        assert await ws.recv_message() == (0x2, b"\x00\x01\x02")
        await ws.close()
        await ws.expect_eof()
    texts = [e.get("text") for e in app.events if e["type"] == "websocket.receive"]
    assert texts[0] == "héllö!"


@pytest.mark.parametrize(
    ("frames", "code", "reason"),
    [
        ([(0x1, b"ok\xff", True, 0)], 1007, "protocol_error"),
        ([(0x1, b"\xc3", False, 0)] * 1 + [(0x0, b"(", True, 0)], 1007, "protocol_error"),
        ([(0x3, b"", True, 0)], 1002, "protocol_error"),
        ([(0xB, b"", True, 0)], 1002, "protocol_error"),
        ([(0x1, b"rsv", True, 4)], 1002, "protocol_error"),
        ([(0x9, b"x" * 126, True, 0)], 1002, "protocol_error"),
        ([(0x9, b"frag", False, 0)], 1002, "protocol_error"),
        ([(0x0, b"orphan", True, 0)], 1002, "protocol_error"),
        ([(0x1, b"a", False, 0), (0x1, b"b", True, 0)], 1002, "protocol_error"),
        ([(0x8, b"\x03", True, 0)], 1002, "protocol_error"),
        ([(0x8, close_payload(999), True, 0)], 1002, "protocol_error"),
        ([(0x8, close_payload(1005), True, 0)], 1002, "protocol_error"),
        ([(0x8, close_payload(1000, b"\xff"), True, 0)], 1007, "protocol_error"),
    ],
    ids=[
        "bad-utf8",
        "bad-utf8-split",
        "opcode-3",
        "opcode-b",
        "rsv1-without-extension",
        "long-ping",
        "fragmented-ping",
        "orphan-continuation",
        "new-message-mid-fragment",
        "close-1-byte",
        "close-code-999",
        "close-code-1005",
        "close-reason-bad-utf8",
    ],
)
async def test_protocol_violations_fail_the_connection(
    serve: Any, frames: list[tuple[int, bytes, bool, int]], code: int, reason: str
) -> None:
    """R-WSP-1..3, R-WS-15, R-WS-33: the server sends the code and reports it with a token."""
    app = Recorder()
    async with serve(app, ws_close_timeout=1.0) as running:
        ws, _ = await RawWS.open(running)
        for opcode, payload, fin, rsv in frames:
            await ws.send_frame(opcode, payload, fin=fin, rsv=rsv)
        assert (await ws.recv_close())[0] == code
        await ws.expect_eof(timeout=3)
        event = await app.disconnect()
        assert (event["code"], event["reason"]) == (code, reason)


async def test_invalid_utf8_is_caught_in_the_first_fragment(serve: Any) -> None:
    """UTF-8 is checked as fragments arrive, not only when the message ends."""
    app = Recorder()
    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x1, b"fine \xff", fin=False)
        assert (await ws.recv_close())[0] == 1007
        await ws.expect_eof()


async def test_unmasked_client_frame_is_a_protocol_error(serve: Any) -> None:
    app = Recorder()
    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x1, b"plain", mask=False)
        assert (await ws.recv_close())[0] == 1002
        await ws.expect_eof()
    assert (await app.disconnect())["reason"] == "protocol_error"


async def test_message_over_the_limit_closes_1009(serve: Any) -> None:
    """R-WSP-5: a close frame with 1009, not a silent drop; fragments count together."""
    app = Recorder()
    async with serve(app, max_ws_message_size=1000) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x2, b"x" * 1000)
        assert await ws.recv_message() == (0x2, b"x" * 1000)
        await ws.send_frame(0x2, b"x" * 600, fin=False)
        await ws.send_frame(0x0, b"x" * 600)
        assert (await ws.recv_close())[0] == 1009
        await ws.expect_eof()
    event = await app.disconnect()
    assert (event["code"], event["reason"]) == (1009, "body_too_large")


async def test_frame_over_the_limit_closes_1009_before_its_payload(serve: Any) -> None:
    app = Recorder()
    async with serve(app, max_ws_frame_size=4096) as running:
        ws, _ = await RawWS.open(running)
        # Announce 1 GiB and send nothing: the header alone is enough to refuse.
        await ws.send_frame(0x2, b"", length=1 << 30)
        assert (await ws.recv_close())[0] == 1009
        await ws.expect_eof()


async def test_peer_close_without_status_reports_1005(serve: Any) -> None:
    """R-WS-31: an empty Close frame is 1005; the server echoes a Close and closes TCP."""
    app = Recorder()
    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.close(None)
        code, _ = await ws.recv_close()
        assert code is None
        await ws.expect_eof()
    event = await app.disconnect()
    assert (event["code"], event["reason"]) == (1005, "")


async def test_close_timeout_drops_a_silent_peer(serve: Any) -> None:
    """After the server's Close, a peer that never answers is cut off after ws_close_timeout."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})

    async with serve(app, ws_close_timeout=0.3) as running:
        ws, _ = await RawWS.open(running)
        assert (await ws.recv_close())[0] == 4000
        start = anyio.current_time()
        await ws.expect_eof(timeout=3)
        assert anyio.current_time() - start < 2.5


# --- permessage-deflate ------------------------------------------------------------------

DEFLATE_OFFER = b"sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"


async def test_deflate_negotiated_with_small_server_window(serve: Any) -> None:
    app = Recorder()
    async with serve(app, ws_deflate_window_bits=10) as running:
        ws, head = await RawWS.open(running, extra=DEFLATE_OFFER)
        line = [h for h in head.lower().split(b"\r\n") if h.startswith(b"sec-websocket-ext")]
        assert line == [
            b"sec-websocket-extensions: permessage-deflate; server_max_window_bits=10; "
            b"client_max_window_bits=10"
        ]
        text = ("hello " * 200).encode()
        await ws.send_frame(0x1, deflate(text), rsv=4)
        fin, opcode, payload, rsv = await ws.recv_frame()
        assert (fin, opcode, rsv) == (True, 0x1, 4)
        inflater = zlib.decompressobj(-10)
        assert inflater.decompress(payload + b"\x00\x00\xff\xff") == text
        assert len(payload) < len(text) // 10
        await ws.close()
        await ws.expect_eof()


async def test_deflate_fragmented_with_ping_between(serve: Any) -> None:
    """A control frame between compressed fragments must not reset the message state."""
    app = Recorder()
    async with serve(app) as running:
        ws, _ = await RawWS.open(running, extra=DEFLATE_OFFER)
        text = ("fragmented and compressed " * 50).encode()
        packed = deflate(text)
        half = len(packed) // 2
        await ws.send_frame(0x1, packed[:half], fin=False, rsv=4)
        await ws.send_frame(0x9, b"mid")
        await ws.send_frame(0x0, packed[half:])
        assert (await ws.recv_frame())[1:3] == (0xA, b"mid")
        await ws.close()
        await ws.expect_eof()
    received = [e for e in app.events if e["type"] == "websocket.receive"]
    assert received[0]["text"] == text.decode()


async def test_deflate_bomb_stops_at_the_message_limit(serve: Any) -> None:
    app = Recorder()
    async with serve(app, max_ws_message_size=100_000) as running:
        ws, _ = await RawWS.open(running, extra=DEFLATE_OFFER)
        bomb = deflate(b"\x00" * 50_000_000)  # about 50 KB on the wire
        assert len(bomb) < 100_000
        await ws.send_frame(0x2, bomb, rsv=4)
        assert (await ws.recv_close())[0] == 1009
        await ws.expect_eof()
    assert (await app.disconnect())["code"] == 1009


async def test_deflate_off_by_config_and_bad_offers_are_declined(serve: Any) -> None:
    async with serve(Recorder(), ws_per_message_deflate=False) as running:
        ws, head = await RawWS.open(running, extra=DEFLATE_OFFER)
        assert b"sec-websocket-extensions" not in head.lower()
        await ws.aclose()
    async with serve(Recorder()) as running:
        bad = b"sec-websocket-extensions: permessage-deflate; server_max_window_bits=99\r\n"
        ws, head = await RawWS.open(running, extra=bad)
        assert b"sec-websocket-extensions" not in head.lower()
        await ws.aclose()
