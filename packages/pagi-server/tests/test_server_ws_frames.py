"""Unit tests of the WebSocket frame codec (``protocols/ws_frames.py``), without sockets.

The live conformance table (test_server_ws_conformance.py) proves the codec
through the server; these tests pin down what only a unit test can see
cheaply: that every way of splitting the same bytes gives the same events,
that UTF-8 and size violations are caught before the rest of a frame
arrives, that parsing is lazy (one event per call), and that what the codec
writes is read back correctly by an independent client implementation
(wsproto's client side), with and without permessage-deflate.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from typing import Any

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from pagi.server.protocols.ws_frames import (
    Close,
    CodecState,
    DeflateParams,
    FrameCodec,
    Message,
    Pong,
    Violation,
)
from pagi.server.protocols.ws_frames import Ping as PingEvent

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MIB = 1024 * 1024


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
    length_form: int | None = None,
) -> bytes:
    """A client frame, built bit by bit (``length_form`` forces 7/16/64-bit lengths)."""
    n = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = struct.pack("!BB", first, mask_bit | n)
    elif form == 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def codec(**options: Any) -> FrameCodec:
    options.setdefault("max_frame", MIB)
    options.setdefault("max_message", MIB)
    return FrameCodec(**options)


def drain(c: FrameCodec) -> list[Any]:
    out = []
    while (event := c.next_event()) is not None:
        out.append(event)
    return out


def describe(events: list[Any]) -> list[tuple[Any, ...]]:
    described: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, Message):
            described.append(("message", e.data))
        elif isinstance(e, PingEvent):
            described.append(("ping", e.payload))
        elif isinstance(e, Pong):
            described.append(("pong", e.payload))
        elif isinstance(e, Close):
            described.append(("close", e.code, e.reason))
        else:
            described.append(("violation", e.code))
    return described


def feed_in_pieces(data: bytes, cuts: list[int], **options: Any) -> list[tuple[Any, ...]]:
    c = codec(**options)
    events: list[Any] = []
    last = 0
    for cut in [*cuts, len(data)]:
        c.receive_data(data[last:cut])
        events.extend(drain(c))
        last = cut
    return describe(events)


# --- segmentation ------------------------------------------------------------------------

STREAM = b"".join(
    [
        frame(TEXT, "héllo €𝄞".encode()),
        frame(BINARY, bytes(range(200))),
        frame(TEXT, b"frag", fin=False),
        frame(PING, b"in between"),
        frame(CONT, "ment \xe2\x82".encode("latin-1"), fin=False),  # a split code point
        frame(CONT, b"\xac done"),
        frame(PONG, b"p"),
        frame(BINARY, b"x" * 300),
        frame(CLOSE, struct.pack("!H", 1000) + b"bye"),
    ]
)
EXPECTED = [
    ("message", "héllo €𝄞"),
    ("message", bytes(range(200))),
    ("ping", b"in between"),
    ("message", "fragment € done"),
    ("pong", b"p"),
    ("message", b"x" * 300),
    ("close", 1000, "bye"),
]


def test_events_from_one_read() -> None:
    assert feed_in_pieces(STREAM, []) == EXPECTED


def test_every_single_cut_point_gives_the_same_events() -> None:
    for cut in range(1, len(STREAM)):
        assert feed_in_pieces(STREAM, [cut]) == EXPECTED, cut


def test_byte_by_byte_and_random_splits_give_the_same_events() -> None:
    assert feed_in_pieces(STREAM, list(range(1, len(STREAM)))) == EXPECTED
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        assert feed_in_pieces(STREAM, cuts) == EXPECTED, cuts


def test_a_large_frame_arriving_in_reads_is_unmasked_at_the_right_phase() -> None:
    payload = os.urandom(200_000)
    data = frame(BINARY, payload)
    # Reads of odd sizes put every mask phase at a read boundary.
    cuts = list(range(7, len(data), 65_537))
    assert feed_in_pieces(data, cuts) == [("message", payload)]


# --- laziness (backpressure) -----------------------------------------------------------


def test_one_event_per_call_and_the_rest_stays_buffered() -> None:
    c = codec()
    c.receive_data(frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"thr"))
    first = c.next_event()
    assert isinstance(first, Message) and first.data == "one"
    assert c.buffered == 2 * len(frame(TEXT, b"two"))
    assert describe(drain(c)) == [("message", "two"), ("message", "thr")]
    assert c.buffered == 0
    assert c.next_event() is None


# --- violations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"x", mask=None), 1002),  # R-WS-*: client frames are masked (RFC 6455 5.1)
        (frame(TEXT, b"x" * 10, length_form=16), 1002),  # non-minimal length
        (frame(TEXT, b"x" * 300, length_form=64), 1002),
        (frame(TEXT, b"x", rsv=1), 1002),  # RSV1 without permessage-deflate
        (frame(TEXT, b"x", rsv=2), 1002),
        (frame(0x3, b"x"), 1002),  # reserved data opcode
        (frame(0xB, b"x"), 1002),  # reserved control opcode
        (frame(PING, b"x" * 126), 1002),  # control payload over 125
        (frame(PING, b"x", fin=False), 1002),  # fragmented control frame
        (frame(CONT, b"x"), 1002),  # continuation with no message
        (frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"), 1002),
        (frame(CLOSE, b"\x03"), 1002),  # 1-byte close payload
        (frame(CLOSE, struct.pack("!H", 1005)), 1002),  # reserved code on the wire
        (frame(CLOSE, struct.pack("!H", 999)), 1002),
        (frame(CLOSE, struct.pack("!H", 2000)), 1002),
        (frame(CLOSE, struct.pack("!H", 5000)), 1002),
        (frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),  # reason not UTF-8
        (frame(TEXT, b"caf\xe9"), 1007),
        (frame(TEXT, b"\xf0\x9d", fin=False) + frame(CONT, b"\x84"), 1007),  # ends mid-sequence
    ],
)
def test_violations_name_the_close_code(data: bytes, code: int) -> None:
    c = codec()
    c.receive_data(data)
    events = drain(c)
    assert isinstance(events[-1], Violation), events
    assert events[-1].code == code
    # Once failed, nothing more is parsed.
    c.receive_data(frame(TEXT, b"after"))
    assert c.next_event() is None


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_close_codes_are_reported(code: int) -> None:
    c = codec()
    c.receive_data(frame(CLOSE, struct.pack("!H", code) + "é".encode()))
    assert describe(drain(c)) == [("close", code, "é")]
    assert c.state is CodecState.REMOTE_CLOSING


def test_invalid_utf8_fails_before_the_rest_of_the_frame_arrives() -> None:
    """Fail fast: the bad byte is in the first read of a 64 KiB frame (Autobahn 6.4.x)."""
    payload = b"ok \xff" + b"x" * 65_536
    data = frame(TEXT, payload)
    c = codec()
    c.receive_data(data[:100])
    event = c.next_event()
    assert isinstance(event, Violation) and event.code == 1007


def test_invalid_utf8_in_a_later_fragment_fails_before_the_message_ends() -> None:
    c = codec()
    c.receive_data(frame(TEXT, b"fine", fin=False) + frame(CONT, b"\xc0\xaf", fin=False))
    event = c.next_event()
    assert isinstance(event, Violation) and event.code == 1007


def test_frame_over_the_limit_fails_on_its_header() -> None:
    c = codec(max_frame=1000)
    c.receive_data(frame(BINARY, b"x" * 1001)[:14])  # only the header arrived
    event = c.next_event()
    assert isinstance(event, Violation) and event.code == 1009


def test_message_over_the_limit_fails_on_the_fragment_that_crosses_it() -> None:
    c = codec(max_frame=1000, max_message=1500)
    c.receive_data(frame(BINARY, b"x" * 1000, fin=False))
    assert c.next_event() is None
    c.receive_data(frame(CONT, b"x" * 600)[:8])  # header only
    event = c.next_event()
    assert isinstance(event, Violation) and event.code == 1009


# --- permessage-deflate ------------------------------------------------------------------


def compress(data: bytes, bits: int = 15) -> bytes:
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits)
    return (deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_compressed_messages_whole_and_fragmented() -> None:
    text = "compress me " * 50
    packed = compress(text.encode())
    stream = frame(TEXT, packed, rsv=4)
    third = len(packed) // 3
    stream += frame(TEXT, packed[:third], rsv=4, fin=False)
    stream += frame(PING, b"mid")
    stream += frame(CONT, packed[third : 2 * third], fin=False)
    stream += frame(CONT, packed[2 * third :])
    expected = [("message", text), ("ping", b"mid"), ("message", text)]
    for cut in range(1, len(stream), 5):
        got = feed_in_pieces(stream, [cut], deflate=DeflateParams(client_no_context_takeover=True))
        assert got == expected, cut


def test_uncompressed_message_allowed_when_deflate_was_negotiated() -> None:
    c = codec(deflate=DeflateParams())
    c.receive_data(frame(BINARY, b"plain"))
    assert describe(drain(c)) == [("message", b"plain")]


@pytest.mark.parametrize(
    "data",
    [
        frame(TEXT, b"x", fin=False) + frame(CONT, b"y", rsv=4),  # RSV1 on a continuation
        frame(PING, b"x", rsv=4),  # RSV1 on a control frame
    ],
)
def test_rsv1_only_on_a_message_start(data: bytes) -> None:
    c = codec(deflate=DeflateParams())
    c.receive_data(data)
    event = drain(c)[-1]
    assert isinstance(event, Violation) and event.code == 1002


def test_broken_deflate_stream_is_1007() -> None:
    c = codec(deflate=DeflateParams())
    c.receive_data(frame(BINARY, b"\xff\xff\xff\xff", rsv=4))
    event = drain(c)[-1]
    assert isinstance(event, Violation) and event.code == 1007


def test_compression_bomb_stops_at_the_message_limit() -> None:
    bomb = compress(b"\x00" * (64 * MIB))  # about 64 KiB on the wire
    c = codec(max_message=MIB, deflate=DeflateParams())
    c.receive_data(frame(BINARY, bomb, rsv=4))
    event = drain(c)[-1]
    assert isinstance(event, Violation) and event.code == 1009


def test_exactly_the_limit_inflates() -> None:
    data = os.urandom(1000) * 10
    c = codec(max_message=len(data), deflate=DeflateParams())
    c.receive_data(frame(BINARY, compress(data), rsv=4))
    assert describe(drain(c)) == [("message", data)]


# --- what we write, read by an independent client ---------------------------------------


def client(deflate: bool = False) -> Connection:
    extensions = []
    if deflate:
        ext = PerMessageDeflate()
        ext.finalize("permessage-deflate")
        extensions.append(ext)
    return Connection(ConnectionType.CLIENT, extensions=extensions)


def read_back(peer: Connection, data: bytes) -> list[Any]:
    peer.receive_data(data)
    return list(peer.events())


@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize(
    "message", ["", "short", "é" * 100, "x" * 70_000, b"", b"\x00\xff" * 40_000]
)
def test_messages_we_write_are_read_back_by_a_client(deflate: bool, message: str | bytes) -> None:
    ours = codec(deflate=DeflateParams() if deflate else None)
    peer = client(deflate)
    for _ in range(3):  # context takeover across messages
        events = read_back(peer, ours.message(message))
        assert len(events) == 1
        expected_type = TextMessage if isinstance(message, str) else BytesMessage
        assert isinstance(events[0], expected_type)
        assert events[0].data == message


def test_no_context_takeover_compresses_each_message_alone() -> None:
    ours = codec(deflate=DeflateParams(server_no_context_takeover=True))
    first = ours.message("repeat " * 20)
    second = ours.message("repeat " * 20)
    assert first == second  # no shared history between messages


def test_control_frames_and_closing_handshake() -> None:
    ours = codec()
    peer = client()
    assert isinstance(read_back(peer, ours.ping(b"hi"))[0], Ping)
    # The peer's Close, then our answer: CLOSED.
    ours.receive_data(peer.send(CloseConnection(code=1000, reason="done")))
    assert describe(drain(ours)) == [("close", 1000, "done")]
    assert ours.state is CodecState.REMOTE_CLOSING
    answer = read_back(peer, ours.close(1000, "done"))
    assert isinstance(answer[0], CloseConnection) and answer[0].code == CloseReason.NORMAL_CLOSURE
    assert ours.state is CodecState.CLOSED


def test_we_close_first_then_data_still_parses_until_their_close() -> None:
    ours = codec()
    ours.close(1001, "going away")
    assert ours.state is CodecState.LOCAL_CLOSING
    ours.receive_data(frame(TEXT, b"late") + frame(CLOSE, struct.pack("!H", 1001)))
    assert describe(drain(ours)) == [("message", "late"), ("close", 1001, "")]
    assert ours.state is CodecState.CLOSED


def test_nothing_after_the_peers_close_counts() -> None:
    ours = codec()
    ours.receive_data(frame(CLOSE) + frame(TEXT, b"after close"))
    assert describe(drain(ours)) == [("close", 1005, "")]
    ours.receive_data(frame(TEXT, b"more"))
    assert ours.next_event() is None


def test_long_close_reason_is_cut_on_a_character_boundary() -> None:
    data = codec().close(1000, "é" * 100)
    payload = data[2:]
    assert data[1] == len(payload) <= 125  # a control frame's limit
    assert struct.unpack("!H", payload[:2])[0] == 1000
    # 123 bytes would split the 62nd two-byte character: 61 whole ones are kept.
    assert payload[2:].decode("utf-8") == "é" * 61
