"""Read-only views of a connection scope: :class:`HTTPConnection` and :class:`Request`.

A view never owns the scope; it reads it. Several views may be built on the
same scope (middleware, then the handler) and agree, because what must be
read only once (the body) is cached *in the scope* under ``pagi.request.*``
keys, not in the view. WebSocket and SSE helpers share the accessors of
:class:`HTTPConnection`.

Disconnect checks use ``scope["pagi.connection"]`` (R-CONN-6): asking
whether the client left never consumes an event from ``receive``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from pagi.spec import ConnectionState, Receive, Scope, Transport
from pagi.tools.cookies import parse_cookie_header
from pagi.tools.datastructures import URL, Address, FormData, QueryParams
from pagi.tools.exceptions import (
    BodyConsumedError,
    BodyTooLarge,
    ClientDisconnected,
    FormError,
    MalformedBody,
)
from pagi.tools.forms import FormLimits, parse_form
from pagi.tools.headers import Headers
from pagi.tools.multipart_stream import MultipartReader
from pagi.tools.negotiation import best_match, quality

if TYPE_CHECKING:
    from pagi.tools.middleware.session import SessionData

__all__ = ["DEFAULT_MAX_BODY_SIZE", "BodyStream", "HTTPConnection", "Request"]

#: Default cap for :meth:`Request.body` and friends: 10 MiB.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024

_BODY = "pagi.request.body"
_STREAMED = "pagi.request.streamed"
_FORM = "pagi.request.form"


async def _no_receive() -> Mapping[str, Any]:
    raise RuntimeError("this view was built without receive(); pass it to read the body")


class HTTPConnection:
    """What every HTTP-family scope has: URL, headers, query, cookies, client, state.

    Also the connection state (``pagi.connection``) and flow control
    (``pagi.transport``), each degrading gracefully when the server does
    not provide it (R-FLOW-3).
    """

    def __init__(self, scope: Scope, receive: Receive | None = None) -> None:
        self.scope = scope
        self._receive: Receive = receive or _no_receive
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def type(self) -> str:
        """``http``, ``websocket`` or ``sse``."""
        return str(self.scope["type"])

    @property
    def path(self) -> str:
        """The decoded path, relative to ``root_path``."""
        return str(self.scope.get("path", "/"))

    @property
    def raw_path(self) -> bytes:
        """The path as the client sent it (percent-encoded)."""
        raw = self.scope.get("raw_path")
        return bytes(raw) if raw is not None else self.path.encode("utf-8")

    @property
    def root_path(self) -> str:
        """Where this app is mounted (``""`` at the top)."""
        return str(self.scope.get("root_path", ""))

    @property
    def query_string(self) -> bytes:
        """The raw query string, still percent-encoded."""
        return bytes(self.scope.get("query_string") or b"")

    @property
    def url(self) -> URL:
        """The full URL the client asked for."""
        return URL.from_scope(self.scope)

    @property
    def headers(self) -> Headers:
        """The request headers: case-insensitive, multi-valued, in order."""
        if self._headers is None:
            self._headers = Headers.from_scope(self.scope)
        return self._headers

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, or ``default``."""
        return self.headers.get(name, default)

    @property
    def query_params(self) -> QueryParams:
        """Decoded query parameters (multi-valued)."""
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def path_params(self) -> dict[str, Any]:
        """Values the router captured from the path, already converted."""
        return dict(self.scope.get("path_params") or {})

    def path_param(self, name: str) -> Any:
        """One path parameter; ``KeyError`` listing the available names if missing."""
        params = self.scope.get("path_params") or {}
        try:
            return params[name]
        except KeyError:
            raise KeyError(f"no path parameter {name!r}; available: {sorted(params)}") from None

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies from the ``Cookie`` header."""
        if self._cookies is None:
            # Servers merge Cookie headers into one (R-CK-1); join in case one did not.
            self._cookies = parse_cookie_header("; ".join(self.headers.getlist("cookie")))
        return self._cookies

    @property
    def client(self) -> Address | None:
        """The peer's ``(host, port)``, if the server knows it."""
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def server(self) -> Address | None:
        """The local ``(host, port)`` (or ``(socket path, None)``)."""
        server = self.scope.get("server")
        return Address(server[0], server[1]) if server else None

    @property
    def state(self) -> dict[str, Any]:
        """Lifespan state shared by the worker's requests (``scope["state"]``).

        Values are shared; top-level keys set here stay in this request
        (R-LIFE-33). Per-request data belongs in :attr:`stash`.
        """
        state = self.scope.get("state")
        if state is None:
            state = self.scope["state"] = {}
        return state  # type: ignore[no-any-return]

    @property
    def stash(self) -> dict[str, Any]:
        """A per-request scratch dict shared by every layer (``scope["pagi.stash"]``)."""
        stash = self.scope.get("pagi.stash")
        if stash is None:
            stash = self.scope["pagi.stash"] = {}
        return stash  # type: ignore[no-any-return]

    @property
    def session(self) -> SessionData:
        """The client's session (``scope["pagi.session"]``), set by the ``Session`` middleware.

        Read-only on websocket and sse scopes. ``RuntimeError`` when no
        ``Session`` middleware wraps this app.
        """
        session = self.scope.get("pagi.session")
        if session is None:
            raise RuntimeError(
                "request.session needs the Session middleware: "
                "wrap the app in pagi.tools.middleware.Session(app, secret_key=...)"
            )
        return cast("SessionData", session)

    @property
    def auth(self) -> dict[str, Any] | None:
        """``scope["pagi.auth"]`` (``type``, ``user``, ``scopes``...), or ``None``."""
        return self.scope.get("pagi.auth")

    @property
    def user(self) -> Any:
        """Who the ``BasicAuth``/``BearerAuth`` middleware authenticated, else ``None``.

        For bearer tokens this is the ``sub`` claim unless the validator
        returned a user; the full claims are in ``request.auth["claims"]``.
        """
        auth = self.scope.get("pagi.auth")
        return auth.get("user") if auth else None

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of the named route, prefixed with the router's ``root_path``."""
        router = self.scope.get("pagi.router")
        if router is None:
            raise RuntimeError("url_for needs a Router above this handler")
        root = str(self.scope.get("pagi.router.root_path", ""))
        return root + str(router.url_path_for(name, **params))

    @property
    def connection(self) -> ConnectionState | None:
        """``scope["pagi.connection"]`` (http scopes only), or ``None``."""
        return self.scope.get("pagi.connection")

    @property
    def disconnected(self) -> bool:
        """True once the client is gone (synchronous). Never consumes an event.

        On http scopes it reads ``pagi.connection``; without it (a server
        that lacks it) this is ``False``. The WebSocket and SSE helpers
        answer from the disconnect events they have seen.
        """
        conn = self.connection
        return conn is not None and not conn.is_connected()

    async def is_disconnected(self) -> bool:
        """``await request.is_disconnected()``: :attr:`disconnected`, awaitable."""
        return self.disconnected

    @property
    def disconnect_reason(self) -> str | None:
        """Why the connection ended abnormally (``client_closed``...), else ``None``."""
        conn = self.connection
        return conn.disconnect_reason() if conn is not None else None

    @property
    def transport(self) -> Transport | None:
        """``scope["pagi.transport"]``, or ``None`` when the server cannot measure."""
        return self.scope.get("pagi.transport")

    def buffered_amount(self) -> int:
        """Bytes sent but not yet written to the socket (0 when unknown)."""
        transport = self.transport
        return transport.buffered_amount() if transport is not None else 0

    def is_writable(self) -> bool:
        """False while the outbound buffer is at or above its high-water mark."""
        transport = self.transport
        if transport is None:
            return True
        mark = transport.high_water_mark()
        return mark is None or transport.buffered_amount() < mark

    def accepts(self, media_type: str) -> bool:
        """True if ``Accept`` allows ``media_type`` (shortcuts like ``"json"`` work)."""
        return quality(self.headers.get("accept"), media_type) > 0

    def best_match(self, offered: Sequence[str]) -> str | None:
        """The entry of ``offered`` the client prefers, or ``None``."""
        return best_match(offered, self.headers.get("accept"))


class BodyStream:
    """:meth:`Request.stream`: the request body as an async iterator of chunks.

    A plain object rather than an async generator, so a reader that stops
    early (a form parser at a limit, a handler that has seen enough) leaves
    nothing to be finalised later outside its task. Nothing is received
    until the first chunk is asked for.
    """

    __slots__ = ("_done", "_limit", "_received", "_request", "_started")

    def __init__(self, request: Request, limit: int | None) -> None:
        self._request = request
        self._limit = limit
        self._received = 0
        self._started = False
        self._done = False

    def __aiter__(self) -> BodyStream:
        """The stream itself (it can be iterated once)."""
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            if not self._started:
                self._started = True
                cached = self._begin()
                if cached is not None:
                    self._done = True
                    return cached
            return await self._next_chunk()
        except BaseException:
            self._done = True  # an error ends the iteration, as it would a generator
            raise

    def _begin(self) -> bytes | None:
        """The buffered body to replay, or ``None`` after checking the body may be streamed."""
        request, limit = self._request, self._limit
        scope = request.scope
        if scope.get(_BODY) is not None:
            # Already buffered: replay it, so middleware that read the body
            # first does not starve a streaming handler.
            return bytes(scope[_BODY])
        if scope.get(_STREAMED):
            raise BodyConsumedError("the request body was already streamed")
        scope[_STREAMED] = True
        declared = request.content_length
        if limit is not None and declared is not None and declared > limit:
            raise BodyTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
        return None

    async def _next_chunk(self) -> bytes:
        request, limit = self._request, self._limit
        kind = "sse.request" if request.scope.get("type") == "sse" else "http.request"
        while True:
            event = await request._receive()
            if event["type"] != kind:
                raise ClientDisconnected(f"client disconnected after {self._received} body bytes")
            chunk = bytes(event.get("body") or b"")
            self._received += len(chunk)
            if limit is not None and self._received > limit:
                raise BodyTooLarge(f"request body exceeds the {limit}-byte limit")
            if not event.get("more"):
                self._done = True
            if chunk:
                return chunk
            if self._done:
                raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop iterating (nothing to release; accepted so ``contextlib.aclosing`` works)."""
        self._done = True


class Request(HTTPConnection):
    """An ``http`` request: method, body, JSON, forms and uploads.

    The body arrives once. :meth:`body` reads and caches it (so
    :meth:`text`, :meth:`json` and :meth:`form` can follow); :meth:`stream`
    hands out chunks without keeping them, after which the buffered helpers
    raise :class:`BodyConsumedError`. Both enforce ``max_body_size``
    (:class:`BodyTooLarge`, a 413).
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive | None = None,
        *,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        super().__init__(scope, receive)
        self.max_body_size = max_body_size

    @property
    def method(self) -> str:
        """The upper-case request method."""
        return str(self.scope.get("method", "GET"))

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-case, without parameters."""
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of ``Content-Type``, if any."""
        for param in (self.headers.get("content-type") or "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None

    @property
    def content_length(self) -> int | None:
        """``Content-Length`` as an int, or ``None`` when absent or invalid."""
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.strip().isdigit() else None

    @property
    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer <token>``, else ``None``."""
        scheme, _, token = (self.headers.get("authorization") or "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` from ``Authorization: Basic``; the password may contain ``:``."""
        scheme, _, data = (self.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(data.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    def stream(self, max_size: int | None = -1) -> BodyStream:
        """The body in chunks as they arrive; raises ``BodyTooLarge`` past ``max_size``.

        ``async for chunk in request.stream():``. ``max_size=-1`` means this
        request's ``max_body_size``; ``None`` means no cap (the server's own
        limit still applies). Raises :class:`ClientDisconnected` if the
        client leaves mid-body.
        """
        limit = self.max_body_size if max_size == -1 else max_size
        return BodyStream(self, limit)

    async def body(self, max_size: int | None = -1) -> bytes:
        """The whole body, read once and cached in the scope."""
        cached = self.scope.get(_BODY)
        if cached is not None:
            return bytes(cached)
        if self.scope.get(_STREAMED):
            raise BodyConsumedError("the request body was already consumed by stream()")
        chunks = [chunk async for chunk in self.stream(max_size)]
        body = self.scope[_BODY] = b"".join(chunks)
        return body

    async def text(self, encoding: str | None = None, errors: str = "replace") -> str:
        """The body decoded with ``encoding`` (default: the request charset, else UTF-8).

        Undecodable bytes become U+FFFD unless ``errors="strict"``, which
        raises :class:`MalformedBody` (400).
        """
        data = await self.body()
        try:
            return data.decode(encoding or self.charset or "utf-8", errors)
        except (UnicodeDecodeError, LookupError) as exc:
            raise MalformedBody(f"request body is not valid text: {exc}") from None

    async def json(self) -> Any:
        """The body parsed as JSON; :class:`MalformedBody` (400) when it is not."""
        data = await self.body()
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBody(f"request body is not valid JSON: {exc}") from None

    def multipart(self, limits: FormLimits | None = None) -> MultipartReader:
        """The parts of a ``multipart/form-data`` body, pulled one chunk at a time.

        ``async for part in request.multipart(): await part.save(path)``; see
        :mod:`pagi.tools.multipart_stream`. The body is read as the parts are,
        so memory stays flat whatever the upload size; the limits are those
        of :meth:`form`. Raises :class:`FormError` for another content type.
        """
        if self.content_type != "multipart/form-data":
            raise FormError(f"expected multipart/form-data, got {self.content_type!r}")
        content_type = self.headers.get("content-type") or ""
        return MultipartReader(content_type, self.stream(None), limits)

    async def form(self, limits: FormLimits | None = None) -> FormData:
        """Parse an urlencoded or multipart body; cached in the scope.

        Multipart uploads are spooled to temporary files; see
        :class:`~pagi.tools.forms.FormLimits` for the caps. Any other
        content type yields an empty :class:`FormData`. Call :meth:`close`
        (the router does) to delete temporary files.
        """
        cached = self.scope.get(_FORM)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        content_type = self.headers.get("content-type") or ""
        if self.content_type == "multipart/form-data":
            form = await parse_form(content_type, self.stream(None), limits or FormLimits())
        elif self.content_type == "application/x-www-form-urlencoded":
            text = (await self.body()).decode("latin-1")
            form = FormData(QueryParams(text).multi_items())
        else:
            form = FormData()
        self.scope[_FORM] = form
        return form

    async def close(self) -> None:
        """Release what the request holds (temporary upload files)."""
        form = self.scope.get(_FORM)
        if form is not None:
            await form.close()
