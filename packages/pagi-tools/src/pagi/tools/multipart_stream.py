"""Pull-based multipart: ``async for part in request.multipart()``, each part streamed.

Theory of operation
-------------------
The same sans-IO ``multipart.PushMultipartParser`` as :mod:`pagi.tools.forms`,
driven the other way round: nothing is read from the client until the
application asks for the next part or the next chunk of a part, so memory
holds at most one body chunk plus the parser's small lookahead, whatever the
upload size (backpressure reaches the client through the server).

* :class:`MultipartReader` iterates :class:`Part` objects. Moving to the
  next part first drains what the application left unread of the current
  one.
* A :class:`Part` is an async iterator of ``bytes`` chunks; ``await
  part.read()`` / ``part.text()`` collect it (bounded by the limits),
  ``await part.save(path)`` writes it to a file (in a worker thread) and
  ``await part.save_to(sink)`` hands each chunk to ``sink(chunk)`` (sync or
  async).
* The limits are :class:`~pagi.tools.forms.FormLimits`, the same as
  :meth:`Request.form`: ``max_parts``, ``max_field_size`` (a part without
  a filename), ``max_file_size``, ``max_total_size``; a breach raises
  :class:`~pagi.tools.exceptions.BodyTooLarge` (413) before the excess is
  handed over.
* A body that ends before the closing boundary raises
  :class:`~pagi.tools.exceptions.FormError`; :meth:`Part.save` deletes the
  partial file first.
"""

from __future__ import annotations

import inspect
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import multipart

from pagi.tools.exceptions import BodyTooLarge, FormError
from pagi.tools.forms import FormLimits, _boundary, _filename_star

__all__ = ["MultipartReader", "Part"]

_END = object()  # the parser's end-of-part marker, as queued here


class Part:
    """One part of a multipart body; iterate it for its chunks (once)."""

    def __init__(self, reader: MultipartReader, segment: Any) -> None:
        self._reader = reader
        self.name: str = segment.name or ""
        self.headers: dict[str, str] = {k.lower(): v for k, v in segment.headerlist}
        self.filename: str | None = _filename_star(segment.headerlist) or segment.filename
        self.content_type: str | None = segment.content_type
        self.charset: str | None = segment.charset
        #: Bytes handed out so far.
        self.size = 0
        self._done = False

    @property
    def is_file(self) -> bool:
        """True when the part has a filename (an upload rather than a field)."""
        return self.filename is not None

    def __aiter__(self) -> Part:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        event = await self._reader._next_event()
        if event is _END:
            self._done = True
            raise StopAsyncIteration
        if event is None:
            raise FormError("truncated multipart body: it ended inside a part")
        if not isinstance(event, (bytes, bytearray, memoryview)):
            raise FormError("malformed multipart body: a part header inside a part")
        data = bytes(event)
        self.size += len(data)
        limits = self._reader.limits
        if self.is_file and self.size > limits.max_file_size:
            raise BodyTooLarge(
                f"uploaded file {self.filename!r} exceeds max_file_size ({limits.max_file_size})"
            )
        if not self.is_file and self.size > limits.max_field_size:
            raise BodyTooLarge(
                f"form field {self.name!r} exceeds max_field_size ({limits.max_field_size})"
            )
        return data

    async def drain(self) -> None:
        """Read and discard what is left of this part."""
        async for _ in self:
            pass

    async def read(self) -> bytes:
        """The whole part (within the limits)."""
        return b"".join([chunk async for chunk in self])

    async def text(self) -> str:
        """The whole part decoded with its charset (UTF-8 by default)."""
        return (await self.read()).decode(self.charset or "utf-8", "replace")

    async def save_to(self, sink: Callable[[bytes], Awaitable[Any] | Any]) -> int:
        """Hand every chunk to ``sink(chunk)``; returns the part's size."""
        async for chunk in self:
            result = sink(chunk)
            if inspect.isawaitable(result):
                await result
        return self.size

    async def save(self, path: str | os.PathLike[str]) -> int:
        """Write the part to ``path``; on any error the partial file is deleted."""
        target = Path(path)
        try:
            async with await anyio.open_file(target, "wb") as out:
                async for chunk in self:
                    await out.write(chunk)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: target.unlink(missing_ok=True))
            raise
        return self.size


class MultipartReader:
    """An async iterator of :class:`Part` over a ``multipart/form-data`` body."""

    def __init__(
        self, content_type: str, chunks: AsyncIterator[bytes], limits: FormLimits | None = None
    ) -> None:
        self.limits = limits or FormLimits()
        self._parser = multipart.PushMultipartParser(
            _boundary(content_type), max_segment_count=self.limits.max_parts
        )
        self._chunks = chunks
        self._events: deque[Any] = deque()
        self._total = 0
        self._ended = False
        self._current: Part | None = None
        #: Parts seen so far.
        self.count = 0

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        if self._current is not None and not self._current._done:
            await self._current.drain()  # the application skipped it
        event = await self._next_event()
        if event is None:
            raise StopAsyncIteration
        if not isinstance(event, multipart.MultipartSegment):
            raise FormError("malformed multipart body: data outside a part")
        self.count += 1
        self._current = Part(self, event)
        return self._current

    async def _next_event(self) -> Any:
        """The next parser event: a segment, bytes, ``_END``, or ``None`` at the end of the body."""
        while not self._events:
            if self._ended:
                return None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._ended = True
                try:
                    self._parser.close()
                except multipart.MultipartError:
                    raise FormError(
                        "truncated multipart body: it ended before the closing boundary"
                    ) from None
                continue
            self._total += len(chunk)
            if self._total > self.limits.max_total_size:
                raise BodyTooLarge(
                    f"form body exceeds max_total_size ({self.limits.max_total_size})"
                )
            try:
                for event in self._parser.parse(chunk):
                    self._events.append(_END if event is None else event)
            except multipart.ParserLimitReached:
                raise BodyTooLarge(
                    f"form has more than max_parts ({self.limits.max_parts}) parts"
                ) from None
            except multipart.MultipartError as exc:
                raise FormError(f"malformed multipart body: {exc}") from None
        return self._events.popleft()
