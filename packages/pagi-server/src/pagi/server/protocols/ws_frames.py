"""RFC 6455 framing for the server side, with permessage-deflate (RFC 7692).

Theory of operation
-------------------
:class:`FrameCodec` turns the bytes a client sends into whole messages and
control events, and the server's messages and control frames into bytes.
It does no I/O and knows nothing of carriers or applications: the
WebSocket session (``ws_session``) feeds it what the carrier read and
queues what it returns.

**Reading** is pull-based. :meth:`FrameCodec.receive_data` appends bytes;
:meth:`FrameCodec.next_event` parses at most one event from them and
returns ``None`` when it needs more. The session stops pulling while the
application's receive queue is full, so unparsed bytes simply wait in the
codec (at most one read beyond the frame being assembled). Events are:

* :class:`Message`: a whole text (``str``) or binary (``bytes``) message,
  fragments joined and, when compressed, inflated;
* :class:`Ping` / :class:`Pong` with their payloads;
* :class:`Close`: the peer's Close frame (code 1005 when it had none);
* :class:`Violation`: the peer broke the protocol; the session answers with
  a Close carrying :attr:`Violation.code` (1002 protocol error, 1007 invalid
  payload, 1009 too big) and the codec parses nothing more.

Payload is processed as it arrives, not when its frame is complete: text is
validated as UTF-8 incrementally (an invalid sequence fails at once, even
in the middle of a frame still arriving), compressed data is inflated
chunk by chunk, and the size limits are checked on the frame header
(``max_frame`` on its declared length, ``max_message`` on the declared
length plus what the message already holds) and again after inflation,
which never produces more than the message limit, so a small compression
bomb closes with 1009 instead of filling memory. The common case, a whole
unfragmented frame already in the buffer, takes a short path: one slice,
one unmask, one decode.

**Writing** never fragments: :meth:`FrameCodec.message` returns one frame
(compressed when permessage-deflate was negotiated), and the control-frame
builders return one frame each. Server frames are not masked (RFC 6455
5.1).

**State** follows RFC 6455 7: ``OPEN`` until a Close is sent or received;
``REMOTE_CLOSING`` after the peer's Close until ours is sent;
``LOCAL_CLOSING`` after ours until the peer's arrives; then ``CLOSED``.
"""

from __future__ import annotations

import codecs
import enum
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "Close",
    "CodecState",
    "DeflateParams",
    "Event",
    "FrameCodec",
    "Message",
    "Ping",
    "Pong",
    "Violation",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPS = (OP_TEXT, OP_BINARY)
_CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
TOO_BIG = 1009
NO_STATUS = 1005


class CodecState(enum.Enum):
    """Where the closing handshake stands (RFC 6455 7)."""

    OPEN = "open"
    REMOTE_CLOSING = "remote_closing"
    LOCAL_CLOSING = "local_closing"
    CLOSED = "closed"


#: States in which the peer's frames are still parsed: until its Close arrives.
_READING = (CodecState.OPEN, CodecState.LOCAL_CLOSING)


class Message:
    """A whole data message: ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Message({self.data!r:.60})"


class Ping:
    """A Ping from the peer; answer it with :meth:`FrameCodec.pong` of the payload."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Pong:
    """A Pong from the peer (solicited or not)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Close:
    """The peer's Close frame: its code (1005 if none) and reason."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Close({self.code}, {self.reason!r})"


class Violation:
    """The peer broke the protocol: close with ``code``; ``detail`` says what happened."""

    __slots__ = ("code", "detail")

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail

    def __repr__(self) -> str:
        return f"Violation({self.code}, {self.detail!r})"


Event = Message | Ping | Pong | Close | Violation


@dataclass(frozen=True)
class DeflateParams:
    """The negotiated permessage-deflate parameters (RFC 7692 7.1), as the server applies them.

    ``client_window_bits`` sizes our decompressor (the client compresses
    within it); ``server_window_bits`` and ``mem_level`` size our
    compressor; the takeover flags say whether a context survives a message.
    """

    server_window_bits: int = 15
    client_window_bits: int = 15
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    mem_level: int = 8
    level: int = zlib.Z_DEFAULT_COMPRESSION


def _valid_close_code(code: int) -> bool:
    """RFC 6455 7.4: the codes a Close frame may carry on the wire."""
    if 1000 <= code <= 1011:
        return code not in (1004, NO_STATUS, 1006)
    return 3000 <= code <= 4999


def _unmask(data: bytes | bytearray, mask: bytes) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``mask`` (done as one big-integer XOR)."""
    n = len(data)
    if not n:
        return b""
    key = mask * (n // 4 + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(key[:n], "little")
    return value.to_bytes(n, "little")


def _frame_head(first: int, length: int) -> bytes:
    """An unmasked frame header: FIN/RSV/opcode byte, then the minimal length form."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + _U16.pack(length)
    return bytes((first, 127)) + _U64.pack(length)


class FrameCodec:
    """The server side of one WebSocket connection's framing (see the module docstring)."""

    def __init__(
        self,
        *,
        max_frame: int,
        max_message: int,
        deflate: DeflateParams | None = None,
    ) -> None:
        self.state = CodecState.OPEN
        self._max_frame = max_frame
        self._max_message = max_message
        self._buf = bytearray()
        self._pos = 0
        self._failed = False
        # The frame whose payload is arriving (header parsed), if any.
        self._in_frame = False
        self._op = 0
        self._fin = False
        self._mask = b""
        self._remaining = 0
        self._offset = 0  # payload bytes of this frame already consumed (mask phase)
        self._control_parts: list[bytes] = []
        # The data message being assembled, if any.
        self._msg_op = 0  # OP_TEXT/OP_BINARY while a message is open, else 0
        self._msg_parts: list[bytes] = []
        self._msg_size = 0  # bytes held for the message (after inflation)
        self._msg_compressed = False
        self._utf8: codecs.BufferedIncrementalDecoder | None = None
        self._text_parts: list[str] = []
        self._deflate = deflate
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None

    # --- reading -------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer (ignored once the codec failed or closed)."""
        if not self._failed and self.state in _READING:
            self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self._buf) - self._pos

    def next_event(self) -> Event | None:
        """Parse the next event from the buffered bytes, or ``None`` if more are needed."""
        if self._failed or self.state not in _READING:
            return None  # after the peer's Close nothing it sends counts (RFC 6455 5.5.1)
        while True:
            if not self._in_frame:
                event = self._read_header()
                if event is not None or not self._in_frame:
                    self._compact()
                    return event
            event = self._read_payload()
            if event is not None or self._in_frame:
                self._compact()
                return event

    def _compact(self) -> None:
        pos = self._pos
        if pos:
            if pos == len(self._buf):
                self._buf.clear()
            elif pos > 65536:
                del self._buf[:pos]
            else:
                return
            self._pos = 0

    def _fail(self, code: int, detail: str) -> Violation:
        self._failed = True
        self._buf.clear()
        self._pos = 0
        self._in_frame = False
        self._msg_parts = []
        self._text_parts = []
        return Violation(code, detail)

    def _read_header(self) -> Event | None:
        """Parse one frame header; handle a whole small frame at once when it is all here."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        head = 6
        if length == 126:
            head = 8
            if avail < head:
                return None
            length = _U16.unpack_from(buf, pos + 2)[0]
            if length < 126:
                return self._fail(PROTOCOL_ERROR, "payload length not in its minimal form")
        elif length == 127:
            head = 14
            if avail < head:
                return None
            length = _U64.unpack_from(buf, pos + 2)[0]
            if length < 65536 or length >> 63:
                return self._fail(PROTOCOL_ERROR, "payload length not in its minimal form")
        if not b1 & 0x80:
            return self._fail(PROTOCOL_ERROR, "client frames must be masked")
        if avail < head:
            return None
        op = b0 & 0x0F
        fin = bool(b0 & 0x80)
        rsv = b0 & 0x70
        if op in _CONTROL_OPS:
            if rsv:
                return self._fail(PROTOCOL_ERROR, "reserved bits set on a control frame")
            if not fin:
                return self._fail(PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                return self._fail(PROTOCOL_ERROR, "control frame payload over 125 bytes")
        elif op in _DATA_OPS or op == OP_CONT:
            if op == OP_CONT:
                if not self._msg_op:
                    return self._fail(PROTOCOL_ERROR, "continuation frame without a message")
                if rsv:
                    return self._fail(PROTOCOL_ERROR, "reserved bits set on a continuation frame")
            else:
                if self._msg_op:
                    return self._fail(PROTOCOL_ERROR, "new message before the last one finished")
                if rsv & 0x30 or (rsv and self._deflate is None):
                    return self._fail(PROTOCOL_ERROR, "reserved bits set without an extension")
            if length > self._max_frame:
                return self._fail(TOO_BIG, "frame over max_ws_frame_size")
            if self._msg_size + length > self._max_message and not (
                self._msg_compressed or (rsv and op != OP_CONT)
            ):
                return self._fail(TOO_BIG, "message over max_ws_message_size")
        else:
            return self._fail(PROTOCOL_ERROR, f"reserved opcode {op:#x}")
        mask = bytes(buf[pos + head - 4 : pos + head])
        start = pos + head
        if op != OP_CONT and op in _DATA_OPS:
            compressed = bool(rsv)
            # The short path: an unfragmented, uncompressed message wholly buffered.
            if fin and not compressed and avail >= head + length:
                self._pos = start + length
                data = _unmask(buf[start : start + length], mask)
                if op == OP_TEXT:
                    try:
                        return Message(data.decode("utf-8"))
                    except UnicodeDecodeError:
                        return self._fail(INVALID_PAYLOAD, "text message is not valid UTF-8")
                return Message(data)
            self._open_message(op, compressed)
        self._pos = start
        self._in_frame = True
        self._op = op
        self._fin = fin
        self._mask = mask
        self._remaining = length
        self._offset = 0
        return None

    def _open_message(self, op: int, compressed: bool) -> None:
        self._msg_op = op
        self._msg_parts = []
        self._msg_size = 0
        self._msg_compressed = compressed
        if op == OP_TEXT:
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._text_parts = []
        if compressed and self._inflater is None:
            assert self._deflate is not None
            self._inflater = zlib.decompressobj(-self._deflate.client_window_bits)

    def _read_payload(self) -> Event | None:
        """Consume what has arrived of the current frame's payload."""
        buf = self._buf
        pos = self._pos
        take = min(self._remaining, len(buf) - pos)
        op = self._op
        if take == 0 and self._remaining:
            return None
        chunk = b""
        if take:
            mask = self._mask
            shift = self._offset & 3
            if shift:
                mask = mask[shift:] + mask[:shift]
            chunk = _unmask(buf[pos : pos + take], mask)
            self._pos = pos + take
            self._offset += take
            self._remaining -= take
        if op in _CONTROL_OPS:
            if chunk:
                self._control_parts.append(chunk)
            if self._remaining:
                return None
            self._in_frame = False
            payload = b"".join(self._control_parts)
            self._control_parts = []
            return self._control(op, payload)
        if chunk:
            violation = self._message_data(chunk)
            if violation is not None:
                return violation
        if self._remaining:
            return None
        self._in_frame = False
        if not self._fin:
            return None
        return self._finish_message()

    def _message_data(self, chunk: bytes) -> Violation | None:
        if self._msg_compressed:
            assert self._inflater is not None
            room = self._max_message - self._msg_size
            try:
                chunk = self._inflater.decompress(chunk, room + 1)
            except zlib.error:
                return self._fail(INVALID_PAYLOAD, "invalid deflate data")
            if len(chunk) > room or self._inflater.unconsumed_tail:
                return self._fail(TOO_BIG, "message over max_ws_message_size once inflated")
        self._msg_size += len(chunk)
        if self._msg_op == OP_TEXT:
            assert self._utf8 is not None
            try:
                self._text_parts.append(self._utf8.decode(chunk))
            except UnicodeDecodeError:
                return self._fail(INVALID_PAYLOAD, "text message is not valid UTF-8")
        else:
            self._msg_parts.append(chunk)
        return None

    def _finish_message(self) -> Event:
        if self._msg_compressed:
            # RFC 7692 7.2.2: the sender stripped this flush marker; give it back.
            violation = self._message_data(_DEFLATE_TAIL)
            if violation is not None:
                return violation
            assert self._deflate is not None
            if self._deflate.client_no_context_takeover:
                self._inflater = None
        op = self._msg_op
        self._msg_op = 0
        self._msg_size = 0
        self._msg_compressed = False
        if op == OP_TEXT:
            assert self._utf8 is not None
            try:
                last = self._utf8.decode(b"", True)
            except UnicodeDecodeError:
                return self._fail(INVALID_PAYLOAD, "text message ends inside a UTF-8 sequence")
            parts, self._text_parts, self._utf8 = self._text_parts, [], None
            if last:
                parts.append(last)
            return Message("".join(parts))
        data, self._msg_parts = b"".join(self._msg_parts), []
        return Message(data)

    def _control(self, op: int, payload: bytes) -> Event:
        if op == OP_PING:
            return Ping(payload)
        if op == OP_PONG:
            return Pong(payload)
        if not payload:
            code, reason = NO_STATUS, ""
        elif len(payload) == 1:
            return self._fail(PROTOCOL_ERROR, "Close frame with a 1-byte payload")
        else:
            code = _U16.unpack_from(payload)[0]
            if not _valid_close_code(code):
                return self._fail(PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(INVALID_PAYLOAD, "close reason is not valid UTF-8")
        self.state = (
            CodecState.REMOTE_CLOSING if self.state is CodecState.OPEN else CodecState.CLOSED
        )
        self._in_frame = False
        self._buf.clear()
        self._pos = 0
        return Close(code, reason)

    # --- writing -------------------------------------------------------------------------
    def message(self, data: str | bytes) -> bytes:
        """One frame carrying a whole text (``str``) or binary (``bytes``) message."""
        if isinstance(data, str):
            first = 0x80 | OP_TEXT
            payload = data.encode("utf-8")
        else:
            first = 0x80 | OP_BINARY
            payload = bytes(data)
        if self._deflate is not None:
            payload = self._compress(payload)
            first |= 0x40
        return _frame_head(first, len(payload)) + payload

    def _compress(self, payload: bytes) -> bytes:
        params = self._deflate
        assert params is not None
        deflater = self._deflater
        if deflater is None:
            deflater = zlib.compressobj(
                params.level, zlib.DEFLATED, -params.server_window_bits, params.mem_level
            )
            if not params.server_no_context_takeover:
                self._deflater = deflater
        out = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_DEFLATE_TAIL):
            out = out[:-4]
        return out or b"\x00"

    def ping(self, payload: bytes = b"") -> bytes:
        """A Ping frame (payload at most 125 bytes)."""
        return _frame_head(0x80 | OP_PING, len(payload)) + payload

    def pong(self, payload: bytes) -> bytes:
        """A Pong frame echoing a Ping's payload."""
        return _frame_head(0x80 | OP_PONG, len(payload)) + payload

    def close(self, code: int | None = None, reason: str = "") -> bytes:
        """Our Close frame, and the state change it makes.

        ``None`` (or 1005) sends a Close without a code; the reason is cut
        on a character boundary so the payload fits a control frame.
        """
        if code is None or code == NO_STATUS:
            payload = b""
        else:
            raw = reason.encode("utf-8")
            if len(raw) > 123:
                raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
            payload = _U16.pack(code) + raw
        if self.state is CodecState.OPEN:
            self.state = CodecState.LOCAL_CLOSING
        elif self.state is CodecState.REMOTE_CLOSING:
            self.state = CodecState.CLOSED
            self._buf.clear()
            self._pos = 0
        return _frame_head(0x80 | OP_CLOSE, len(payload)) + payload
