"""A frame-level WebSocket conformance table (RFC 6455), our own raw-socket client.

Modelled on the sections of the Autobahn testsuite (the case layout, not its
code): 1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes, 5
fragmentation, 6 UTF-8, 7 close handling, 9 larger messages (bounded). Each
case is a list of frames the client sends and the outcome it must see: the
echo of a message, a pong, or a Close with a given code. Cases marked ``fast``
run in the default suite; ``--ws-conformance-full`` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from ws_client import RawWS, Recorder, close_payload

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


@pytest.fixture
def full(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--ws-conformance-full", default=False))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_frame_case(serve: Any, case: Case, full: bool) -> None:
    if not case.fast and not full:
        pytest.skip("full WebSocket conformance table: pass --ws-conformance-full")
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
