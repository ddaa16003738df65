"""WebSocket proxying for :class:`pagi.tools.proxy.Proxy`: a small wsproto client.

Theory of operation
-------------------
After the client's ``websocket.connect``, :func:`proxy_websocket` opens a
TCP connection to the upstream (TLS for ``https`` upstreams) and writes
the opening handshake with wsproto, offering the client's subprotocols
and forwarding its end-to-end headers (cookies, ``Origin``,
authorization) plus the ``Forwarded`` set. No extension is offered
upstream: the server compresses on the client's side if they agree.

* The upstream's 101 becomes ``websocket.accept`` with its subprotocol.
* A refusal becomes a denial response (``websocket.http.response.*``)
  when the server offers that extension, otherwise ``websocket.close``,
  which the server answers with 403. A connection that fails is denied
  with 502, an upstream that does not answer within the timeout with 504.
* Then two tasks copy messages: the client's ``websocket.receive`` events
  become frames, the upstream's (fragments joined) become
  ``websocket.send``. Pings are answered here. A Close from either side is
  passed to the other with its code and reason (1005, "no code", goes out
  as a Close without one; 1006, a dropped connection, as 1001), and the
  other side's answer ends the session.

One lock serialises writes to the upstream socket: the reader answers
pings and closes while the writer sends messages.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from pagi.spec import EXT_WEBSOCKET_HTTP_RESPONSE, Receive, Scope, Send

if TYPE_CHECKING:
    from pagi.tools.proxy import Proxy

__all__ = ["proxy_websocket"]

log = logging.getLogger("pagi.tools.proxy")

#: How long a Close we passed on may wait for the other side's answer.
CLOSE_WAIT = 2.0
#: Close codes that are reported but never sent in a frame (RFC 6455 section 7.4.1).
_REPORT_ONLY = {1005: None, 1006: 1001, 1015: 1001}


def _import_wsproto() -> Any:
    try:
        import wsproto
        import wsproto.events
    except ImportError as exc:  # pragma: no cover - the dev environment has it
        from pagi.tools.proxy import _MISSING

        raise ImportError(_MISSING) from exc
    return wsproto


class _Upstream:
    """The upstream side: a socket, a wsproto client connection and a write lock."""

    def __init__(self, stream: anyio.abc.ByteStream, connection: Any) -> None:
        self.stream = stream
        self.ws = connection
        self.lock = anyio.Lock()

    async def send(self, event: Any) -> None:
        async with self.lock:
            await self.stream.send(self.ws.send(event))

    async def events(self) -> AsyncGenerator[Any, None]:
        """wsproto events as bytes arrive; ends at the upstream's end of stream.

        Callers that stop early close it with ``aclosing``: an abandoned
        generator would be finalised later by the garbage collector, outside
        its task (trio reports that as an unraisable error).
        """
        while True:
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.ws.receive_data(None)
                for event in self.ws.events():
                    yield event
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                yield event


async def _connect(proxy: Proxy) -> anyio.abc.ByteStream:
    if proxy._scheme != "https":
        return await anyio.connect_tcp(proxy._host, proxy._port)
    verify = proxy.verify
    if isinstance(verify, ssl.SSLContext):
        context = verify
    else:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return await anyio.connect_tcp(
        proxy._host, proxy._port, ssl_context=context, tls_standard_compatible=False
    )


async def _deny(scope: Scope, send: Send, status: int, headers: Any, body: bytes) -> None:
    if EXT_WEBSOCKET_HTTP_RESPONSE in (scope.get("extensions") or {}):
        start = {"type": "websocket.http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "websocket.http.response.body", "body": body, "more": False})
    else:
        await send({"type": "websocket.close"})  # the server answers 403


def _text_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    from pagi.tools.proxy import _end_to_end

    pairs = [(bytes(n).lower(), bytes(v)) for n, v in headers]
    return [(n, v) for n, v in _end_to_end(pairs) if not n.startswith(b"sec-websocket-")]


async def proxy_websocket(proxy: Proxy, scope: Scope, receive: Receive, send: Send) -> None:
    """Proxy one ``websocket`` scope to ``proxy``'s upstream."""
    wsproto = _import_wsproto()
    events = wsproto.events
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    plain = b"text/plain; charset=utf-8"
    try:
        with anyio.fail_after(proxy.timeout):
            stream = await _connect(proxy)
    except TimeoutError:
        log.warning("websocket %s: upstream connect timed out (504)", scope["path"])
        await _deny(scope, send, 504, [(b"content-type", plain)], b"Gateway Timeout\n")
        return
    except (OSError, ssl.SSLError) as exc:
        log.warning("websocket %s: upstream connect failed (502): %r", scope["path"], exc)
        await _deny(scope, send, 502, [(b"content-type", plain)], b"Bad Gateway\n")
        return
    async with stream:
        upstream = _Upstream(stream, wsproto.WSConnection(wsproto.ConnectionType.CLIENT))
        headers = proxy._request_headers(scope, websocket=True)
        host = next((v for n, v in headers if n == b"host"), proxy._netloc.encode("latin-1"))
        extra = [(n, v) for n, v in headers if n != b"host"]
        request = events.Request(
            host=host.decode("latin-1"),
            target=proxy._target(scope),
            subprotocols=list(scope.get("subprotocols") or []),
            extra_headers=extra,
        )
        try:
            with anyio.fail_after(proxy.timeout):
                await upstream.send(request)
                answer = await _handshake(upstream, events)
        except TimeoutError:
            log.warning("websocket %s: upstream handshake timed out (504)", scope["path"])
            await _deny(scope, send, 504, [(b"content-type", plain)], b"Gateway Timeout\n")
            return
        except (OSError, anyio.BrokenResourceError, wsproto.utilities.ProtocolError) as exc:
            log.warning("websocket %s: upstream handshake failed (502): %r", scope["path"], exc)
            await _deny(scope, send, 502, [(b"content-type", plain)], b"Bad Gateway\n")
            return
        if answer is None:
            await _deny(scope, send, 502, [(b"content-type", plain)], b"Bad Gateway\n")
            return
        if isinstance(answer, tuple):
            status, denial_headers, body = answer
            await _deny(scope, send, status, _text_headers(denial_headers), body)
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if answer.subprotocol:
            accept["subprotocol"] = answer.subprotocol
        accept_headers = _text_headers(answer.extra_headers)
        if accept_headers:
            accept["headers"] = accept_headers
        await send(accept)
        await _pump(upstream, events, receive, send)


async def _handshake(upstream: _Upstream, events: Any) -> Any:
    """The AcceptConnection, ``(status, headers, body)`` for a refusal, or None at EOF."""
    refusal: tuple[int, Any, bytearray] | None = None
    async with aclosing(upstream.events()) as incoming:
        async for event in incoming:
            if isinstance(event, events.AcceptConnection):
                return event
            if isinstance(event, events.RejectConnection):
                refusal = (event.status_code, event.headers, bytearray())
                if not event.has_body:
                    return refusal[0], refusal[1], b""
            elif isinstance(event, events.RejectData) and refusal is not None:
                refusal[2].extend(event.data)
                if event.body_finished:
                    return refusal[0], refusal[1], bytes(refusal[2])
    return None if refusal is None else (refusal[0], refusal[1], bytes(refusal[2]))


async def _pump(upstream: _Upstream, events: Any, receive: Receive, send: Send) -> None:
    async with anyio.create_task_group() as group:

        async def client_to_upstream() -> None:
            while True:
                event = await receive()
                if event["type"] == "websocket.receive":
                    if event.get("text") is not None:
                        await upstream.send(events.TextMessage(data=event["text"]))
                    else:
                        await upstream.send(events.BytesMessage(data=event.get("bytes") or b""))
                    continue
                code = int(event.get("code", 1005))
                wire = _REPORT_ONLY.get(code, code)
                reason = event.get("reason") or "" if wire == code else ""
                if upstream.ws.state.name == "OPEN":
                    try:
                        await upstream.send(
                            events.CloseConnection(code=wire, reason=reason or None)
                        )
                    except (anyio.BrokenResourceError, OSError):
                        pass
                with anyio.move_on_after(CLOSE_WAIT):
                    await closed.wait()
                group.cancel_scope.cancel()
                return

        closed = anyio.Event()
        group.start_soon(client_to_upstream)
        parts: list[Any] = []
        try:
            async with aclosing(upstream.events()) as incoming:
                async for event in incoming:
                    if isinstance(event, (events.TextMessage, events.BytesMessage)):
                        parts.append(event.data)
                        if event.message_finished:
                            key = "text" if isinstance(event, events.TextMessage) else "bytes"
                            data = ("" if key == "text" else b"").join(parts)
                            parts = []
                            await send({"type": "websocket.send", key: data})
                    elif isinstance(event, events.Ping):
                        await upstream.send(event.response())
                    elif isinstance(event, events.CloseConnection):
                        if upstream.ws.state.name == "REMOTE_CLOSING":
                            await upstream.send(event.response())
                            code = event.code if event.code not in _REPORT_ONLY else 1000
                            await send({"type": "websocket.close", "code": code,
                                        "reason": event.reason or ""})  # fmt: skip
                        break
                else:  # the upstream dropped the connection without a Close
                    await send(
                        {"type": "websocket.close", "code": 1011, "reason": "upstream closed"}
                    )
        except (anyio.BrokenResourceError, OSError) as exc:
            log.warning("websocket upstream failed: %r", exc)
            await send({"type": "websocket.close", "code": 1011, "reason": "upstream failed"})
        closed.set()
        # The client now answers our Close; its websocket.disconnect ends the writer.
        with anyio.move_on_after(CLOSE_WAIT):
            await anyio.sleep_forever()
        group.cancel_scope.cancel()
