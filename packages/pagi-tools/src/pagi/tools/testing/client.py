"""The in-process test client: drive any PAGI app without sockets.

:class:`AsyncTestClient` is the real client; :class:`~pagi.tools.testing.TestClient`
wraps it for synchronous tests through an anyio blocking portal. Used as
``async with AsyncTestClient(app) as client:``, it runs the app's lifespan
(startup on enter, shutdown on exit) and hands each request a shallow copy
of the lifespan state (R-LIFE-30). Used without ``async with``, requests
work too, with no lifespan.

Every scope carries a :class:`FakeConnection` (``pagi.connection``) and a
:class:`FakeTransport` (``pagi.transport``); every event the app sends is
checked by :class:`pagi.spec.SendMachine`. App exceptions are re-raised by
default (``raise_app_exceptions=False`` turns them into the 500 a server
would send, with the exception on ``response.exception``).
"""

from __future__ import annotations

import json as jsonlib
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode, urlsplit

import anyio
from anyio.abc import TaskGroup

from pagi.spec import CORE_VERSION, EXT_WEBSOCKET_HTTP_RESPONSE, WWW_SPEC_VERSION, App
from pagi.tools.testing.connection import FakeConnection, FakeTransport
from pagi.tools.testing.cookies import CookieJar
from pagi.tools.testing.http import HTTPExchange, StreamingTestResponse
from pagi.tools.testing.lifespan import LifespanDriver
from pagi.tools.testing.response import TestResponse
from pagi.tools.testing.sse import SSESession
from pagi.tools.testing.websocket import WebSocketSession

__all__ = ["AsyncTestClient", "FileField", "HeaderArg"]

#: Headers as a mapping or as ``(name, value)`` pairs (pairs allow repeats).
HeaderArg = Mapping[str, str] | Sequence[tuple[str, str]]
#: A file for ``files=``: ``(filename, content)`` or ``(filename, content, content_type)``.
FileField = tuple[str, bytes] | tuple[str, bytes, str]
_Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


def _pairs(headers: HeaderArg | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def encode_multipart(
    data: Mapping[str, Any] | None, files: Mapping[str, FileField]
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type."""
    boundary = secrets.token_hex(12)
    out = bytearray()
    for name, value in (data or {}).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            out += f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += str(item).encode() + b"\r\n"
    for name, spec in files.items():
        filename, content = spec[0], spec[1]
        kind = spec[2] if len(spec) > 2 else "application/octet-stream"  # type: ignore[misc]
        out += (
            f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\ncontent-type: {kind}\r\n\r\n'
        ).encode()
        out += bytes(content) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _scheme(kind: str, secure: bool) -> str:
    if kind == "websocket":
        return "wss" if secure else "ws"
    return "https" if secure else "http"


class AsyncTestClient:
    """Send requests, open WebSockets and SSE streams against ``app``, in memory."""

    __test__ = False

    def __init__(
        self,
        app: App,
        *,
        base_url: str = "http://testserver",
        headers: HeaderArg | None = None,
        raise_app_exceptions: bool = True,
        lifespan: Literal["auto", "on", "off"] = "auto",
        timeout: float = 5.0,
        close_timeout: float = 1.0,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        websocket_denial: bool = True,
    ) -> None:
        self.app = app
        self.base_url = urlsplit(base_url)
        self.headers = _pairs(headers)
        self.raise_app_exceptions = raise_app_exceptions
        self.lifespan_mode = lifespan
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.root_path = root_path
        self.client_address = client
        self.websocket_denial = websocket_denial
        self.cookies = CookieJar()
        self._lifespan: LifespanDriver | None = None
        self._stack: AsyncExitStack | None = None
        self._group: TaskGroup

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state (empty until the client is entered)."""
        return self._lifespan.state if self._lifespan is not None else {}

    async def __aenter__(self) -> AsyncTestClient:
        # Exceptions are caught inside the task group and re-raised outside it,
        # so callers see LifespanFailed itself, not an exception group.
        stack = AsyncExitStack()
        await stack.__aenter__()
        error: Exception | None = None
        try:
            self._group = await stack.enter_async_context(anyio.create_task_group())
            if self.lifespan_mode != "off":
                driver = LifespanDriver(self.app, self.lifespan_mode, self.timeout)
                self._lifespan = driver
                await driver.startup(self._group)
        except Exception as exc:
            error = exc
        if error is not None:
            if self._lifespan is not None:
                self._lifespan.dispose()
            self._lifespan = None
            self._group.cancel_scope.cancel()
            await stack.__aexit__(None, None, None)
            raise error
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        error: Exception | None = None
        if self._lifespan is not None:
            try:
                await self._lifespan.shutdown()
            except Exception as failure:
                error = failure
            self._lifespan.dispose()
            self._lifespan = None
        if stack is not None:
            self._group.cancel_scope.cancel()
            await stack.__aexit__(None, None, None)
        if error is not None and exc is None:
            raise error

    # -- scopes --------------------------------------------------------------

    def _scope(
        self,
        kind: str,
        method: str,
        url: str,
        params: _Params | None,
        headers: HeaderArg | None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        scheme = parts.scheme or self.base_url.scheme
        host = parts.netloc or self.base_url.netloc
        raw_path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
        path = unquote(raw_path)
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :] or "/"
        query = parts.query
        if params:
            items = list(params.items()) if isinstance(params, Mapping) else list(params)
            flat = [(k, x) for k, v in items for x in (v if isinstance(v, (list, tuple)) else [v])]
            query = "&".join(filter(None, [query, urlencode(flat)]))
        secure = scheme in ("https", "wss")
        names: dict[str, str] = {"host": host, "user-agent": "pagi-testclient"}
        if kind == "http":
            names["accept"] = "*/*"
        elif kind == "sse":
            names["accept"] = "text/event-stream"
        merged = [(k.lower(), v) for k, v in names.items()]
        for layer in (self.headers, list(extra_headers), _pairs(headers)):
            # Each layer replaces the names it sets; repeats within a layer are kept.
            layer_names = {name.lower() for name, _ in layer}
            merged = [(k, v) for k, v in merged if k not in layer_names]
            merged.extend((name.lower(), value) for name, value in layer)
        if not any(k == "cookie" for k, _ in merged):
            cookie = self.cookies.header_for(path, secure)
            if cookie:
                merged.append(("cookie", cookie))
        scope: dict[str, Any] = {
            "type": kind,
            "pagi": {"version": CORE_VERSION, "spec_version": WWW_SPEC_VERSION},
            "http_version": "1.1",
            "scheme": _scheme(kind, secure),
            "path": path,
            "raw_path": raw_path.encode("ascii"),
            "query_string": query.encode("latin-1"),
            "root_path": self.root_path,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged],
            "client": self.client_address,
            "server": (
                self.base_url.hostname or "testserver",
                self.base_url.port or (443 if secure else 80),
            ),
            "extensions": {},
            "pagi.transport": FakeTransport(),
        }
        if kind != "websocket":
            scope["method"] = method.upper()
        if kind == "http":
            scope["pagi.connection"] = FakeConnection()
        if self._lifespan is not None and self._lifespan.supported:
            scope["state"] = dict(self._lifespan.state)
        return scope

    def _body(
        self,
        content: bytes | str | None,
        json: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, FileField] | None,
    ) -> tuple[bytes, list[tuple[str, str]]]:
        if files is not None:
            body, kind = encode_multipart(data, files)
            return body, [("content-type", kind), ("content-length", str(len(body)))]
        if data is not None:
            body = urlencode(list(data.items()), doseq=True).encode()
            return body, [
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", str(len(body))),
            ]
        if json is not None:
            body = jsonlib.dumps(json).encode()
            return body, [("content-type", "application/json"), ("content-length", str(len(body)))]
        if content is not None:
            body = content.encode() if isinstance(content, str) else bytes(content)
            return body, [("content-length", str(len(body)))]
        return b"", []

    def _exchange(
        self,
        method: str,
        url: str,
        params: _Params | None,
        headers: HeaderArg | None,
        content: bytes | str | None,
        json: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, FileField] | None,
        chunk_size: int | None,
    ) -> HTTPExchange:
        body, body_headers = self._body(content, json, data, files)
        scope = self._scope("http", method, url, params, headers, body_headers)
        size = chunk_size or max(len(body), 1)
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        return HTTPExchange(self.app, scope, chunks, self.timeout)

    def _finish(self, exchange: HTTPExchange, content: bytes) -> TestResponse:
        if exchange.exception is not None and self.raise_app_exceptions:
            raise exchange.exception
        response = exchange.response(content)
        self.cookies.update_from(response.headers.getlist("set-cookie"), exchange.scope["path"])
        return response

    # -- HTTP ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: _Params | None = None,
        headers: HeaderArg | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, FileField] | None = None,
        chunk_size: int | None = None,
        disconnect_after: float | None = None,
    ) -> TestResponse:
        """Run one request to the end and return the response.

        ``chunk_size`` splits the body into several ``http.request`` events;
        ``disconnect_after`` simulates the client leaving after that many
        seconds. ``TimeoutError`` if the app takes longer than ``timeout``.
        """
        exchange = self._exchange(
            method, url, params, headers, content, json, data, files, chunk_size
        )
        try:
            with anyio.fail_after(self.timeout):
                async with anyio.create_task_group() as group:
                    if disconnect_after is not None:
                        group.start_soon(exchange.disconnect_after, disconnect_after)
                    await exchange.run_app()
                    group.cancel_scope.cancel()
            content = exchange.drain()
        except TimeoutError:
            raise TimeoutError(
                f"{method} {url}: the app did not finish within {self.timeout}s "
                "(an endless response? use client.stream())"
            ) from None
        finally:
            exchange.dispose()  # also on a timeout: no body stream is left open
        return self._finish(exchange, content)

    async def get(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("GET", ...)``."""
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("HEAD", ...)``."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("OPTIONS", ...)``."""
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("POST", ...)``."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PUT", ...)``."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PATCH", ...)``."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("DELETE", ...)``."""
        return await self.request("DELETE", url, **kwargs)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: _Params | None = None,
        headers: HeaderArg | None = None,
        content: bytes | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, FileField] | None = None,
        chunk_size: int | None = None,
    ) -> AsyncIterator[StreamingTestResponse]:
        """Start a request and read its body as it comes.

        Leaving the block before the response ends disconnects the client
        (``client_closed``); an app that ignores that is cancelled after
        ``close_timeout`` seconds.
        """
        exchange = self._exchange(
            method, url, params, headers, content, json, data, files, chunk_size
        )
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(exchange.run_app)
            try:
                with anyio.fail_after(self.timeout):
                    await exchange.started.wait()
                if exchange.status is None:
                    self._finish(exchange, b"")  # raises the app's error
                yield StreamingTestResponse(exchange)
            except Exception as exc:  # re-raised below, not inside an exception group
                error = exc
            finally:
                if not exchange.app_done.is_set():
                    exchange.disconnect()
                    with anyio.move_on_after(self.close_timeout):
                        await exchange.app_done.wait()
                group.cancel_scope.cancel()
        exchange.dispose()
        if error is not None:
            raise error
        if exchange.exception is not None and self.raise_app_exceptions:
            raise exchange.exception

    # -- WebSocket and SSE -----------------------------------------------------

    @asynccontextmanager
    async def websocket(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        params: _Params | None = None,
        headers: HeaderArg | None = None,
    ) -> AsyncIterator[WebSocketSession]:
        """Open a WebSocket; raises :class:`WebSocketDenied` if the app refuses it."""
        extra = [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        if subprotocols:
            extra.append(("sec-websocket-protocol", ", ".join(subprotocols)))
        scope = self._scope("websocket", "GET", url, params, headers, extra)
        scope["subprotocols"] = list(subprotocols)
        if self.websocket_denial:
            scope["extensions"][EXT_WEBSOCKET_HTTP_RESPONSE] = {}
        session = WebSocketSession(self.app, scope, self.timeout, self.close_timeout)
        async with self._run_session(session):
            yield session

    @asynccontextmanager
    async def sse(
        self,
        url: str,
        *,
        method: str = "GET",
        params: _Params | None = None,
        headers: HeaderArg | None = None,
        last_event_id: str | None = None,
        content: bytes | str | None = None,
        json: Any = None,
    ) -> AsyncIterator[SSESession]:
        """Open an SSE stream; raises :class:`SSEDeclined` if the app answers with HTTP."""
        body, body_headers = self._body(content, json, None, None)
        if last_event_id is not None:
            body_headers.append(("last-event-id", last_event_id))
        scope = self._scope("sse", method, url, params, headers, body_headers)
        session = SSESession(self.app, scope, body, self.timeout, self.close_timeout)
        async with self._run_session(session):
            yield session

    @asynccontextmanager
    async def _run_session(self, session: WebSocketSession | SSESession) -> AsyncIterator[None]:
        """Run ``session``'s app around the block; close, dispose, then re-raise errors."""
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            try:
                await session.start(group)
                yield
            except Exception as exc:  # re-raised below, not inside an exception group
                error = exc
            finally:
                if not session.app_finished:
                    await session.close()
                group.cancel_scope.cancel()
        session.dispose()
        if error is not None:
            raise error
        if session.exception is not None and self.raise_app_exceptions:
            raise session.exception
