"""Differential fuzzing of the HTTP/1.x request parser against h11 and llhttp.

Request smuggling needs two parsers that disagree about where a message
ends. This module generates request byte streams from a small grammar of
HTTP/1.x requests, mostly valid or nearly so, with the mutations that
smuggling attacks are made of (line endings, whitespace, obs-fold,
Content-Length / Transfer-Encoding combinations, chunk-size spellings,
chunk extensions, trailers, pipelining, stray bytes, odd versions and
targets), and frames each stream with our parser (``pagi.server``'s
``HeadParser`` and body readers, driven as the connection driver drives
them), with h11 and with llhttp (through httptools); see parser_peers.py.

Properties, for every generated stream:

(a) ``segmentation``: our outcome is the same however the bytes are split
    into reads (at once, one byte at a time, at drawn split points).
(b) ``framing``: every request we accept is framed (method, target, body,
    number of requests before it) as by each peer that also accepts it; a
    peer still waiting for bytes where we saw a message end, or the other
    way round, is a framing difference too.
(c) ``refusal``: where both peers refuse the stream, we do not get further
    into it than the further of the two.
(d) only ``ParseError`` ever escapes the parser, and a head that trickles
    in costs linear time (:func:`test_trickled_megabyte_head_costs_linear_time`).

Differences we keep on purpose are in :data:`ALLOWED`, each named, with the
RFC clause that justifies it and a concrete example that the test suite
checks is still a live difference. Nothing else is skipped.

The default run is bounded (a few hundred examples per property). For a
long run give ``--fuzz-long=MINUTES`` (or set ``PAGI_FUZZ_MINUTES``):
:func:`test_fuzz_long` then checks every property for that long and prints
how many streams it tried and how many differences it found.
"""

from __future__ import annotations

import faulthandler
import itertools
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from parser_peers import (
    FUZZ_LIMITS,
    PEERS,
    Outcome,
    Seen,
    frame_h11,
    frame_llhttp,
    frame_ours,
    stops_after,
)

from pagi.server.protocols.http1_parser import (
    ChunkedReader,
    HeadParser,
    LengthReader,
    ParseError,
)

# --- the generator ---------------------------------------------------------------------

METHODS = [b"GET", b"POST", b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS"]
METHODS += [b"CONNECT", b"PATCH"]
ODD_METHODS = [b"get", b"FOO", b"M-SEARCH", b"G\x00T", b"", b"GET\xff", b"PRI", b"G(T", b"PURGE"]
ODD_VERSIONS = [b"HTTP/1.9", b"HTTP/2.0", b"HTTP/0.9", b"", b"http/1.1", b"HTTP/1.1 "]
ODD_VERSIONS += [b"HTTP/11", b"HTTP/1.01", b"HTTP/1", b"HTTP/ 1.1", b"HTTPS/1.1"]
ODD_VERSIONS += [b"HTTP/1.1\x00", b"HTTP/3.0", b"HTTP/1.x", b"HTTP/01.1"]
ABSOLUTE = [b"http://example.com/", b"https://example.com:8443/a?b", b"HTTP://EXAMPLE.COM/x"]
ABSOLUTE += [b"http://user@example.com/", b"http://[::1]:8080/"]
AUTHORITIES = [b"example.com:443"] * 6 + [b"[::1]:8080", b"example.com"]
AUTHORITIES += [b"/", b"http://example.com/", b"example.com:99999", b"example.com:"]
TARGET_BYTES = [b"\x00", b"\x80", b"\xff", b"\xc3\xa9", b" ", b"\t", b"#f", b"\x7f", b"\\"]
TARGET_BYTES += [b"\r", b"\n", b"%00", b'"', b"<"]
ODD_EOLS = [b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n ", b" \r\n", b"\r\n\t"]
SEPARATORS = [b"  ", b"\t", b" \t", b"\x0b"]

HOST_VALUES = [b"", b"a b", b"example.com:80", b"[::1]", b"ex@mple", b"\xff", b"a:b:c"]
HOST_VALUES += [b"example.com/x", b"exa\x00mple"]
CONNECTION_VALUES = [b"keep-alive", b"close", b"Upgrade", b"keep-alive, Upgrade", b"CLOSE"]
CONNECTION_VALUES += [b"close, keep-alive", b"upgrade", b"Keep-Alive", b"clos"]
UPGRADE_VALUES = [b"websocket", b"h2c", b"WebSocket", b"foo"]
MISC_FIELDS = [
    (b"User-Agent", b"fuzz/1.0"),
    (b"Accept", b"*/*"),
    (b"X-Empty", b""),
    (b"X-Utf8", b"caf\xc3\xa9"),
    (b"Cookie", b"a=b; c=d"),
    (b"Expect", b"100-continue"),
    (b"Content-Type", b"text/plain"),
    (b"X-Quoted", b'"a, b"'),
    (b"Trailer", b"X-T"),
]
TE_VALUES = [b"Chunked", b"CHUNKED", b" chunked ", b"chunked,", b", chunked", b"chunked, chunked"]
TE_VALUES += [b"gzip, chunked", b"chunked, gzip", b"identity", b"", b"chunked;q=1", b"xchunked"]
TE_VALUES += [b"chunk", b"identity, chunked", b"chunked,,", b"\tchunked", b"chunked\x00"]
TE_VALUES += [b"chunk\xe9d", b'"chunked"', b"chunked\t,", b"chunked ,"]
TE_SPLITS = [(b"gzip", b"chunked"), (b"chunked", b"chunked"), (b"", b"chunked")]
TE_SPLITS += [(b"chunked", b""), (b"chunked", b"identity"), (b",", b"chunked")]
CHUNK_EXTENSIONS = [b";a=b", b";a", b"; a=b", b" ;a=b", b';a="q;x"', b";a=b ", b';a="\\""']
CHUNK_EXTENSIONS += [b";=b", b";a=b;c", b";\xff", b";a=b\x00", b"\t;a", b";a = b", b";a=", b";"]
CHUNK_EXTENSIONS += [b";a=\r", b";a\nb"]
DATA_ENDS = [b"\n", b"", b"\r", b"XX", b"\r\n\r\n", b" \r\n", b"\r\r\n"]
LAST_CHUNKS = [b"00", b"000", b"0;a=b", b"0 ", b" 0", b"0x0", b"-0", b"+0", b"0" * 17]
TRAILERS = [b"X-T: v", b"Content-Length: 5", b"Transfer-Encoding: chunked", b"Host: evil"]
TRAILERS += [b"bad trailer", b" folded", b"X-T:\x00", b"Connection: close", b"X-T : v"]
TRAILERS += [b"content-length: 0", b"X-T:v"]
STRAY_BYTES = [b"\x00", b"\r", b"\n", b" ", b"\t", b"\x80", b"\xff", b":", b",", b";", b"0"]
STRAY_BYTES += [b"a", b"\r\n"]
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


class _Dice:
    """The generator's choices. Mutations happen only on a rough request.

    Every choice is a drawn integer past a threshold, so hypothesis shrinks a
    failing stream towards the plain, valid request it was mutated from.
    """

    def __init__(self, draw: st.DrawFn, rough: bool) -> None:
        self.draw = draw
        self.rough = rough

    def chance(self, percent: int) -> bool:
        """True about ``percent`` % of the time; shrinks towards False."""
        return self.draw(st.integers(0, 99)) >= 100 - percent

    def mutate(self, percent: int) -> bool:
        """Like :meth:`chance`, and never on a request drawn clean."""
        return self.rough and self.chance(percent)

    def pick(self, options: list[bytes]) -> bytes:
        return self.draw(st.sampled_from(options))


class _Eol:
    """Line endings for one request: CRLF, LF, or a mix (with CR, CRCRLF, ...)."""

    def __init__(self, dice: _Dice) -> None:
        self.dice = dice
        self.style = dice.pick([b"lf", b"mixed"]) if dice.mutate(10) else b"crlf"

    def __call__(self) -> bytes:
        if self.style == b"crlf":
            return self.dice.pick(ODD_EOLS) if self.dice.mutate(1) else b"\r\n"
        if self.style == b"lf":
            return b"\n"
        return self.dice.pick([b"\r\n", b"\r\n", *ODD_EOLS])


def _field(dice: _Dice, eol: _Eol, name: bytes, value: bytes) -> bytes:
    if dice.chance(10):
        name = dice.pick([name.lower(), name.upper()])
    if dice.mutate(1):  # obs-fold, RFC 9112 5.2
        cut = dice.draw(st.integers(0, len(value)))
        return name + b": " + value[:cut] + eol() + dice.pick([b" ", b"\t"]) + value[cut:]
    if not dice.mutate(5):
        return name + b": " + value
    return dice.pick(
        [
            name + b" : " + value,
            name + b"\t: " + value,
            name + b":" + value,
            name + b":\t" + value + b"\t",
            name + b": " + value + b" ",
            b" " + name + b": " + value,
            name + b" " + value,
            b": " + value,
            name + b"\x00: " + value,
            name + b"\xc3\xa4: " + value,
            name + b": " + value + b"\x00",
            name + b": " + value + b"\rx",
            name + b": " + value + b"\xff",
            name + b":: " + value,
            name + b"\x7f: " + value,
        ]
    )


def _content_length(dice: _Dice, length: int) -> list[bytes]:
    value = b"%d" % length
    if dice.mutate(10):
        value = dice.pick(
            [
                b"0" + value,
                b"00" + value,
                b"+" + value,
                b"-" + value,
                b" " + value,
                value + b" ",
                value + b"," + value,
                value + b", " + value,
                value + b",",
                b"," + value,
                b"0x%x" % length,
                b"%d" % (length + 1),
                b"%d" % max(length - 1, 0),
                b"",
                b"9" * 20,
                b"1" * 18,
                b"abc",
                value + b"\x00",
                value + b" 1",
                value + b".0",
                b"%de0" % length,
            ]
        )
    values = [value]
    if dice.mutate(5):  # a second Content-Length field, the same or another
        values.append(dice.pick([value, b"%d" % (length + 1), b"0", b""]))
    return values


def _transfer_encoding(dice: _Dice) -> list[bytes]:
    if dice.mutate(6):
        return list(dice.draw(st.sampled_from(TE_SPLITS)))
    if dice.mutate(15):
        return [dice.pick(TE_VALUES)]
    return [b"chunked"]


def _chunk_size(dice: _Dice, n: int) -> bytes:
    size = b"%x" % n
    if not dice.mutate(10):
        return size
    return dice.pick(
        [
            b"0" + size,
            b"000" + size,
            size.upper(),
            b"0x" + size,
            b"+" + size,
            b"-" + size,
            b" " + size,
            size + b" ",
            size + b"\t",
            b"%x" % (n + 1),
            b"%x" % max(n - 1, 1),
            b"f" * 17,
            b"1" + b"0" * 16,
            b"7fffffffffffffff",
            b"ffffffffffffffff",
            size + b"g",
            b"",
            b"%d" % n,
            b"0" * 16 + size,
        ]
    )


def _chunked_body(dice: _Dice, eol: _Eol, body: bytes) -> bytes:
    cuts = sorted(dice.draw(st.lists(st.integers(0, len(body)), max_size=3)))
    out = []
    for lo, hi in itertools.pairwise([0, *cuts, len(body)]):
        if hi <= lo:
            continue
        size = _chunk_size(dice, hi - lo)
        extension = dice.pick(CHUNK_EXTENSIONS) if dice.chance(8) else b""
        data_end = dice.pick(DATA_ENDS) if dice.mutate(5) else b"\r\n"
        out += [size, extension, eol(), body[lo:hi], data_end]
    last = dice.pick(LAST_CHUNKS) if dice.mutate(6) else b"0"
    extension = dice.pick(CHUNK_EXTENSIONS) if dice.chance(5) else b""
    out += [last, extension, eol()]
    if dice.chance(12):
        for trailer in dice.draw(st.lists(st.sampled_from(TRAILERS), min_size=1, max_size=2)):
            out += [trailer, eol()]
    out.append(b"" if dice.mutate(3) else eol())
    return b"".join(out)


@st.composite
def _request(draw: st.DrawFn) -> bytes:
    """One request: clean half the time, else with a few grammar-level mutations."""
    dice = _Dice(draw, rough=draw(st.booleans()))
    eol = _Eol(dice)
    method = dice.pick(ODD_METHODS) if dice.mutate(6) else dice.pick(METHODS)
    if method == b"CONNECT":
        target = dice.pick(AUTHORITIES) if dice.mutate(40) else b"example.com:443"
    elif method == b"OPTIONS" and dice.chance(50):
        target = b"*"
    elif dice.chance(10):
        target = dice.pick(ABSOLUTE)
    else:
        target = b"/" + draw(st.text(alphabet="abcxyz0129-._~%/?=&;", max_size=12)).encode()
    if dice.mutate(6):
        at = draw(st.integers(0, len(target)))
        target = target[:at] + dice.pick(TARGET_BYTES) + target[at:]
    elif dice.mutate(2):
        target = dice.pick([b"", b"*", b"//x", b"x"])
    if dice.chance(92):
        version = b"HTTP/1.1"
    else:
        version = dice.pick(ODD_VERSIONS) if dice.mutate(40) else b"HTTP/1.0"
    odd_sep = dice.mutate(4)

    def sep() -> bytes:
        return dice.pick(SEPARATORS) if odd_sep else b" "

    line = method + sep() + target + (sep() + version if version else b"")

    fields: list[tuple[bytes, bytes]] = []
    if not dice.mutate(5):
        host = dice.pick(HOST_VALUES) if dice.mutate(5) else b"example.com"
        fields.append((b"Host", host))
        if dice.mutate(4):
            fields.append((b"Host", dice.pick([host, b"other.example"])))
    if dice.chance(15):
        connection = dice.pick(CONNECTION_VALUES)
        fields.append((b"Connection", connection))
        if b"pgrade" in connection or dice.chance(20):
            fields.append((b"Upgrade", dice.pick(UPGRADE_VALUES)))
    fields += draw(st.lists(st.sampled_from(MISC_FIELDS), max_size=2))

    if method in (b"POST", b"PUT", b"PATCH"):
        framing = dice.pick([b"length"] * 5 + [b"chunked"] * 4 + [b"none", b"both"])
    else:
        framing = dice.pick([b"none"] * 14 + [b"length"] * 3 + [b"chunked"] * 2 + [b"both"])
    body = SMUGGLED if dice.chance(8) else draw(st.binary(max_size=24))
    framed: list[tuple[bytes, bytes]] = []
    wire_body = b""
    if framing in (b"chunked", b"both"):
        wire_body = _chunked_body(dice, eol, body)
        framed += [(b"Transfer-Encoding", value) for value in _transfer_encoding(dice)]
    if framing in (b"length", b"both"):
        if framing == b"length":
            wire_body = body
        length = len(wire_body) if framing == b"length" or dice.chance(50) else len(body)
        values = [(b"Content-Length", value) for value in _content_length(dice, length)]
        framed = values + framed if dice.chance(50) else framed + values
    at = draw(st.integers(0, len(fields)))
    fields[at:at] = framed
    if dice.chance(20):
        fields = list(draw(st.permutations(fields)))

    out = [line, eol()]
    for name, value in fields:
        out += [_field(dice, eol, name, value), eol()]
    out += [eol(), wire_body]
    return b"".join(out)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """What a client sends on one connection: 1-3 requests, sometimes roughed up."""
    dice = _Dice(draw, rough=draw(st.booleans()))
    parts = []
    for _ in range(draw(st.sampled_from([1, 2, 2, 3, 3]))):
        request = draw(_request())
        if dice.chance(4):  # RFC 9112 2.2: empty lines before a request line
            parts.append(dice.pick([b"\r\n", b"\r\n\r\n", b"\n", b" "]))
        parts.append(request)
    if dice.mutate(5):
        parts.append(draw(st.binary(max_size=12)))
    data = b"".join(parts)
    if dice.mutate(10):  # one stray byte inserted, replaced or deleted
        at = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 2))
        stray = dice.pick(STRAY_BYTES) if op < 2 else b""
        data = data[:at] + stray + data[at + (op > 0) :]
    if dice.mutate(6):  # the connection ends early
        data = data[: draw(st.integers(0, len(data)))]
    return data


@dataclass(frozen=True)
class Case:
    data: bytes
    cuts: tuple[int, ...]  # where the bytes are split into reads


@st.composite
def cases(draw: st.DrawFn) -> Case:
    data = draw(streams())
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6))
    return Case(data, tuple(sorted(set(cuts))))


def reads(data: bytes, cuts: tuple[int, ...]) -> Iterator[bytes]:
    bounds = [0, *cuts, len(data)]
    for lo, hi in itertools.pairwise(bounds):
        yield data[lo:hi]


# --- properties ------------------------------------------------------------------------

Peers = dict[str, Outcome]


@dataclass(frozen=True)
class Finding:
    """One difference: which property, against which peer, and what differs."""

    prop: str  # "segmentation" | "framing" | "refusal"
    peer: str  # "h11", "llhttp", "both" (refusal) or "ours" (segmentation)
    what: str
    data: bytes
    ours: Outcome
    theirs: Peers = field(default_factory=dict)
    index: int = -1  # framing: the request where the framings part

    @property
    def key(self) -> tuple[str, ...]:
        """What kind of difference this is, to count and to keep one example of each."""
        return (self.prop, self.peer, self.what.split(":")[0], self.ours.end, str(self.ours.status))

    def report(self) -> str:
        lines = [f"[{self.prop} vs {self.peer}] {self.what}", f"  input: {self.data!r}"]
        lines.append(f"  ours:   {self.ours.describe()}")
        for name, outcome in self.theirs.items():
            lines.append(f"  {name + ':':7} {outcome.describe()}")
        return "\n".join(lines)


def _same_result(a: Outcome, b: Outcome) -> bool:
    """Equal outcomes, except the body bytes of a request cut short by an error.

    A chunked body is handed over as it arrives, so how much of it was
    delivered before a bad chunk line is found depends on the reads; what
    was delivered must still agree (one is a prefix of the other).
    """
    if (a.end, a.status, a.reason, a.heads) != (b.end, b.status, b.reason, b.heads):
        return False
    if len(a.requests) != len(b.requests):
        return False
    if a.end != "error" or not a.requests or a.requests[-1].complete:
        return a.requests == b.requests
    if a.requests[:-1] != b.requests[:-1]:
        return False
    x, y = a.requests[-1], b.requests[-1]
    shorter, longer = sorted((x.body, y.body), key=len)
    return (x.method, x.target, x.complete) == (y.method, y.target, y.complete) and (
        longer.startswith(shorter)
    )


def segmentation_findings(data: bytes, cuts: tuple[int, ...]) -> list[Finding]:
    """(a) the same outcome at once, one byte at a time, and split at ``cuts``."""
    whole = frame_ours([data])
    found = []
    for kind, pieces in (
        ("one byte per read", [data[i : i + 1] for i in range(len(data))]),
        (f"split at {list(cuts)}", list(reads(data, cuts))),
    ):
        other = frame_ours(pieces)
        if not _same_result(whole, other):
            what = f"{kind.split(' at ')[0]}: {kind} gives {other.describe()}"
            found.append(Finding("segmentation", "ours", what, data, whole))
    return found


def _framing_differs(ours: Seen, theirs: Seen, ours_end: str, their_end: str) -> str | None:
    """Why two framings of the same request differ, or None if they agree."""
    if (ours.method, ours.target) != (theirs.method, theirs.target):
        return "different request line"
    if ours.complete and theirs.complete:
        return None if ours.body == theirs.body else "different body"
    if ours.complete != theirs.complete:
        # One saw the body end; the other had every byte and still wants more.
        if (their_end if ours.complete else ours_end) == "eof":
            return "one saw the body end, the other still wants body bytes"
    # One of them was cut short by an error: what it had must agree.
    shorter, longer = sorted((ours.body, theirs.body), key=len)
    return None if longer.startswith(shorter) else "different body bytes"


def framing_findings(data: bytes, ours: Outcome, peers: Peers) -> list[Finding]:
    """(b) every request we and a peer both accept is framed alike."""
    found = []
    for name, theirs in peers.items():
        for i, (mine, its) in enumerate(zip(ours.requests, theirs.requests, strict=False)):
            why = _framing_differs(mine, its, ours.end, theirs.end)
            if why is not None:
                what = f"request {i}: {why}"
                found.append(Finding("framing", name, what, data, ours, peers, i))
                break
        else:
            n, m = len(ours.requests), len(theirs.requests)
            if n > m and theirs.end == "eof" and (m == 0 or theirs.requests[-1].complete):
                what = f"we accepted request {m} where it still waits for the head"
                found.append(Finding("framing", name, what, data, ours, peers, m))
            elif m > n and ours.end == "eof" and (n == 0 or ours.requests[-1].complete):
                what = f"it accepted request {n} where we still wait for the head"
                found.append(Finding("framing", name, what, data, ours, peers, n))
    return found


def refusal_findings(data: bytes, ours: Outcome, peers: Peers) -> list[Finding]:
    """(c) where both peers refuse, we get no further than the further of them."""
    if not all(theirs.end == "error" for theirs in peers.values()):
        return []
    heads = max(len(theirs.requests) for theirs in peers.values())
    complete = max(theirs.complete for theirs in peers.values())
    if len(ours.requests) <= heads and ours.complete <= complete:
        return []
    if heads == 0:
        what = "both peers reject the first request, we accept it"
    else:
        what = f"both peers refuse the stream after {heads} request(s), we accept more of it"
    return [Finding("refusal", "both", what, data, ours, peers)]


def frame_all(data: bytes) -> tuple[Outcome, Peers]:
    return frame_ours([data]), {name: frame(data) for name, frame in PEERS.items()}


# --- the allow-list --------------------------------------------------------------------
#
# A difference is allowed only by an entry here. Each names the RFC clause
# that makes our behaviour the right one, applies to one property and one
# peer, and matches narrowly: most re-run the stream with the one feature
# taken out and require the difference to vanish while our own framing
# stays the same. Each entry's example is checked to be a live difference
# (test_allow_list_entries_are_live_and_narrow), so a stale entry is noticed.


@dataclass(frozen=True)
class Allowed:
    """A difference we keep on purpose."""

    name: str
    rfc: str
    why: str
    prop: str
    peer: str
    matches: Callable[[Finding], bool]
    example: bytes  # a stream that shows the difference today

    def covers(self, finding: Finding) -> bool:
        # A refusal finding is about both peers; a refusal entry names the peer
        # whose refusal is discounted (the finding must vanish without it).
        peer_ok = finding.peer == self.peer or finding.prop == "refusal"
        return finding.prop == self.prop and peer_ok and self.matches(finding)


def _vanishes_without(transform: Callable[[bytes], bytes]) -> Callable[[Finding], bool]:
    """The finding is due to what ``transform`` removes, and to nothing else.

    True when the transformed stream differs, we frame it exactly as before
    (same requests, bodies and end), and it no longer shows the finding.
    """

    def matches(finding: Finding) -> bool:
        changed = transform(finding.data)
        if changed == finding.data:
            return False
        ours, peers = frame_all(changed)
        if ours != finding.ours:
            return False
        again = {
            "framing": framing_findings,
            "refusal": refusal_findings,
        }[finding.prop](changed, ours, peers)
        return not any(f.peer == finding.peer for f in again)

    return matches


def _without_empty_lines_before_requests(data: bytes) -> bytes:
    """The stream without the CRLFs our parser skips before each request line.

    Where a request starts is found by framing the stream as we do (the CRLF
    can follow a body, so no pattern on the bytes alone finds it); from the
    first refusal, stop or incomplete message on, the bytes are kept as they are.
    """
    parser = HeadParser(**FUZZ_LIMITS)
    kept: list[bytes] = []
    pos = 0
    while True:
        while data[pos : pos + 2] == b"\r\n":
            pos += 2
        buf = bytearray(data[pos:])
        try:
            head = parser.parse(buf)
            if head is None:
                break
            reader: ChunkedReader | LengthReader | None = None
            if head.chunked:
                reader = ChunkedReader()
            elif head.content_length:
                reader = LengthReader(head.content_length)
            if reader is not None and not reader.read(buf)[1]:
                break
        except ParseError:
            break
        used = len(data) - pos - len(buf)
        kept.append(data[pos : pos + used])
        pos += used
        if stops_after(head):
            break
    return b"".join(kept) + data[pos:]


def _llhttp_skipped_upgrade_body(finding: Finding) -> bool:
    theirs = finding.theirs["llhttp"]
    return (
        theirs.end == "stop"
        and theirs.reason == "upgrade"
        and finding.index == len(theirs.requests) - 1
        and theirs.requests[-1].body == b""
        and theirs.requests[-1].complete
    )


ALLOWED: list[Allowed] = [
    Allowed(
        name="empty-line-before-request",
        rfc="RFC 9112 2.2 (a server SHOULD ignore at least one empty line (CRLF) received "
        "prior to the request-line)",
        why="We skip CRLFs before a request line, as llhttp does; h11 refuses them "
        "('no request line received'). Nothing is framed differently.",
        prop="refusal",
        peer="h11",
        matches=_vanishes_without(_without_empty_lines_before_requests),
        example=b"\r\nFOO / HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    Allowed(
        name="upgrade-request-body",
        rfc="RFC 9110 7.8 (the client cannot change protocols in the middle of a message: "
        "the request, body included, is HTTP/1.1)",
        why="We read an Upgrade request's Content-Length or chunked body as the request's "
        "body; httptools has llhttp skip it (on_headers_complete returns 1 on upgrade) "
        "and treats those bytes as the new protocol. Both stop reading HTTP after it "
        "(for a WebSocket upgrade) so no later request is framed differently.",
        prop="framing",
        peer="llhttp",
        matches=_llhttp_skipped_upgrade_body,
        example=b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 2\r\n\r\nhi",
    ),
]


def check(data: bytes, cuts: tuple[int, ...] = ()) -> tuple[list[Finding], list[Finding]]:
    """All findings for one stream, as (differences, allowed differences)."""
    ours, peers = frame_all(data)
    findings = segmentation_findings(data, cuts)
    findings += framing_findings(data, ours, peers)
    findings += refusal_findings(data, ours, peers)
    bad: list[Finding] = []
    allowed: list[Finding] = []
    for finding in findings:
        (allowed if any(entry.covers(finding) for entry in ALLOWED) else bad).append(finding)
    return bad, allowed


def _not_allowed(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not any(entry.covers(f) for entry in ALLOWED)]


def _assert_none(findings: list[Finding]) -> None:
    assert not findings, "\n".join(finding.report() for finding in findings)


# --- the bounded default run -----------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(case=cases())
def test_segmentation_does_not_change_our_outcome(case: Case) -> None:
    _assert_none(segmentation_findings(case.data, case.cuts))


@FUZZ
@given(data=streams())
def test_framing_agrees_with_every_peer_that_accepts(data: bytes) -> None:
    ours, peers = frame_all(data)
    _assert_none(_not_allowed(framing_findings(data, ours, peers)))


@FUZZ
@given(data=streams())
def test_we_refuse_what_both_peers_refuse(data: bytes) -> None:
    ours, peers = frame_all(data)
    _assert_none(_not_allowed(refusal_findings(data, ours, peers)))


def test_generated_streams_are_mostly_valid_or_nearly() -> None:
    """Most streams must get past every parser's first request, or the fuzzing is moot."""
    tally: Counter[str] = Counter()

    @settings(FUZZ, max_examples=200)
    @given(data=streams())
    def sample(data: bytes) -> None:
        ours = frame_ours([data])
        tally["total"] += 1
        tally["ours"] += not ours.rejected
        tally["all three"] += not ours.rejected and not any(
            frame(data).rejected for frame in PEERS.values()
        )

    sample()
    assert tally["ours"] > tally["total"] * 0.5, tally
    assert tally["all three"] > tally["total"] * 0.3, tally


@pytest.mark.parametrize("entry", ALLOWED, ids=lambda entry: entry.name)
def test_allow_list_entries_are_live_and_narrow(entry: Allowed) -> None:
    """Each allowed difference still happens on its example, and is what covers it."""
    bad, allowed = check(entry.example)
    assert not bad, "\n".join(finding.report() for finding in bad)
    assert any(entry.covers(finding) for finding in allowed), entry.name


def test_empty_line_after_a_body_is_the_allowed_empty_line_difference() -> None:
    # Found by a 30-minute run: the CRLF before the next request follows a
    # body, not a head; h11 refuses it, llhttp refuses the unknown methods.
    data = (
        b"T / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"T / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n"
        b"D / HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    bad, allowed = check(data)
    assert not bad, "\n".join(finding.report() for finding in bad)
    assert [entry.name for entry in ALLOWED if any(map(entry.covers, allowed))] == [
        "empty-line-before-request"
    ]


def test_adapters_frame_a_plain_pipeline_alike() -> None:
    data = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2;e=1\r\nhi\r\n0\r\nX-T: 1\r\n\r\n"
        b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    expected = (
        Seen(b"GET", b"/a", b"", True),
        Seen(b"POST", b"/b", b"abc", True),
        Seen(b"POST", b"/c", b"hi", True),
        Seen(b"GET", b"/d", b"", True),
    )
    for outcome in (frame_ours([data]), frame_h11(data), frame_llhttp(data)):
        assert outcome.requests == expected and outcome.end == "stop", outcome.describe()
    assert check(data) == ([], [])


@pytest.mark.parametrize(
    "data", [b"GET / HTTP/1.1\r\nHost: a\r\n\rX", b"\r\n\rL", b"GET / HTTP/1.1\r\nHost: a\rX"]
)
def test_lone_cr_is_refused_however_split(data: bytes) -> None:
    whole = frame_ours([data])
    assert whole.end == "error" and whole.status == 400
    assert frame_ours([data[:-1], data[-1:]]) == whole
    assert frame_ours([data[i : i + 1] for i in range(len(data))]) == whole


def test_trickled_megabyte_head_costs_linear_time() -> None:
    """(d) A 1 MiB head fed one byte per read costs under 10x the same head in one read."""
    fields = b"".join(b"X-Field-%05d: %s\r\n" % (i, b"v" * 40) for i in range(18_500))
    data = b"GET / HTTP/1.1\r\nHost: example.com\r\n" + fields + b"\r\n"
    assert len(data) > 1 << 20
    limits = {"max_line": 1 << 21, "max_head": 1 << 22, "max_fields": 1 << 20, "max_body": 0}

    def at_once() -> float:
        began = time.perf_counter()
        head = HeadParser(**limits).parse(bytearray(data))
        elapsed = time.perf_counter() - began
        assert head is not None and len(head.headers) == 18_501
        return elapsed

    def byte_by_byte() -> float:
        parse = HeadParser(**limits).parse
        buf = bytearray()
        append = buf.append
        head = None
        began = time.perf_counter()
        for byte in data:
            append(byte)
            head = parse(buf)
        elapsed = time.perf_counter() - began
        assert head is not None and len(head.headers) == 18_501 and not buf
        return elapsed

    whole = min(at_once() for _ in range(5))
    trickled = min(byte_by_byte() for _ in range(3))
    assert trickled < 10 * whole, f"one byte per read {trickled:.3f}s, one read {whole:.3f}s"


# --- the long run ----------------------------------------------------------------------


def _long_minutes(config: pytest.Config) -> float:
    option = config.getoption("--fuzz-long", default=None)
    if option is None:
        option = os.environ.get("PAGI_FUZZ_MINUTES") or 0
    return float(option)


def shrink(finding: Finding, cuts: tuple[int, ...], budget: int = 3000) -> Finding:
    """A smaller stream that shows the same kind of difference (greedy span deletion)."""
    data, best = finding.data, finding

    def same_kind(candidate: bytes) -> Finding | None:
        kept = tuple(c for c in cuts if 0 < c < len(candidate))
        bad, _ = check(candidate, kept)
        return next((f for f in bad if f.key == finding.key), None)

    span = max(1, len(data) // 2)
    while span >= 1 and budget > 0:
        at, progress = 0, False
        while at < len(data) and budget > 0:
            budget -= 1
            found = same_kind(data[:at] + data[at + span :])
            if found is not None:
                data, best, progress = found.data, found, True
            else:
                at += span
        if not progress:
            span //= 2
    return best


@pytest.mark.timeout(0)  # bounded by its own clock; a hung batch trips the watchdog below
def test_fuzz_long(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    """All properties, for ``--fuzz-long`` / ``PAGI_FUZZ_MINUTES`` minutes."""
    minutes = _long_minutes(request.config)
    if minutes <= 0:
        pytest.skip("give --fuzz-long=MINUTES or PAGI_FUZZ_MINUTES for the long run")
    stop_at = time.monotonic() + minutes * 60
    tally: Counter[str] = Counter()
    kinds: Counter[tuple[str, ...]] = Counter()
    allowed_hits: Counter[str] = Counter()
    first: dict[tuple[str, ...], tuple[Finding, tuple[int, ...]]] = {}

    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases())
    def batch(case: Case) -> None:
        if time.monotonic() >= stop_at:
            return
        bad, allowed = check(case.data, case.cuts)
        tally["examples"] += 1
        tally["accepted (first request) by us"] += not frame_ours([case.data]).rejected
        for finding in allowed:
            allowed_hits[next(e.name for e in ALLOWED if e.covers(finding))] += 1
        tally["differing examples"] += bool(bad)
        for finding in bad:
            kinds[finding.key] += 1
            if finding.key not in first or len(finding.data) < len(first[finding.key][0].data):
                first[finding.key] = (finding, case.cuts)

    batches = 0
    began = time.monotonic()
    try:
        while time.monotonic() < stop_at:
            # A watchdog: one batch takes seconds; a parser that hangs ends the run loudly.
            faulthandler.dump_traceback_later(300, exit=True, file=sys.__stderr__ or sys.stderr)
            batch()
            batches += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.monotonic() - began

    with capsys.disabled():
        out = sys.stdout
        print(f"\nparser fuzzing: {elapsed / 60:.1f} min, {batches} batches", file=out)
        for name in ("examples", "accepted (first request) by us", "differing examples"):
            print(f"  {name}: {tally[name]}", file=out)
        for name, hits in sorted(allowed_hits.items()):
            print(f"  allowed difference [{name}]: {hits}", file=out)
        for key, (finding, cuts) in first.items():
            print(f"  difference x{kinds[key]}, smallest example shrunk:", file=out)
            print(shrink(finding, cuts).report(), file=out)
    differing = tally["differing examples"]
    assert differing == 0, f"{differing} of {tally['examples']} examples differ (printed above)"
