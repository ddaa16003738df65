"""One HTTP request run in memory: the app's receive/send and the client's view.

Theory of operation
-------------------
:class:`HTTPExchange` plays the server for one ``http`` scope. ``receive``
hands out the request body as ``http.request`` events, then blocks until
the response is complete or the client is gone and answers
``http.disconnect`` (R-HTTP-13, R-HTTP-14). ``send`` runs every event
through :class:`pagi.spec.SendMachine` first, so a malformed or misordered
event raises inside the app exactly as a strict server would; then it
updates the :class:`FakeConnection` (started, complete) and feeds body
bytes to an in-memory stream the client reads. After a disconnect, sends
are silently dropped (R-CORE-53).

The app runs inside :meth:`HTTPExchange.run_app`, which catches its
exception and records it, so task groups never wrap it in an exception
group; the client re-raises it (or turns it into the 500 a server would
send). ``file`` and ``fh`` bodies are read with their ``offset``/``length``
(an ``fh`` with no ``offset`` is read from where it stands, with one, even 0,
from there: decision A-45).

The body rules are the server's (``pagi.server.streams.http``), checked by
the shared conformance table in ``test_tools_conformance_shared.py``: a HEAD
answer, 204 and 304 carry no body (the bytes are dropped); a body longer than
the declared ``content-length`` makes ``send`` raise an ``EventError`` naming
``body`` and changes nothing; a final body short of it is recorded as an
:class:`AppProtocolError` (a server closes the connection: a truncated
response).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from pagi.spec import App, DisconnectReason, EventError, SendMachine
from pagi.tools.headers import Headers
from pagi.tools.testing.connection import FakeConnection
from pagi.tools.testing.response import TestResponse

__all__ = ["AppProtocolError", "HTTPExchange", "StreamingTestResponse"]


class AppProtocolError(RuntimeError):
    """The app broke the protocol in a way no event check can see (e.g. no response)."""


class HTTPExchange:
    """The in-memory server side of one ``http`` request."""

    def __init__(self, app: App, scope: dict[str, Any], body: list[bytes], timeout: float) -> None:
        self.app = app
        self.scope = scope
        self.timeout = timeout
        self.connection: FakeConnection = scope["pagi.connection"]
        self.machine = SendMachine("http", scope.get("extensions"))
        self._pending = list(body) if body else [b""]
        self._finished = anyio.Event()  # response complete or client gone
        self.started = anyio.Event()  # response started or app ended
        self.app_done = anyio.Event()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.events: list[Mapping[str, Any]] = []
        self.exception: BaseException | None = None
        self._body_in, self.body_out = anyio.create_memory_object_stream[bytes](math.inf)
        self._body_closed = False
        self._head = scope.get("method") == "HEAD"
        self._bodiless = self._head
        self._length_left: int | None = None  # declared body bytes not yet sent

    async def receive(self) -> Mapping[str, Any]:
        """The app's ``receive``: the body, then ``http.disconnect`` when it is over."""
        if self._pending and self.connection.is_connected():
            chunk = self._pending.pop(0)
            return {"type": "http.request", "body": chunk, "more": bool(self._pending)}
        await self._finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, event: Mapping[str, Any]) -> None:
        """The app's ``send``: checked by the spec's machine, then recorded."""
        before = self.machine.state
        act = self.machine.send(event)
        if not act or not self.connection.is_connected():
            return
        kind = event["type"]
        if kind == "http.response.start":
            headers = [(bytes(n), bytes(v)) for n, v in event.get("headers") or ()]
            try:
                declared = _declared_length(headers)
            except EventError:
                self.machine.state = before
                raise
            self.events.append(dict(event))
            self.status = int(event["status"])
            self.headers = headers
            # HEAD, 204 and 304 announce a length without sending the body (RFC 9110).
            self._bodiless = self._head or self.status in (204, 304)
            self._length_left = None if self._bodiless else declared
            self.connection.mark_started()
            self.started.set()
        elif kind == "http.response.body":
            data = await _body_bytes(event)
            left = self._length_left
            if left is not None:
                if len(data) > left:
                    # As the server: refused before anything is sent, the app may correct itself.
                    self.machine.state = before
                    raise EventError(
                        "http.response.body",
                        "body",
                        f"is {len(data) - left} bytes longer than the content-length",
                    )
                left = self._length_left = left - len(data)
                if self.machine.finished and left and self.exception is None:
                    # A server closes the connection: the client sees a truncated body.
                    self.exception = AppProtocolError(
                        f"the response body ended {left} bytes short of its content-length"
                    )
            self.events.append(dict(event))
            if data and not self._bodiless and not self._body_closed:
                self._body_in.send_nowait(data)
        elif kind == "http.response.trailers":
            self.events.append(dict(event))
            self.trailers = [(bytes(n), bytes(v)) for n, v in event.get("headers") or ()]
        else:
            self.events.append(dict(event))
        if self.machine.finished:
            self.connection.mark_complete()
            self._close_body()
            self._finished.set()

    def _close_body(self) -> None:
        if not self._body_closed:
            self._body_closed = True
            self._body_in.close()

    def disconnect(self, reason: str = DisconnectReason.CLIENT_CLOSED) -> None:
        """Simulate the client going away (R-CONN-40 order, then ``http.disconnect``)."""
        self.connection.mark_disconnected(reason, enqueue=self._finished.set)
        self._close_body()

    async def disconnect_after(self, seconds: float) -> None:
        """Disconnect the client after ``seconds``."""
        await anyio.sleep(seconds)
        self.disconnect()

    async def run_app(self) -> None:
        """Run the app to its end, recording (not raising) its exception."""
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception as exc:
            self.exception = exc
        finally:
            if (
                self.exception is None
                and self.connection.is_connected()
                and not self.machine.finished
            ):
                if self.status is None:
                    self.exception = AppProtocolError(
                        "the app returned without sending http.response.start "
                        "(did it forget to await send, or return a response instead of sending it?)"
                    )
                else:
                    self.exception = AppProtocolError(
                        "the app returned in the middle of its response "
                        "(no final body with more=False)"
                    )
            if self.exception is not None:
                # R-HERR-14: an app error ends the request abnormally.
                self.connection.mark_disconnected(DisconnectReason.SERVER_ERROR, self._finished.set)
            self._close_body()
            self.started.set()
            self.app_done.set()

    def dispose(self) -> None:
        """Close the in-memory body stream (the exchange is over)."""
        self._close_body()
        self.body_out.close()

    def drain(self) -> bytes:
        """Whatever body bytes are buffered right now."""
        chunks = []
        while True:
            try:
                chunks.append(self.body_out.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return b"".join(chunks)

    def response(self, content: bytes) -> TestResponse:
        """The :class:`TestResponse` for what was sent (a 500 if nothing was)."""
        if self.status is None:
            return TestResponse(
                500,
                Headers({"content-type": "text/plain; charset=utf-8"}),
                b"Internal Server Error",
                events=self.events,
                exception=self.exception,
                connection=self.connection,
            )
        return TestResponse(
            self.status,
            Headers(raw=self.headers),
            content,
            events=self.events,
            exception=self.exception,
            connection=self.connection,
            trailers=Headers(raw=self.trailers) if self.trailers is not None else None,
        )


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The response's content-length, checked as the server checks it; ``None`` if absent."""
    length: int | None = None
    for name, value in headers:
        if name.lower() != b"content-length":
            continue
        if not value.isdigit() or len(value) > 18:
            raise EventError(
                "http.response.start", "headers", f"content-length {value!r} is not a valid length"
            )
        if length is not None and int(value) != length:
            raise EventError("http.response.start", "headers", "content-length is given twice")
        length = int(value)
    return length


async def _body_bytes(event: Mapping[str, Any]) -> bytes:
    given = event.get("offset")
    offset = int(given or 0)
    length = event.get("length")
    if event.get("file") is not None:
        path = os.fspath(event["file"])

        def read_file() -> bytes:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(int(length))

        return await anyio.to_thread.run_sync(read_file)
    if event.get("fh") is not None:
        fh = event["fh"]

        def read_fh() -> bytes:
            if given is not None:  # absolute, even 0; absent: where it stands
                fh.seek(offset)
            return bytes(fh.read() if length is None else fh.read(int(length)))

        return await anyio.to_thread.run_sync(read_fh)
    return bytes(event.get("body") or b"")


class BodyChunks:
    """The async iterator behind :meth:`StreamingTestResponse.aiter_bytes`.

    A plain object rather than an async generator, so a test may stop
    reading whenever it likes (``break``, one ``__anext__``) and leave
    nothing for the garbage collector to finalise outside its task.
    """

    __slots__ = ("_exchange",)

    def __init__(self, exchange: HTTPExchange) -> None:
        self._exchange = exchange

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            with anyio.fail_after(self._exchange.timeout):
                return await self._exchange.body_out.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Nothing to release (accepted so ``contextlib.aclosing`` works)."""


class StreamingTestResponse:
    """A response whose body is read as it arrives; see ``client.stream()``."""

    __test__ = False

    def __init__(self, exchange: HTTPExchange) -> None:
        self._exchange = exchange
        self.status_code = exchange.status or 500
        self.headers = Headers(raw=exchange.headers)
        self.connection = exchange.connection

    def aiter_bytes(self) -> BodyChunks:
        """Body chunks as the app sends them; ``TimeoutError`` if one takes too long."""
        return BodyChunks(self._exchange)

    async def read(self) -> bytes:
        """The rest of the body (waits for the end of the response)."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    def disconnect(self, reason: str = DisconnectReason.CLIENT_CLOSED) -> None:
        """Simulate the client going away mid-response."""
        self._exchange.disconnect(reason)
