"""Responses: detached values that are also PAGI apps.

A response holds a status, headers and a body source and nothing about any
connection. ``await response(scope, receive, send)`` emits it; the same
value can be sent on many connections, returned from a handler, or mounted
as an app. Emission looks at the scope type, so one 404 value works
everywhere:

* ``http``: ``http.response.start`` + ``http.response.body`` (empty for HEAD);
* ``sse``: a decline, ``sse.http.response.start`` + ``.body`` (R-SSE-61);
* ``websocket``: a denial through ``websocket.http.response.*`` when the
  server advertises the extension, else ``websocket.close`` before accept,
  which the server answers with a bare 403 (R-WSDENY-2, R-WS-12).

Headers are checked when they are set (:class:`~pagi.tools.headers.MutableHeaders`),
so a stray CR/LF fails at the line that put it there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import anyio
import anyio.to_thread

from pagi.spec import EXT_WEBSOCKET_HTTP_RESPONSE, Receive, Scope, Send
from pagi.tools.background import BackgroundTask, run_after_response
from pagi.tools.cookies import SameSite, format_set_cookie
from pagi.tools.headers import HeaderInput, MutableHeaders

__all__ = [
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]

_NO_BODY_STATUSES = frozenset({204, 304})


class Response:
    """A buffered response: ``content`` (``bytes`` or ``str``), status, headers.

    ``media_type`` defaults to the class's; a ``text/*`` type gets
    ``; charset=utf-8`` appended unless it names a charset. ``Content-Length``
    is computed (never for 204/304).
    """

    media_type: ClassVar[str | None] = None
    charset: ClassVar[str] = "utf-8"
    #: Run after the response went out (see :mod:`pagi.tools.background`).
    background: BackgroundTask | None = None

    def __init__(
        self,
        content: Any = None,
        status: int = 200,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
        *,
        background: BackgroundTask | None = None,
    ) -> None:
        if background is not None:
            self.background = background
        if not 100 <= int(status) <= 599:
            raise ValueError(f"status must be 100-599, got {status}")
        self.status = int(status)
        self.headers = MutableHeaders(headers)
        self.body = self.render(content)
        kind = media_type if media_type is not None else type(self).media_type
        if kind is not None and "content-type" not in self.headers:
            if kind.startswith("text/") and "charset=" not in kind.lower():
                kind = f"{kind}; charset={self.charset}"
            self.headers["content-type"] = kind
        if self.status not in _NO_BODY_STATUSES:
            self.headers["content-length"] = str(len(self.body))

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into body bytes; subclasses override for other inputs."""
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} content must be bytes or str, got {type(content).__name__}"
        )

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Append a ``Set-Cookie`` header (see :func:`~pagi.tools.cookies.format_set_cookie`)."""
        self.headers.append(
            "set-cookie",
            format_set_cookie(
                key,
                value,
                max_age=max_age,
                expires=expires,
                path=path,
                domain=domain,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
                partitioned=partitioned,
            ),
        )

    def delete_cookie(
        self,
        key: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Tell the client to drop cookie ``key`` (same path and domain as when set)."""
        self.set_cookie(
            key,
            "",
            max_age=0,
            expires=datetime(1970, 1, 1),
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self.send_http(scope, send)
            if self.background is not None:
                await run_after_response(scope, self.background)
        elif kind == "sse":
            await self._send_prefixed("sse.http.response", send)
        elif kind == "websocket":
            if EXT_WEBSOCKET_HTTP_RESPONSE in (scope.get("extensions") or {}):
                await self._send_prefixed("websocket.http.response", send)
            else:
                await send({"type": "websocket.close", "code": 1000, "reason": ""})
        else:
            raise TypeError(f"a Response cannot answer a {kind!r} scope")

    async def send_http(self, scope: Scope, send: Send) -> None:
        """Emit on an ``http`` scope; HEAD gets the headers and no body."""
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.headers.raw}
        )
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})

    async def _send_prefixed(self, prefix: str, send: Send) -> None:
        start = {"type": f"{prefix}.start", "status": self.status, "headers": self.headers.raw}
        await send(start)
        await send({"type": f"{prefix}.body", "body": self.body})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"


class PlainTextResponse(Response):
    """``text/plain; charset=utf-8``."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """``text/html; charset=utf-8``."""

    media_type = "text/html"


class JSONResponse(Response):
    """Compact UTF-8 JSON, ``application/json`` (JSON has no charset parameter).

    NaN and infinities are refused (they are not JSON); ``ensure_ascii`` is
    off, so text travels as UTF-8 rather than ``\\u`` escapes.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


class RedirectResponse(Response):
    """A redirect to ``url`` with an empty body; 307 by default.

    307 keeps the method and body on the second request, which is what a
    redirect in front of a POST form usually needs; pass 303 to turn the
    follow-up into a GET, or 301/308 for permanent moves. Non-ASCII in
    ``url`` is percent-encoded.
    """

    def __init__(self, url: str, status: int = 307, headers: HeaderInput | None = None) -> None:
        if not 300 <= status <= 399:
            raise ValueError(f"a redirect status is 3xx, got {status}")
        super().__init__(b"", status, headers)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;~")


Content = AsyncIterable[str | bytes] | Iterable[str | bytes]


class StreamingResponse(Response):
    """A response whose body comes from an async (or plain) iterator of chunks.

    ``str`` chunks are encoded as UTF-8. No ``Content-Length`` is set unless
    given, so the server chunks the body. A plain iterator runs in a worker
    thread (it may block); an async one runs on the loop. If the client
    disconnects, iteration stops: a watcher waits on ``receive`` for
    ``http.disconnect`` and cancels the producer, so an endless generator
    does not outlive its client. Only ``http`` scopes can be streamed.
    """

    def __init__(
        self,
        content: Content,
        status: int = 200,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
        *,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(None, status, headers, media_type, background=background)
        del self.headers["content-length"]
        self.content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            raise TypeError("a StreamingResponse can only answer an http scope")
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.headers.raw}
        )
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = self._chunks()
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more": True})
                await send({"type": "http.response.body", "body": b""})
            except Exception as exc:  # re-raised below, outside the task group's grouping
                error = exc
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await chunks.aclose()
        if error is not None:
            raise error
        if self.background is not None:
            await run_after_response(scope, self.background)

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        content = self.content
        if isinstance(content, AsyncIterable):
            async for item in content:
                yield item.encode("utf-8") if isinstance(item, str) else bytes(item)
            return
        iterator: Iterator[str | bytes] = iter(content)
        while True:
            # The iterator may block (file reads, a database cursor): step it in a thread.
            step = await anyio.to_thread.run_sync(_next_or_none, iterator)
            if step is None:
                return
            yield step.encode("utf-8") if isinstance(step, str) else bytes(step)


def _next_or_none(iterator: Iterator[str | bytes]) -> str | bytes | None:
    return next(iterator, None)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        event = await receive()
        if event.get("type") == "http.disconnect":
            scope.cancel()
            return
