"""A frame-level WebSocket conformance table (RFC 6455), our own raw-socket client.

Modelled on the sections of the Autobahn testsuite (the case layout, not its
code): 1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes, 5
fragmentation, 6 UTF-8, 7 close handling, 9 larger messages (bounded). Each
case is a list of frames the client sends and the outcome it must see: the
echo of a message, a pong, or a Close with a given code. Every case runs in
the default suite (the whole table takes about 5 s); ``fast`` marks the
smallest set worth running first while working on the framing code
(``-k`` on the case ids).

Sections 12 and 13 (permessage-deflate, RFC 7692) are a second table: an
offer, the reply the server must give, and messages the client compresses
(whole or in fragments, with or without context takeover, in the window it
negotiated) and then checks the server's compressed echo of, decompressing
with the server's negotiated window and takeover; or raw frames that must
close the connection with a given code (invalid UTF-8 inside a compressed
message 1007, a compression bomb past ``max_ws_message_size`` 1009, RSV1 on
a continuation or control frame 1002, a broken deflate stream 1007).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from ws_client import RawWS, Recorder, close_payload, deflate

pytestmark = pytest.mark.anyio

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0


@dataclass(frozen=True)
class Case:
    id: str
    frames: list[Frame]
    #: ("echo", opcode, payload) | ("pong", payload) | ("close", code)
    expect: tuple[Any, ...]
    fast: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def _sizes_cases() -> list[Case]:
    cases = []
    for n, size in enumerate((0, 125, 126, 127, 128, 65535, 65536)):
        fast = size in (0, 126, 65536)
        payload = b"*" * size
        cases.append(Case(f"1.1.{n + 1}", [Frame(TEXT, payload)], ("echo", TEXT, payload), fast))
        data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        cases.append(Case(f"1.2.{n + 1}", [Frame(BINARY, data)], ("echo", BINARY, data), fast))
    return cases


_BAD_UTF8 = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # a surrogate
    b"\xc0\xaf",  # overlong '/'
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xff",
    b"caf\xe9",  # latin-1, not UTF-8
]

CASES: list[Case] = [
    *_sizes_cases(),
    # 2: pings and pongs
    Case("2.1", [Frame(PING)], ("pong", b""), fast=True),
    Case("2.2", [Frame(PING, b"hello")], ("pong", b"hello")),
    Case("2.3", [Frame(PING, b"\x00\xff\xfe" * 41)], ("pong", b"\x00\xff\xfe" * 41)),
    Case("2.4", [Frame(PING, b"x" * 125)], ("pong", b"x" * 125)),
    Case("2.5", [Frame(PING, b"x" * 126)], ("close", 1002), fast=True),
    Case("2.6", [Frame(PONG, b"unasked"), Frame(TEXT, b"after")], ("echo", TEXT, b"after")),
    Case("2.7", [Frame(PING, b"frag", fin=False)], ("close", 1002), fast=True),
    # 3: reserved bits without an extension that defines them
    *[
        Case(f"3.{rsv}", [Frame(TEXT, b"rsv", rsv=rsv)], ("close", 1002), fast=rsv == 1)
        for rsv in range(1, 8)
    ],
    Case("3.8", [Frame(PING, b"", rsv=2)], ("close", 1002)),
    # 4: reserved opcodes, data (3-7) and control (0xB-0xF)
    *[Case(f"4.1.{op}", [Frame(op, b"x")], ("close", 1002), fast=op == 3) for op in range(3, 8)],
    *[
        Case(f"4.2.{op}", [Frame(op, b"x")], ("close", 1002), fast=op == 0xB)
        for op in range(0xB, 0x10)
    ],
    # 5: fragmentation
    Case(
        "5.1",
        [Frame(TEXT, b"frag", fin=False), Frame(CONT, b"ment", fin=False), Frame(CONT, b"ed")],
        ("echo", TEXT, b"fragmented"),
        fast=True,
    ),
    Case(
        "5.2",
        [Frame(BINARY, b"\x00", fin=False), Frame(PING, b"p"), Frame(CONT, b"\x01")],
        ("echo", BINARY, b"\x00\x01"),
    ),
    Case("5.3", [Frame(CONT, b"orphan")], ("close", 1002), fast=True),
    Case("5.4", [Frame(TEXT, b"a", fin=False), Frame(TEXT, b"b")], ("close", 1002), fast=True),
    Case("5.5", [Frame(TEXT, b"a", fin=False), Frame(BINARY, b"b")], ("close", 1002)),
    Case(
        "5.6",
        [Frame(TEXT, b"", fin=False), Frame(CONT, b"", fin=False), Frame(CONT, b"")],
        ("echo", TEXT, b""),
    ),
    # 6: UTF-8
    Case("6.1", [Frame(TEXT, "κόσμε €𝄞".encode())], ("echo", TEXT, "κόσμε €𝄞".encode()), True),
    Case(
        "6.2",  # a code point split across fragments is fine
        [Frame(TEXT, b"\xf0\x9d", fin=False), Frame(CONT, b"\x84\x9e")],
        ("echo", TEXT, "𝄞".encode()),
        fast=True,
    ),
    Case(
        "6.3",  # an invalid sequence that only shows across the fragment boundary
        [Frame(TEXT, b"ok\xe2\x82", fin=False), Frame(CONT, b"\x28 bad")],
        ("close", 1007),
        fast=True,
    ),
    *[
        Case(f"6.4.{n + 1}", [Frame(TEXT, bad)], ("close", 1007), fast=n == 0)
        for n, bad in enumerate(_BAD_UTF8)
    ],
    Case("6.5", [Frame(TEXT, b"\xf0\x9d\x84")], ("close", 1007)),  # truncated at the end
    # 7: close handling
    Case("7.1", [Frame(CLOSE, close_payload(1000))], ("close", 1000), fast=True),
    Case("7.2", [Frame(CLOSE, b"")], ("close", None)),
    Case("7.3", [Frame(CLOSE, b"\x03")], ("close", 1002), fast=True),  # 1-byte payload
    Case("7.4", [Frame(CLOSE, close_payload(1000, "bye ✓".encode()))], ("close", 1000)),
    Case("7.5", [Frame(CLOSE, close_payload(1000, b"\xff"))], ("close", 1007)),
    Case("7.6", [Frame(CLOSE, close_payload(1000, b"x" * 124))], ("close", 1002)),
    *[
        Case(f"7.7.{code}", [Frame(CLOSE, close_payload(code))], ("close", code))
        for code in (1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
    ],
    *[
        Case(f"7.8.{code}", [Frame(CLOSE, close_payload(code))], ("close", 1002), code == 1005)
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)
    ],
    Case(
        "7.9",  # data after Close is ignored; the close handshake still completes
        [Frame(CLOSE, close_payload(1000)), Frame(TEXT, b"late")],
        ("close", 1000),
    ),
    # 9: larger messages, bounded (1 MiB whole and in 64 KiB fragments)
    Case("9.1", [Frame(TEXT, b"a" * (1 << 20))], ("echo", TEXT, b"a" * (1 << 20))),
    Case(
        "9.2",
        [Frame(BINARY, b"\x01" * 65536, fin=False)]
        + [Frame(CONT, b"\x01" * 65536, fin=False) for _ in range(14)]
        + [Frame(CONT, b"\x01" * 65536)],
        ("echo", BINARY, b"\x01" * (1 << 20)),
    ),
]


async def _recv_data_message(ws: RawWS) -> tuple[int, bytes]:
    """The next data message, fragments joined; pongs to our pings are skipped."""
    parts: list[bytes] = []
    kind = 0
    while True:
        fin, opcode, payload, _ = await ws.recv_frame()
        if opcode == PONG:
            continue
        assert opcode in (TEXT, BINARY, CONT), f"unexpected opcode {opcode}"
        kind = kind or opcode
        parts.append(payload)
        if fin:
            return kind, b"".join(parts)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_frame_case(serve: Any, case: Case) -> None:
    async with serve(
        Recorder(), max_ws_message_size=2 << 20, max_ws_frame_size=2 << 20, **case.options
    ) as running:
        ws, head = await RawWS.open(running)
        assert head.startswith(b"HTTP/1.1 101")
        for frame in case.frames:
            await ws.send_frame(frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv)
        kind = case.expect[0]
        if kind == "echo":
            opcode, payload = await _recv_data_message(ws)
            assert (opcode, payload) == case.expect[1:]
            await ws.close()
            assert (await ws.recv_close())[0] == 1000
        elif kind == "pong":
            _, opcode, payload, _ = await ws.recv_frame()
            assert (opcode, payload) == (PONG, case.expect[1])
            await ws.close()
        else:
            code, _ = await ws.recv_close()
            assert code == case.expect[1], f"{case.id}: closed with {code}"
        await ws.expect_eof()


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


# --- 12 and 13: permessage-deflate (RFC 7692) ----------------------------------------

RSV1 = 4


@dataclass(frozen=True)
class Message:
    opcode: int
    payload: bytes
    fragments: int = 1


@dataclass(frozen=True)
class DeflateCase:
    id: str
    #: the client's Sec-WebSocket-Extensions offer
    offer: str
    #: the server's reply, exactly
    reply: str
    #: messages the client compresses and sends; each must come back compressed, equal
    messages: list[Message] = field(default_factory=list)
    #: instead: raw frames, after which the server must close with ``close``
    frames: list[Frame] = field(default_factory=list)
    close: int | None = None
    fast: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def _text(size: int, seed: int = 0) -> bytes:
    """Compressible UTF-8 text (words from a small vocabulary, some multi-byte)."""
    rng = random.Random(seed)
    words = ["pagi", "deflate", "κόσμε", "frame", "window", "𝄞", "takeover", "message"]
    out: list[bytes] = []
    total = 0
    while total < size:
        word = (rng.choice(words) + " ").encode()
        out.append(word)
        total += len(word)
    return b"".join(out)[:size].decode("utf-8", "ignore").encode()


def _noise(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _far_repeats(size: int) -> bytes:
    """A 1000-byte random block repeated: back-references reach 1000 bytes back,
    past a 9-bit (512-byte) window, so a window mix-up fails to inflate."""
    block = _noise(1000, 7)
    return (block * (size // 1000 + 1))[:size]


_SIZES = (16, 64, 256, 1024, 4096, 32768, 131072, 262144)

_DEFAULT = "permessage-deflate"


def _section_12() -> list[DeflateCase]:
    cases = []
    for n, size in enumerate(_SIZES):
        fast = size in (16, 4096)
        cases.append(
            DeflateCase(
                f"12.1.{n + 1}", _DEFAULT, _DEFAULT, [Message(TEXT, _text(size, n))], fast=fast
            )
        )
        cases.append(
            DeflateCase(f"12.2.{n + 1}", _DEFAULT, _DEFAULT, [Message(BINARY, _noise(size, n))])
        )
        # ten messages in a row over one shared context (takeover on both sides)
        cases.append(
            DeflateCase(
                f"12.3.{n + 1}",
                _DEFAULT,
                _DEFAULT,
                [Message(TEXT, _text(size, n)) for _ in range(10)],
                fast=size == 256,
            )
        )
    for n, (size, parts) in enumerate([(64, 2), (4096, 4), (65536, 16), (262144, 64)]):
        cases.append(
            DeflateCase(
                f"12.4.{n + 1}",
                _DEFAULT,
                _DEFAULT,
                [Message(TEXT, _text(size, n), parts), Message(BINARY, _noise(size, n), parts)],
                fast=n == 1,
            )
        )
    return cases


def _section_13() -> list[DeflateCase]:
    msgs = [Message(TEXT, _text(2048, n)) for n in range(5)] + [
        Message(BINARY, _far_repeats(8192), 3)
    ]
    offers = [
        ("13.1", _DEFAULT, _DEFAULT, {}, True),
        (
            "13.2",
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            {},
            True,
        ),
        (
            "13.3",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            {},
            True,
        ),
        (
            "13.4",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=15",
            {},
            False,
        ),
        (
            "13.5",
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=9",
            {},
            True,
        ),
        (
            "13.6",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
            {},
            True,
        ),
        (
            "13.7",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=9",
            {},
            False,
        ),
        (
            "13.8",  # the server's own window limit caps both directions
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
            {"ws_deflate_window_bits": 10},
            False,
        ),
        (
            "13.10",  # the default server window (12 bits) is announced
            _DEFAULT,
            "permessage-deflate; server_max_window_bits=12",
            {"ws_deflate_window_bits": 12},
            True,
        ),
        (
            "13.9",  # an unusable first offer is skipped, the second accepted
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            _DEFAULT,
            {},
            False,
        ),
    ]
    return [
        DeflateCase(id, offer, reply, msgs, fast=fast, options=options)
        for id, offer, reply, options, fast in offers
    ]


def _bomb() -> bytes:
    return deflate(b"\x00" * (4 << 20))  # 4 MiB of zeros, about 4 KB on the wire


def _split(data: bytes, parts: int) -> list[bytes]:
    step = max(1, -(-len(data) // parts))
    return [data[i : i + step] for i in range(0, len(data), step)] or [b""]


def _fragments(opcode: int, packed: bytes, parts: int) -> list[Frame]:
    chunks = _split(packed, parts)
    return [
        Frame(
            opcode if i == 0 else CONT, chunk, fin=i == len(chunks) - 1, rsv=RSV1 if i == 0 else 0
        )
        for i, chunk in enumerate(chunks)
    ]


_LIMIT = {"max_ws_message_size": 1 << 20}

_CLOSE_CASES = [
    DeflateCase(
        "12.5.1",
        _DEFAULT,
        _DEFAULT,
        frames=[Frame(TEXT, deflate(b"caf\xe9"), rsv=RSV1)],
        close=1007,
        fast=True,
    ),
    DeflateCase(
        "12.5.2",  # invalid only across the boundary of two compressed fragments
        _DEFAULT,
        _DEFAULT,
        frames=_fragments(TEXT, deflate(b"ok\xe2\x82\x28 bad"), 2),
        close=1007,
    ),
    DeflateCase(
        "12.5.3",  # a valid code point split across compressed fragments is fine
        _DEFAULT,
        _DEFAULT,
        frames=[*_fragments(TEXT, deflate("𝄞".encode()), 2), Frame(CLOSE, close_payload(1000))],
        close=1000,
    ),
    DeflateCase(
        "12.6.1",
        _DEFAULT,
        _DEFAULT,
        frames=[Frame(BINARY, _bomb(), rsv=RSV1)],
        close=1009,
        fast=True,
        options=_LIMIT,
    ),
    DeflateCase(
        "12.6.2",
        _DEFAULT,
        _DEFAULT,
        frames=_fragments(BINARY, _bomb(), 8),
        close=1009,
        options=_LIMIT,
    ),
    DeflateCase(
        "12.6.3",  # exactly at the limit is fine
        _DEFAULT,
        _DEFAULT,
        frames=[
            Frame(BINARY, deflate(b"\x00" * (1 << 20)), rsv=RSV1),
            Frame(CLOSE, close_payload(1000)),
        ],
        close=1000,
        options=_LIMIT,
    ),
    DeflateCase(
        "12.7.1",  # RSV1 belongs on the first frame of a message only
        _DEFAULT,
        _DEFAULT,
        frames=[
            Frame(TEXT, deflate(b"ab"), fin=False, rsv=RSV1),
            Frame(CONT, deflate(b"cd"), rsv=RSV1),
        ],
        close=1002,
        fast=True,
    ),
    DeflateCase("12.7.2", _DEFAULT, _DEFAULT, frames=[Frame(PING, b"p", rsv=RSV1)], close=1002),
    DeflateCase(
        "12.7.3",
        _DEFAULT,
        _DEFAULT,
        frames=[Frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1)],
        close=1007,
    ),
]

DEFLATE_CASES = [*_section_12(), *_section_13(), *_CLOSE_CASES]


def _params(reply: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in reply.split(";")[1:]:
        name, eq, value = part.strip().partition("=")
        params[name] = value if eq else None
    return params


class _Deflater:
    """The client's compressor, honouring the negotiated takeover and window."""

    def __init__(self, bits: int, takeover: bool) -> None:
        self.bits, self.takeover = bits, takeover
        self.c: Any = None

    def pack(self, data: bytes) -> bytes:
        if self.c is None or not self.takeover:
            self.c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.bits)
        return deflate(data, self.c)


class _Inflater:
    """The client's decompressor for the server's messages (window and takeover)."""

    def __init__(self, bits: int, takeover: bool) -> None:
        self.bits, self.takeover = bits, takeover
        self.d: Any = None

    def unpack(self, data: bytes) -> bytes:
        if self.d is None or not self.takeover:
            self.d = zlib.decompressobj(-self.bits)
        return bytes(self.d.decompress(data + b"\x00\x00\xff\xff"))


async def _recv_compressed(ws: RawWS) -> tuple[int, bytes, int]:
    """(opcode, joined payload, rsv of the first frame) of the next data message."""
    parts: list[bytes] = []
    kind = first_rsv = -1
    while True:
        fin, opcode, payload, rsv = await ws.recv_frame()
        if opcode == PONG:
            continue
        assert opcode in (TEXT, BINARY, CONT), f"unexpected opcode {opcode}"
        if kind < 0:
            kind, first_rsv = opcode, rsv
        else:
            assert rsv == 0, "RSV1 on a continuation frame"
        parts.append(payload)
        if fin:
            return kind, b"".join(parts), first_rsv


@pytest.mark.parametrize("case", DEFLATE_CASES, ids=lambda c: c.id)
async def test_deflate_case(serve: Any, case: DeflateCase) -> None:
    # A 15-bit server window unless the case says otherwise (the default, 12, is 13.10).
    options = {
        "max_ws_message_size": 2 << 20,
        "max_ws_frame_size": 2 << 20,
        "ws_deflate_window_bits": 15,
        **case.options,
    }
    async with serve(Recorder(), **options) as running:
        offer = f"sec-websocket-extensions: {case.offer}\r\n".encode()
        ws, head = await RawWS.open(running, extra=offer)
        assert head.startswith(b"HTTP/1.1 101")
        replies = [
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-extensions:")
        ]
        assert replies == [case.reply]
        if case.close is not None:
            for frame in case.frames:
                await ws.send_frame(frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv)
            code, _ = await ws.recv_close()
            assert code == case.close, f"{case.id}: closed with {code}"
            await ws.expect_eof()
            return
        params = _params(case.reply)
        client_bits = int(params.get("client_max_window_bits") or 15)
        server_bits = int(params.get("server_max_window_bits") or 15)
        deflater = _Deflater(client_bits, "client_no_context_takeover" not in params)
        inflater = _Inflater(server_bits, "server_no_context_takeover" not in params)
        for message in case.messages:
            for frame in _fragments(
                message.opcode, deflater.pack(message.payload), message.fragments
            ):
                await ws.send_frame(frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv)
            opcode, packed, rsv = await _recv_compressed(ws)
            assert (opcode, rsv) == (message.opcode, RSV1)
            assert inflater.unpack(packed) == message.payload
        await ws.close()
        assert (await ws.recv_close())[0] == 1000
        await ws.expect_eof()


def test_deflate_case_ids_are_unique() -> None:
    ids = [case.id for case in DEFLATE_CASES]
    assert len(ids) == len(set(ids))
