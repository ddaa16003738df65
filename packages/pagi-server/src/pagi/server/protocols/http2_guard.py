"""Frame-level limits of an HTTP/2 connection, checked before ``h2`` sees the bytes.

Theory of operation
-------------------
``h2`` parses a frame only once all of it has arrived and reports most
cheap frames (SETTINGS, PING, PRIORITY, WINDOW_UPDATE on a closed stream,
CONTINUATION) either not at all or after it has already done the work. So
the connection driver first runs every received chunk through a
:class:`FrameGuard`, a tiny sans-IO scanner that follows the frame
boundaries (9-byte headers; payloads are skipped, never copied) and:

* refuses a frame longer than ``h2_max_frame_size`` as soon as its header
  arrives, instead of after buffering up to 16 MiB of it;
* adds up a header block (HEADERS plus its CONTINUATION frames) and refuses
  it once it exceeds ``h2_max_header_list_size`` bytes on the wire; it also
  records since when a header block has been incomplete, for the
  ``header_timeout`` the server's ticker enforces;
* counts the frames that cost a client nothing and the server something
  (:data:`CHEAP_FRAMES`): past ``h2_max_control_frames_per_window`` of them
  within ``h2_flood_window`` seconds the connection is told to calm down.

A refusal is an :class:`H2LimitExceeded` naming the limit, the HTTP/2 error
code for the GOAWAY and what happened; the driver logs it and closes.
:class:`RateWindow` is the fixed-window counter used here and for the Rapid
Reset defence in the driver.
"""

from __future__ import annotations

from collections.abc import Callable

from h2.errors import ErrorCodes

__all__ = ["CHEAP_FRAMES", "FrameGuard", "H2LimitExceeded", "RateWindow"]

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4

_PREFACE_LENGTH = 24

#: Which frames count toward ``h2_max_control_frames_per_window``, and when.
#: "always": every one; "empty": DATA with no payload that does not end the
#: stream; "not-open": addressed to a stream that is not open (idle or closed).
#: Frame types not listed here and unknown to RFC 9113 (extensions) always count.
CHEAP_FRAMES: dict[int, str] = {
    SETTINGS: "always",
    PING: "always",
    PRIORITY: "always",
    CONTINUATION: "always",
    GOAWAY: "always",
    DATA: "empty",
    WINDOW_UPDATE: "not-open",
    RST_STREAM: "not-open",
}
_FRAME_NAMES = {
    DATA: "DATA",
    HEADERS: "HEADERS",
    PRIORITY: "PRIORITY",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PUSH_PROMISE: "PUSH_PROMISE",
    PING: "PING",
    GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE",
    CONTINUATION: "CONTINUATION",
}


def frame_name(frame_type: int) -> str:
    return _FRAME_NAMES.get(frame_type, f"frame type 0x{frame_type:02x}")


class H2LimitExceeded(Exception):
    """A client went past an HTTP/2 limit; the connection ends with GOAWAY ``code``."""

    def __init__(self, code: ErrorCodes, limit: str, detail: str) -> None:
        super().__init__(f"{detail} (limit {limit})")
        self.code = code
        #: The ``ServerConfig`` field whose value was exceeded.
        self.limit = limit
        self.detail = detail


class RateWindow:
    """Counts events in fixed windows of ``window`` seconds; ``limit`` 0 means no limit."""

    __slots__ = ("count", "limit", "start", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.count = 0
        self.start = 0.0

    def hit(self, now: float) -> bool:
        """Count one event at ``now``; True once the window holds more than ``limit``."""
        if not self.limit:
            return False
        if now - self.start >= self.window:
            self.start = now
            self.count = 0
        self.count += 1
        return self.count > self.limit


class FrameGuard:
    """Follows frame boundaries of one connection's inbound bytes; see the module docstring."""

    __slots__ = (
        "_block_bytes",
        "_cheap",
        "_ends_block",
        "_fresh",
        "_head",
        "_highest",
        "_is_open",
        "_max_block",
        "_max_frame",
        "_skip",
        "header_since",
    )

    def __init__(
        self,
        *,
        max_frame_size: int,
        max_header_block: int,
        max_cheap_frames: int,
        window: float,
        is_open: Callable[[int], bool],
    ) -> None:
        self._max_frame = max_frame_size
        self._max_block = max_header_block
        self._cheap = RateWindow(max_cheap_frames, window)
        self._is_open = is_open
        self._head = b""  # a frame header split across reads (under 9 bytes)
        self._skip = _PREFACE_LENGTH  # payload bytes still to pass over (first, the preface)
        self._ends_block = False  # the frame being passed over ends a header block
        self._block_bytes = 0
        self._highest = 0
        self._fresh: set[int] = set()  # streams opened by HEADERS in this chunk
        #: ``time.monotonic()`` when the incomplete header block began, else ``None``.
        self.header_since: float | None = None

    @property
    def cheap_frames(self) -> RateWindow:
        return self._cheap

    def scan(self, data: bytes, now: float) -> None:
        """Account for ``data``; raise :class:`H2LimitExceeded` if it breaks a limit."""
        size = len(data)
        pos = 0
        if self._fresh:
            self._fresh.clear()
        while pos < size:
            skip = self._skip
            if skip:
                step = min(skip, size - pos)
                pos += step
                self._skip = skip - step
                if self._skip == 0 and self._ends_block:
                    self._end_block()
                continue
            head = self._head
            if head or size - pos < 9:
                take = 9 - len(head)
                head += data[pos : pos + take]
                pos += take
                if len(head) < 9:
                    self._head = head
                    return
                self._head = b""
            else:
                head = data[pos : pos + 9]
                pos += 9
            self._on_frame(
                int.from_bytes(head[0:3], "big"),
                head[3],
                head[4],
                int.from_bytes(head[5:9], "big") & 0x7FFFFFFF,
                now,
            )

    def _end_block(self) -> None:
        self._ends_block = False
        self._block_bytes = 0
        self.header_since = None

    def _on_frame(
        self, length: int, frame_type: int, flags: int, stream_id: int, now: float
    ) -> None:
        if length > self._max_frame:
            raise H2LimitExceeded(
                ErrorCodes.FRAME_SIZE_ERROR,
                "h2_max_frame_size",
                f"{frame_name(frame_type)} frame of {length} bytes",
            )
        if frame_type == HEADERS or frame_type == CONTINUATION:
            if frame_type == HEADERS:
                if self.header_since is None:
                    self.header_since = now
                if stream_id > self._highest:
                    self._highest = stream_id
                    self._fresh.add(stream_id)
            self._block_bytes += length
            if self._block_bytes > self._max_block:
                raise H2LimitExceeded(
                    ErrorCodes.ENHANCE_YOUR_CALM,
                    "h2_max_header_list_size",
                    f"header block of more than {self._block_bytes} bytes",
                )
            self._ends_block = bool(flags & END_HEADERS)
        if frame_type != HEADERS:
            rule = CHEAP_FRAMES.get(frame_type, "always" if frame_type > CONTINUATION else "")
            if rule and self._counts(rule, length, flags, stream_id) and self._cheap.hit(now):
                raise H2LimitExceeded(
                    ErrorCodes.ENHANCE_YOUR_CALM,
                    "h2_max_control_frames_per_window",
                    f"{self._cheap.count} control frames in under {self._cheap.window:g}s,"
                    f" the last {frame_name(frame_type)}",
                )
        self._skip = length
        if length == 0 and self._ends_block:
            self._end_block()

    def _counts(self, rule: str, length: int, flags: int, stream_id: int) -> bool:
        if rule == "always":
            return True
        if rule == "empty":
            return length == 0 and not flags & END_STREAM
        # "not-open": frames for the connection itself (stream 0) are not counted.
        return (
            stream_id != 0
            and stream_id not in self._fresh
            and (stream_id > self._highest or not self._is_open(stream_id))
        )
