"""GZip and Compress: content coding negotiated from Accept-Encoding, streamed chunk by chunk.

Theory of operation
-------------------
On an ``http`` scope the middleware picks a coding from ``Accept-Encoding``
(q-values honoured, ties broken by the order of ``encodings``, codings
whose library is not installed skipped). The ``http.response.start`` is
looked at first: a response that is already encoded, partial (206),
bodiless (1xx/204/304), an event stream, of an already-compressed type
(images, audio, video, archives, fonts), or declared smaller than
``minimum_size`` passes through untouched, and so does every response to
HEAD. Otherwise the start is held until the first body event decides:

* one final ``bytes`` body: compressed whole if at least ``minimum_size``,
  with an exact ``Content-Length``;
* a streamed body: each chunk is compressed and *flushed* (gzip sync
  flush, brotli flush, zstd block flush), so whatever the app sends reaches
  the client at once; nothing is buffered beyond the current chunk;
* a ``file``/``fh`` body: read in 64 KiB slices in a worker thread and
  compressed the same way (zero-copy is traded for fewer bytes).

A compressed response keeps the app's status and headers, gains
``Content-Encoding`` and ``Vary: Accept-Encoding``, loses
``Content-Length`` (streams) and ``Accept-Ranges``, and a strong ``ETag``
becomes weak (the bytes differ from the identity representation).
"""

from __future__ import annotations

import importlib
import os
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

import anyio.to_thread

from pagi.spec import App, Event, Scope, Send
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import Middleware, OptionError, ResponseStart

__all__ = ["Compress", "GZip", "available_encodings", "negotiate_encoding"]

_READ_SIZE = 64 * 1024

_COMPRESSED_TYPES = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/zstd",
        "application/x-brotli",
        "application/pdf",
        "application/wasm",
    }
)


def _already_compressed(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    main = kind.split("/", 1)[0]
    if main in ("audio", "video", "font"):
        return True
    if main == "image":
        return kind != "image/svg+xml" and not kind.startswith("image/x-icon")
    return kind in _COMPRESSED_TYPES


class Encoder(Protocol):
    """One response's compressor: ``chunk`` compresses and flushes, ``finish`` ends the stream."""

    def chunk(self, data: bytes) -> bytes: ...

    def finish(self, data: bytes) -> bytes: ...


class _Gzip:
    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        # wbits 31: a gzip container (header and CRC), as Content-Encoding: gzip means.
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class _Brotli:
    __slots__ = ("_c",)

    def __init__(self, module: Any, level: int) -> None:
        self._c = module.Compressor(quality=level)

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._c.process(data)) + bytes(self._c.flush())

    def finish(self, data: bytes) -> bytes:
        return bytes(self._c.process(data)) + bytes(self._c.finish())


class _Zstd:
    __slots__ = ("_block", "_c")

    def __init__(self, module: Any, level: int) -> None:
        self._c = module.ZstdCompressor(level=level).compressobj()
        self._block = module.COMPRESSOBJ_FLUSH_BLOCK

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data)) + bytes(self._c.flush(self._block))

    def finish(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data)) + bytes(self._c.flush())


def _load(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


#: Per coding: the module it needs (``None``: stdlib), its default level, its maker.
_CODINGS: dict[str, tuple[str | None, int, Callable[[Any, int], Encoder]]] = {
    "gzip": (None, 6, lambda module, level: _Gzip(level)),
    "br": ("brotli", 4, _Brotli),
    "zstd": ("zstandard", 3, _Zstd),
}
_LEVELS = {"gzip": range(0, 10), "br": range(0, 12), "zstd": range(-7, 23)}


def available_encodings() -> list[str]:
    """The codings this installation can produce (``gzip`` always; ``br``/``zstd`` with extras)."""
    return [name for name, (module, _, _) in _CODINGS.items() if module is None or _load(module)]


def negotiate_encoding(accept_encoding: str | None, offered: Iterable[str]) -> str | None:
    """The coding of ``offered`` the client prefers (q-values; ties go to ``offered`` order).

    ``None`` when the client sent no ``Accept-Encoding`` or accepts none
    of them. ``*`` covers codings not named; ``q=0`` refuses one.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.lower()] = q
    best: tuple[float, str] | None = None
    for name in offered:
        q = weights.get(name, weights.get("*", 0.0))
        if name == "gzip" and "gzip" not in weights and "x-gzip" in weights:
            q = weights["x-gzip"]
        if q > 0 and (best is None or q > best[0]):
            best = (q, name)
    return best[1] if best else None


class Compress(Middleware):
    """``Compress(app, minimum_size=500, encodings=("zstd", "br", "gzip"))``.

    Compresses responses with the best coding both sides support; see the
    module docstring for what is skipped. ``levels`` optionally maps a
    coding to its level (gzip 0-9, br 0-11, zstd -7-22).
    """

    def __init__(
        self,
        app: App,
        minimum_size: int = 500,
        encodings: Iterable[str] = ("zstd", "br", "gzip"),
        *,
        levels: dict[str, int] | None = None,
    ) -> None:
        super().__init__(app)
        name = type(self).__name__
        if isinstance(minimum_size, bool) or not isinstance(minimum_size, int) or minimum_size < 0:
            raise OptionError(name, "minimum_size", f"must be an int >= 0, got {minimum_size!r}")
        if isinstance(encodings, str):
            raise OptionError(name, "encodings", "must be a sequence of names, not one string")
        wanted = [str(e).lower() for e in encodings]
        unknown = [e for e in wanted if e not in _CODINGS]
        if unknown or not wanted:
            raise OptionError(
                name, "encodings", f"must name some of {sorted(_CODINGS)}, got {list(encodings)}"
            )
        self.minimum_size = minimum_size
        self._modules: dict[str, Any] = {}
        for coding in wanted:
            module = _CODINGS[coding][0]
            loaded = None if module is None else _load(module)
            if module is None or loaded is not None:
                self._modules[coding] = loaded
        self.encodings = tuple(self._modules)
        self.levels = {c: _CODINGS[c][1] for c in wanted}
        for coding, level in (levels or {}).items():
            if coding not in self.levels:
                raise OptionError(name, "levels", f"names {coding!r}, not one of {wanted}")
            if (
                isinstance(level, bool)
                or not isinstance(level, int)
                or level not in _LEVELS[coding]
            ):
                allowed = _LEVELS[coding]
                raise OptionError(
                    name,
                    "levels",
                    f"{coding} level must be {allowed.start}-{allowed.stop - 1}, got {level!r}",
                )
            self.levels[coding] = level

    def _encoder(self, coding: str) -> Encoder:
        return _CODINGS[coding][2](self._modules[coding], self.levels[coding])

    def _skip(self, start: ResponseStart) -> bool:
        headers = start.headers
        if start.status < 200 or start.status in (204, 206, 304):
            return True
        if "content-encoding" in headers:
            return True
        kind = headers.get("content-type")
        if kind is not None and kind.split(";", 1)[0].strip().lower() == "text/event-stream":
            return True
        if _already_compressed(kind):
            return True
        length = headers.get("content-length")
        return length is not None and length.isdigit() and int(length) < self.minimum_size

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        if scope.get("method") == "HEAD" or not self.encodings:
            return send
        accept = Headers.from_scope(scope).get("accept-encoding")
        coding = negotiate_encoding(accept, self.encodings)
        chosen = coding or "gzip"  # only read once a coding was negotiated
        state: dict[str, Any] = {"held": None, "encoder": None, "passing": False}

        async def compressing_send(event: Event) -> None:
            kind = event.get("type")
            if state["passing"]:
                await send(event)
                return
            encoder: Encoder | None = state["encoder"]
            if encoder is not None:
                if kind == "http.response.body":
                    await self._stream(event, encoder, send)
                else:
                    await send(event)  # trailers, fullflush
                return
            if kind == "http.response.start":
                start = ResponseStart(event)
                if self._skip(start):
                    state["passing"] = True
                    await send(event)
                    return
                start.headers.add_vary("Accept-Encoding")
                if coding is None:
                    state["passing"] = True
                    await send(start.to_event())
                    return
                state["held"] = start
                return
            held: ResponseStart | None = state["held"]
            if held is None or kind != "http.response.body":
                await send(event)
                return
            state["held"] = None
            has_file = "file" in event or "fh" in event
            body = bytes(event.get("body", b""))
            more = bool(event.get("more", False)) and not has_file
            if not more and not has_file:
                if len(body) < self.minimum_size:
                    state["passing"] = True
                    await send(held.to_event())
                    await send(event)
                    return
                state["passing"] = True
                data = self._encoder(chosen).finish(body)
                _mark(held, chosen, len(data))
                await send(held.to_event())
                await send({**event, "body": data})
                return
            encoder = self._encoder(chosen)
            state["encoder"] = encoder
            _mark(held, chosen, None)
            await send(held.to_event())
            await self._stream(event, encoder, send)

        return compressing_send

    async def _stream(self, event: Event, encoder: Encoder, send: Send) -> None:
        if "file" in event or "fh" in event:
            await self._send_file(event, encoder, send)
            return
        body = bytes(event.get("body", b""))
        if event.get("more", False):
            if body:
                await send(
                    {"type": "http.response.body", "body": encoder.chunk(body), "more": True}
                )
            return
        await send({"type": "http.response.body", "body": encoder.finish(body)})

    async def _send_file(self, event: Event, encoder: Encoder, send: Send) -> None:
        offset = event.get("offset")
        length = event.get("length")
        remaining = None if length is None else int(length)
        owned = "file" in event
        f: IO[bytes] = (
            await anyio.to_thread.run_sync(open, os.fspath(event["file"]), "rb")
            if owned
            else event["fh"]
        )
        try:
            if offset:  # an fh without offset is read from where the app left it
                await anyio.to_thread.run_sync(f.seek, int(offset))
            while remaining is None or remaining > 0:
                size = _READ_SIZE if remaining is None else min(_READ_SIZE, remaining)
                data = await anyio.to_thread.run_sync(f.read, size)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                await send(
                    {"type": "http.response.body", "body": encoder.chunk(data), "more": True}
                )
        finally:
            if owned:
                f.close()
        await send({"type": "http.response.body", "body": encoder.finish(b"")})


def _mark(start: ResponseStart, coding: str, length: int | None) -> None:
    headers = start.headers
    headers["content-encoding"] = coding
    headers.pop("accept-ranges")
    if length is None:
        headers.pop("content-length")
    else:
        headers["content-length"] = str(length)
    etag = headers.get("etag")
    if etag is not None and not etag.startswith("W/"):
        headers["etag"] = "W/" + etag


class GZip(Compress):
    """``GZip(app, minimum_size=500, compresslevel=6)``: :class:`Compress` with gzip only."""

    def __init__(self, app: App, minimum_size: int = 500, compresslevel: int = 6) -> None:
        if isinstance(compresslevel, bool) or not isinstance(compresslevel, int):
            raise OptionError("GZip", "compresslevel", f"must be an int 0-9, got {compresslevel!r}")
        if compresslevel not in _LEVELS["gzip"]:
            raise OptionError("GZip", "compresslevel", f"must be 0-9, got {compresslevel}")
        super().__init__(app, minimum_size, ("gzip",), levels={"gzip": compresslevel})
        self.compresslevel = compresslevel
