"""A streaming reverse proxy: ``http``, ``sse`` and ``websocket`` scopes to an upstream.

Theory of operation
-------------------
:class:`Proxy` forwards each request to ``upstream`` (``http://`` or
``https://``, optionally with a path prefix). The path after the app's
``root_path`` and the query string are appended to it.

* **http**: one ``httpx.AsyncClient`` per proxy (HTTP/1.1, and HTTP/2 when
  the upstream offers it over TLS) carries the request. Its body is an
  async generator that pulls ``http.request`` events as httpx writes, and
  the response body is read with ``aiter_raw()`` and sent chunk by chunk,
  so neither body is held whole and both sides keep their backpressure.
  Content codings pass through untouched.
* **sse**: the request goes upstream as it came (a ``GET`` with
  ``Accept: text/event-stream``). A 2xx ``text/event-stream`` answer becomes
  ``sse.start``; the upstream's stream is parsed as it arrives and each
  event is re-emitted as ``sse.send`` (comments as ``sse.comment``) the
  moment its blank line is read. Any other answer is a decline
  (``sse.http.response.*``).
* **websocket**: a small client built on wsproto opens a TCP (or TLS)
  connection to the upstream and offers the client's subprotocols. The
  upstream's accept becomes ``websocket.accept``; its refusal becomes a
  denial response when the server offers ``websocket.http.response``,
  else a close (403). Messages are copied both ways; close codes and
  reasons pass through in both directions.

Headers: hop-by-hop fields (RFC 9110 section 7.6.1, and any field the
``Connection`` header names) are dropped both ways. ``Forwarded`` and
``X-Forwarded-For`` get the client appended; ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` are set. ``Host`` is the upstream's unless
``preserve_host``. ``headers`` are set on every upstream request.

Errors: a connection that cannot be made is answered 502, an upstream
that does not answer within ``timeout`` seconds 504 (a short text body
each). An upstream body that stalls for ``timeout`` after the head was
sent leaves the response incomplete, so the server truncates it. An event
stream has no read timeout once started. A client that leaves cancels the
upstream request, which closes its connection.

httpx (with h2) and wsproto come with the ``proxy`` extra:
``pip install 'pagi-tools[proxy]'``.
"""

from __future__ import annotations

import codecs
import ipaddress
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from pagi.spec import Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

__all__ = ["EventStreamParser", "Proxy", "hop_by_hop_names"]

log = logging.getLogger("pagi.tools.proxy")

#: Hop-by-hop fields (RFC 9110 section 7.6.1, plus the old Proxy-Connection and Keep-Alive).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Handshake fields the WebSocket client writes itself.
_WS_OWN = frozenset(
    {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EVENT_STREAM = b"text/event-stream"
_MISSING = "the proxy needs httpx (with h2) and wsproto: pip install 'pagi-tools[proxy]'"


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        raise ImportError(_MISSING) from exc
    return httpx


def hop_by_hop_names(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The fixed hop-by-hop names plus every name the ``Connection`` fields list."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return HOP_BY_HOP | named


def _end_to_end(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    pairs = [(bytes(name).lower(), bytes(value)) for name, value in headers]
    drop = hop_by_hop_names(pairs)
    return [(name, value) for name, value in pairs if name not in drop]


def _forwarded_node(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host if _TOKEN.fullmatch(host) else '"' + host.replace('"', "") + '"'
    return f'"[{address}]"' if address.version == 6 else str(address)


class EventStreamParser:
    """An incremental ``text/event-stream`` parser (the WHATWG HTML algorithm).

    :meth:`feed` takes bytes as they arrive and returns the PAGI events for
    every block completed so far: ``sse.send`` for an event with ``data``,
    ``sse.comment`` for a comment line. A block without ``data`` is not an
    event (browsers do not fire one either), and an unfinished block at the
    end of the stream is dropped, as browsers drop it.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._first = True
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._fields: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events completed by ``chunk``."""
        text = self._buffer + self._decoder.decode(chunk)
        if self._first and text:
            text = text.removeprefix("\ufeff")
            self._first = False
        lines = re.split(r"\r\n|\r|\n", text)
        self._buffer = lines.pop()
        if text.endswith("\r") and lines:  # the CR may be the first half of a CRLF
            self._buffer = lines.pop() + "\r"
        events: list[dict[str, Any]] = []
        for line in lines:
            self._line(line, events)
        return events

    def _line(self, line: str, events: list[dict[str, Any]]) -> None:
        if not line:
            if self._data:
                events.append({"type": "sse.send", "data": "\n".join(self._data), **self._fields})
            self._reset()
            return
        if line.startswith(":"):
            events.append({"type": "sse.comment", "comment": line[1:]})
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name in ("event", "id") and "\0" not in value:
            self._fields[name] = value
        elif name == "retry" and value.isdigit():
            self._fields["retry"] = int(value)


class _Exchange:
    """One proxied request: the client side's state shared by its tasks."""

    def __init__(self, receive: Receive, request_type: str) -> None:
        self.receive = receive
        self.request_type = request_type
        self.finished = False
        self.client_gone = False
        self.body_done = anyio.Event()
        self.cancel: Callable[[], None] = lambda: None

    def gone(self) -> None:
        if not self.finished:
            self.client_gone = True
            self.cancel()

    async def body(self, first: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """The request body, pulled from ``receive()`` as the upstream takes it."""
        event = first
        while True:
            chunk = bytes(event.get("body") or b"")
            if chunk:
                yield chunk
            if not event.get("more"):
                break
            event = await self.receive()
            if event["type"] != self.request_type:
                self.gone()
                await anyio.sleep_forever()  # cancelled: the upstream never sees an end
        self.body_done.set()

    async def watch(self) -> None:
        """Wait for the body to be read, then for the client to leave."""
        await self.body_done.wait()
        event = await self.receive()  # pending until a disconnect (R-HTTP-14)
        if event["type"] != self.request_type:
            self.gone()


class Proxy:
    """A reverse proxy to ``upstream`` for ``http``, ``sse`` and ``websocket`` scopes.

    ``timeout`` (seconds) bounds connecting and each wait on the upstream;
    ``headers`` are set on every upstream request; ``preserve_host`` sends
    the client's ``Host`` instead of the upstream's. ``verify`` is passed to
    httpx and used for WebSocket TLS: ``True``, ``False`` or an
    ``ssl.SSLContext``. Call :meth:`aclose` (or let lifespan shutdown do it)
    to close the pooled upstream connections.
    """

    def __init__(
        self,
        upstream: str,
        timeout: float = 30.0,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        preserve_host: bool = False,
        *,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http:// or https:// URL, got {upstream!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.upstream = upstream
        self.timeout = timeout
        self.preserve_host = preserve_host
        self.verify = verify
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
        self.headers = [(name.lower().encode("latin-1"), v.encode("latin-1")) for name, v in pairs]
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._netloc = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    # -- plumbing ---------------------------------------------------------------

    def _http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            httpx = _import_httpx()
            self._client = httpx.AsyncClient(
                http2=True,
                verify=self.verify,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the pooled upstream connections."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _target(self, scope: Scope) -> str:
        raw_path = scope.get("raw_path")
        path = bytes(raw_path).decode("latin-1") if raw_path is not None else scope["path"]
        root_path: str = scope.get("root_path") or ""
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        return (self._prefix + path or "/") + ("?" + query if query else "")

    def _request_headers(self, scope: Scope, websocket: bool = False) -> list[tuple[bytes, bytes]]:
        incoming = _end_to_end(scope["headers"])
        host = next((value for name, value in incoming if name == b"host"), b"")
        own = {b"host"} | ({*_WS_OWN} if websocket else set()) | {n for n, _ in self.headers}
        own |= {b"forwarded", b"x-forwarded-proto", b"x-forwarded-host"}
        headers = [(name, value) for name, value in incoming if name not in own]
        if any(name == b"host" for name, _ in self.headers):
            pass  # set by the proxy's own headers
        elif self.preserve_host and host:
            headers.insert(0, (b"host", host))
        elif not websocket:
            headers.insert(0, (b"host", self._netloc.encode("latin-1")))
        scheme = scope.get("scheme") or "http"
        proto = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        client = scope.get("client")
        node = _forwarded_node(str(client[0])) if client else "unknown"
        element = f"for={node};proto={proto}"
        if host:
            element += ";host=" + _forwarded_node(host.decode("latin-1"))
        forwarded = [value for name, value in incoming if name == b"forwarded"]
        headers.append((b"forwarded", b", ".join([*forwarded, element.encode("latin-1")])))
        if client:
            chain = [value for name, value in headers if name == b"x-forwarded-for"]
            headers = [(n, v) for n, v in headers if n != b"x-forwarded-for"]
            address = str(client[0]).encode("latin-1")
            headers.append((b"x-forwarded-for", b", ".join([*chain, address])))
        headers.append((b"x-forwarded-proto", proto.encode("latin-1")))
        if host:
            headers.append((b"x-forwarded-host", host))
        return headers + self.headers

    # -- the app ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send, sse=False)
        elif kind == "sse":
            await self._http(scope, receive, send, sse=True)
        elif kind == "websocket":
            from pagi.tools.proxy_websocket import proxy_websocket

            await proxy_websocket(self, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError(f"the proxy cannot serve a {kind!r} scope")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send, sse: bool) -> None:
        httpx = _import_httpx()
        client = self._http_client()
        exchange = _Exchange(receive, "sse.request" if sse else "http.request")
        prefix = "sse.http." if sse else "http."
        first = await receive()
        if first["type"] != exchange.request_type:
            return  # the client left before we started
        content: Any = None
        if first.get("more"):
            content = exchange.body(first)
        else:
            exchange.body_done.set()
            content = bytes(first.get("body") or b"") or None
        timeout = httpx.Timeout(self.timeout, read=None) if sse else httpx.Timeout(self.timeout)
        # httpx.Request, not build_request: the client's default headers
        # (Accept-Encoding, User-Agent, Connection) must not be added.
        request = httpx.Request(
            scope["method"],
            f"{self._scheme}://{self._netloc}{self._target(scope)}",
            headers=self._request_headers(scope),
            content=content,
            extensions={"timeout": timeout.as_dict()},
        )
        started = False
        async with anyio.create_task_group() as group:
            exchange.cancel = group.cancel_scope.cancel
            connection = scope.get("pagi.connection")
            if connection is not None:
                connection.on_disconnect(lambda _reason: exchange.gone())
            group.start_soon(exchange.watch)
            try:
                with anyio.fail_after(self.timeout):
                    response = await client.send(request, stream=True)
            except (TimeoutError, httpx.TimeoutException) as exc:
                log.warning("%s %s: upstream timed out (504): %r", request.method, request.url, exc)
                await self._answer(exchange, send, prefix, 504, b"Gateway Timeout\n")
            except httpx.TransportError as exc:
                log.warning("%s %s: upstream failed (502): %r", request.method, request.url, exc)
                await self._answer(exchange, send, prefix, 502, b"Bad Gateway\n")
            else:
                try:
                    started = True
                    if sse:
                        await self._relay_events(exchange, response, send)
                    else:
                        await self._relay(exchange, response, send, prefix)
                except httpx.TransportError as exc:
                    # After the head: returning unfinished makes the server truncate it.
                    log.warning("%s %s: upstream body failed: %r", request.method, request.url, exc)
                finally:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
            exchange.finished = True
            group.cancel_scope.cancel()
        if exchange.client_gone:
            log.info("%s %s: the client left%s", request.method, request.url,
                     "; upstream closed" if started else "")  # fmt: skip

    @staticmethod
    async def _answer(
        exchange: _Exchange, send: Send, prefix: str, status: int, body: bytes
    ) -> None:
        exchange.finished = True
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", b"%d" % len(body))]  # fmt: skip
        await send({"type": prefix + "response.start", "status": status, "headers": headers})
        await send({"type": prefix + "response.body", "body": body, "more": False})

    @staticmethod
    async def _relay(exchange: _Exchange, response: Any, send: Send, prefix: str) -> None:
        headers = _end_to_end(response.headers.raw)
        start = {"type": prefix + "response.start", "status": response.status_code}
        await send({**start, "headers": headers})
        async for chunk in response.aiter_raw():
            await send({"type": prefix + "response.body", "body": chunk, "more": True})
        exchange.finished = True
        await send({"type": prefix + "response.body", "body": b"", "more": False})

    async def _relay_events(self, exchange: _Exchange, response: Any, send: Send) -> None:
        content_type = response.headers.get("content-type", "").encode("latin-1")
        if not (200 <= response.status_code < 300 and content_type.split(b";")[0].strip().lower()
                == _EVENT_STREAM):  # fmt: skip
            await self._relay(exchange, response, send, "sse.http.")
            return
        drop = {b"content-length", b"content-encoding"}
        headers = [(n, v) for n, v in _end_to_end(response.headers.raw) if n not in drop]
        await send({"type": "sse.start", "status": response.status_code, "headers": headers})
        parser = EventStreamParser()
        async for chunk in response.aiter_bytes():  # decoded: events are re-encoded
            for event in parser.feed(chunk):
                await send(event)
        exchange.finished = True
        await send({"type": "sse.close"})
