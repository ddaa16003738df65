"""A file response with validators, conditional requests and byte ranges.

The file is stat'ed when the response is *sent*, not when it is built, so a
response value stays valid while the file changes and the headers always
describe the bytes that go out. Bodies go out as the spec's ``file`` event
with ``offset``/``length`` (R-HFILE-*), which lets the server use zero-copy;
only a multi-range answer, which interleaves part headers with file slices,
reads the slices itself (in a worker thread).
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat
from typing import Literal
from urllib.parse import quote

import anyio.to_thread

from pagi.spec import Scope, Send
from pagi.tools.background import BackgroundTask
from pagi.tools.conditional import (
    Unsatisfiable,
    etag_for,
    evaluate_preconditions,
    http_date,
    parse_range,
    range_applies,
)
from pagi.tools.headers import HeaderInput, Headers
from pagi.tools.response import PlainTextResponse, Response

__all__ = ["FileResponse", "guess_media_type"]

_CHUNK = 64 * 1024


def guess_media_type(
    path: str | os.PathLike[str], default: str = "application/octet-stream"
) -> str:
    """The media type for a file name (from :mod:`mimetypes`), text types with UTF-8."""
    kind, _ = mimetypes.guess_type(os.fspath(path), strict=False)
    if kind is None:
        return default
    if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
        return f"{kind}; charset=utf-8"
    return kind


class FileResponse(Response):
    """Serve one file with ETag, Last-Modified, 304/412, Range (incl. suffix and multi), HEAD.

    ``filename`` adds ``Content-Disposition`` (``attachment`` by default,
    ``inline`` with ``disposition="inline"``), with an RFC 8187
    ``filename*`` for non-ASCII names. A missing file answers 404 at send
    time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status: int = 200,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
        *,
        filename: str | None = None,
        disposition: Literal["attachment", "inline"] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(None, status, headers, background=background)
        del self.headers["content-length"]
        self.path = os.fspath(path)
        if "content-type" not in self.headers:
            self.headers["content-type"] = media_type or guess_media_type(filename or self.path)
        if filename is not None or disposition is not None:
            self.headers["content-disposition"] = _disposition(
                disposition or "attachment", filename
            )

    async def send_http(self, scope: Scope, send: Send) -> None:
        try:
            info = await anyio.to_thread.run_sync(os.stat, self.path)
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            await PlainTextResponse("Not Found", 404).send_http(scope, send)
            return
        size = info.st_size
        etag = etag_for(size, info.st_mtime_ns)
        headers = self.headers.mutablecopy()
        headers.setdefault("etag", etag)
        headers.setdefault("last-modified", http_date(info.st_mtime))
        headers.setdefault("accept-ranges", "bytes")
        request = {name: value for name, value in reversed(Headers.from_scope(scope).multi_items())}
        method = str(scope.get("method", "GET"))
        head = method == "HEAD"

        verdict = (
            evaluate_preconditions(method, request, etag, info.st_mtime)
            if self.status == 200
            else None
        )
        if verdict is not None:
            # A 304/412 carries validators, not a description of a body it lacks.
            for name in ("content-type", "content-disposition", "accept-ranges"):
                headers.pop(name)
            if verdict == 412:
                headers["content-length"] = "0"
            await send({"type": "http.response.start", "status": verdict, "headers": headers.raw})
            await send({"type": "http.response.body", "body": b""})
            return

        ranges: list[tuple[int, int]] | None = None
        if (
            self.status == 200
            and method in ("GET", "HEAD")
            and range_applies(request, etag, info.st_mtime)
        ):
            try:
                ranges = parse_range(request.get("range"), size)
            except Unsatisfiable:
                headers["content-range"] = f"bytes */{size}"
                headers["content-length"] = "0"
                headers.pop("content-type")
                await send({"type": "http.response.start", "status": 416, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return

        if ranges is None:
            headers["content-length"] = str(size)
            await self._send_slice(send, headers, self.status, 0, size, head)
        elif len(ranges) == 1:
            start, stop = ranges[0]
            headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
            headers["content-length"] = str(stop - start)
            await self._send_slice(send, headers, 206, start, stop - start, head)
        else:
            await self._send_multipart(send, headers, ranges, size, head)

    async def _send_slice(
        self, send: Send, headers: Headers, status: int, offset: int, length: int, head: bool
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        if head or length == 0:
            await send({"type": "http.response.body", "body": b""})
        else:
            await send(
                {
                    "type": "http.response.body",
                    "file": self.path,
                    "offset": offset,
                    "length": length,
                }
            )

    async def _send_multipart(
        self, send: Send, headers: Headers, ranges: list[tuple[int, int]], size: int, head: bool
    ) -> None:
        boundary = secrets.token_hex(16)
        part_type = headers.get("content-type", "application/octet-stream")
        heads = [
            (
                f"--{boundary}\r\ncontent-type: {part_type}\r\n"
                f"content-range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
            ).encode("latin-1")
            for start, stop in ranges
        ]
        tail = f"--{boundary}--\r\n".encode("latin-1")
        total = sum(
            len(h) + (stop - start) + 2 for h, (start, stop) in zip(heads, ranges, strict=True)
        ) + len(tail)
        out = headers.mutablecopy()
        out["content-type"] = f"multipart/byteranges; boundary={boundary}"
        out["content-length"] = str(total)
        await send({"type": "http.response.start", "status": 206, "headers": out.raw})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        f = await anyio.to_thread.run_sync(open, self.path, "rb")
        try:
            for part_head, (start, stop) in zip(heads, ranges, strict=True):
                await send({"type": "http.response.body", "body": part_head, "more": True})
                position = start
                while position < stop:
                    n = min(_CHUNK, stop - position)
                    chunk = await anyio.to_thread.run_sync(_read_at, f, position, n)
                    if not chunk:
                        break
                    position += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more": True})
                await send({"type": "http.response.body", "body": b"\r\n", "more": True})
        finally:
            f.close()
        await send({"type": "http.response.body", "body": tail})


def _read_at(f: object, offset: int, n: int) -> bytes:
    f.seek(offset)  # type: ignore[attr-defined]
    return bytes(f.read(n))  # type: ignore[attr-defined]


def _disposition(kind: str, filename: str | None) -> str:
    if filename is None:
        return kind
    ascii_name = filename.encode("ascii", "replace").decode("ascii")
    ascii_name = "".join(c for c in ascii_name if c not in '"\\\r\n')
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
