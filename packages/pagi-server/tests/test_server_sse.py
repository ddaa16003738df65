"""SSE scopes end to end: httpx streaming and raw sockets for the exact bytes.

Requirement ids: R-SSE-1, R-SSE-5/6, R-SSE-10..12, R-SSE-20..23, R-SSE-30..35,
R-SSE-40..43, R-SSE-50..57, R-SSE-60..65, R-CONN-17, R-FLOW-1.
"""

from __future__ import annotations

import io
import re
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import read_until_close

from pagi.spec import EventError, EventOrderError

pytestmark = pytest.mark.anyio

SSE_ACCEPT = {"accept": "text/event-stream"}


class RawSSE:
    """Reads a chunked ``text/event-stream`` response off a raw socket, chunk by chunk."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.head = b""
        self.ended = False

    @classmethod
    async def open(
        cls,
        running: Any,
        path: str = "/",
        *,
        method: str = "GET",
        body: bytes = b"",
        extra: bytes = b"",
    ) -> RawSSE:
        stream = await running.connect()
        request = (
            f"{method} {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n".encode()
            + extra
            + (b"content-length: %d\r\n" % len(body) if body else b"")
            + b"\r\n"
            + body
        )
        await stream.send(request)
        sse = cls(stream)
        with anyio.fail_after(5):
            while b"\r\n\r\n" not in sse.buf:
                sse.buf += await stream.receive()
        sse.head, _, sse.buf = sse.buf.partition(b"\r\n\r\n")
        return sse

    async def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            self.buf += await self.stream.receive()

    async def chunk(self, timeout: float = 5.0) -> bytes:
        """The next chunk's data; ``b""`` for the terminating chunk."""
        with anyio.fail_after(timeout):
            while b"\r\n" not in self.buf:
                self.buf += await self.stream.receive()
            line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(line, 16)
            await self._fill(size + 2)
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            assert self.buf[:0] == b""
        if size == 0:
            self.ended = True
        return data

    async def until_end(self, timeout: float = 5.0) -> bytes:
        parts = []
        while True:
            data = await self.chunk(timeout)
            if not data:
                return b"".join(parts)
            parts.append(data)

    async def eof(self, timeout: float = 5.0) -> bytes:
        rest = self.buf
        with anyio.fail_after(timeout):
            while True:
                try:
                    rest += await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    await self.stream.aclose()
                    return rest


def header(head: bytes, name: bytes) -> list[bytes]:
    return [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.split(b":", 1)[0].strip().lower() == name
    ]


async def test_scope_request_and_server_headers(serve: Any) -> None:
    """R-SSE-5/6, R-SSE-10, R-SSE-21/22, R-CONN-17, R-FLOW-1."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["first"] = await receive()
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "hello"})

    async with serve(app) as running:
        sse = await RawSSE.open(running, "/feed?room=1")
        body = await sse.until_end()
        await sse.eof()
    scope = seen["scope"]
    assert scope["type"] == "sse" and scope["method"] == "GET"
    assert scope["path"] == "/feed" and scope["query_string"] == b"room=1"
    assert "pagi.connection" not in scope and "pagi.transport" in scope
    assert "fullflush" not in scope["extensions"]
    assert seen["first"] == {"type": "sse.request", "body": b"", "more": False}
    assert sse.head.startswith(b"HTTP/1.1 200 ")
    assert header(sse.head, b"content-type") == [b"text/event-stream"]
    assert header(sse.head, b"cache-control") == [b"no-cache"]
    assert header(sse.head, b"connection") == [b"keep-alive"]
    assert header(sse.head, b"transfer-encoding") == [b"chunked"]
    assert header(sse.head, b"date")
    assert body == b"data: hello\n\n"


async def test_request_body_arrives_as_sse_request(serve: Any) -> None:
    """R-SSE-2 (any method), R-SSE-10."""
    bodies: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["method"] == "POST"
        while True:
            event = await receive()
            assert event["type"] == "sse.request"
            bodies.append(event["body"])
            if not event["more"]:
                break
        await send(
            {
                "type": "sse.start",
                "status": 201,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"5"),
                    (b"x-custom", b"1"),
                ],
            }
        )
        await send({"type": "sse.send", "data": b"".join(bodies).decode()})

    async with serve(app) as running:
        sse = await RawSSE.open(running, method="POST", body=b"subscribe me")
        body = await sse.until_end()
        await sse.eof()
    assert b"".join(bodies) == b"subscribe me"
    assert sse.head.startswith(b"HTTP/1.1 201 ")
    assert header(sse.head, b"content-type") == [b"text/event-stream; charset=utf-8"]
    assert header(sse.head, b"cache-control") == [b"no-store"]
    assert header(sse.head, b"content-length") == []
    assert header(sse.head, b"x-custom") == [b"1"]
    assert body == b"data: subscribe me\n\n"


async def test_send_wire_format(serve: Any) -> None:
    """R-SSE-30..35: field lines, one data line per line of data, every newline form."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        await send(
            {"type": "sse.send", "data": "a\r\nb\rc\nd", "event": "up", "id": "7", "retry": 3000}
        )
        await send({"type": "sse.send", "data": ""})
        await send({"type": "sse.send", "data": " spaced\n", "id": ""})
        await send({"type": "sse.send", "data": "héllo ✓"})

    async with serve(app) as running:
        sse = await RawSSE.open(running)
        body = await sse.until_end()
        await sse.eof()
    assert body == (
        b"event: up\nid: 7\nretry: 3000\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        b"data: \n\n"
        b"id: \ndata:  spaced\ndata: \n\n" + "data: héllo ✓\n\n".encode()
    )


async def test_send_validation(serve: Any) -> None:
    """R-SSE-20, R-SSE-31/32/35: bad events raise and send nothing."""
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with pytest.raises(EventOrderError, match=r"before sse\.start"):
            await send({"type": "sse.send", "data": "early"})
        await send({"type": "sse.start"})
        for bad in (
            {"type": "sse.send", "data": "x", "event": "a\nb"},
            {"type": "sse.send", "data": "x", "id": "1\r"},
            {"type": "sse.send", "data": "x", "retry": -1},
            {"type": "sse.send"},
            {"type": "sse.send", "data": b"bytes"},
            {"type": "sse.send", "data": "\ud800"},
            {"type": "http.response.start", "status": 200},
        ):
            try:
                await send(bad)
            except EventError as exc:
                errors.append(exc)
        await send({"type": "sse.send", "data": "fine"})

    async with serve(app) as running:
        sse = await RawSSE.open(running)
        body = await sse.until_end()
        await sse.eof()
    assert len(errors) == 7
    assert body == b"data: fine\n\n"


async def test_comments_are_prefixed_on_every_line(serve: Any) -> None:
    """R-SSE-40/41: a newline in a comment cannot start an event."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        await send({"type": "sse.comment", "comment": ":keepalive"})
        await send({"type": "sse.comment", "comment": "note\ndata: injected\r\n:ok"})
        await send({"type": "sse.comment", "comment": ""})

    async with serve(app) as running:
        sse = await RawSSE.open(running)
        body = await sse.until_end()
        await sse.eof()
    assert body == b":keepalive\n\n:note\n:data: injected\n:ok\n\n:\n\n"


async def test_keepalive_comments_last_setting_wins_and_zero_stops(serve: Any) -> None:
    """R-SSE-42/43."""
    phase = anyio.Event()
    done = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        await send({"type": "sse.keepalive", "interval": 10})
        await send({"type": "sse.keepalive", "interval": 0.05, "comment": "ping"})
        await phase.wait()
        await send({"type": "sse.keepalive", "interval": 0.05})
        await anyio.sleep(0.12)
        await send({"type": "sse.keepalive", "interval": 0})
        await send({"type": "sse.send", "data": "stopped"})
        await done.wait()

    async with serve(app) as running:
        sse = await RawSSE.open(running)
        assert await sse.chunk(timeout=1) == b":ping\n\n"
        assert await sse.chunk(timeout=1) == b":ping\n\n"
        phase.set()
        chunks = []
        while True:
            data = await sse.chunk(timeout=1)
            if data == b"data: stopped\n\n":
                break
            chunks.append(data)
        assert b":\n\n" in chunks
        with pytest.raises(TimeoutError):
            await sse.chunk(timeout=0.2)
        done.set()
        assert await sse.until_end() == b""
        await sse.eof()


async def test_close_ends_the_stream_at_once(serve: Any) -> None:
    """R-SSE-51..55: terminator before the app returns, repeats ignored, later sends raise."""
    results: dict[str, Any] = {}
    finish = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "sse.request"
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "last"})
        await send({"type": "sse.close", "reason": "done-for-now"})
        await send({"type": "sse.close"})
        for event in (
            {"type": "sse.send", "data": "x"},
            {"type": "sse.comment", "comment": "x"},
            {"type": "sse.keepalive", "interval": 1},
            {"type": "sse.http.response.start", "status": 404},
        ):
            try:
                await send(event)
            except EventOrderError:
                results.setdefault("raised", 0)
                results["raised"] += 1
        with anyio.fail_after(1):
            results["receive"] = await receive()
        await finish.wait()

    async with serve(app) as running:
        sse = await RawSSE.open(running)
        assert await sse.until_end() == b"data: last\n\n"
        finish.set()
        assert await sse.eof() == b""
    assert results["raised"] == 4
    assert results["receive"] == {"type": "sse.disconnect", "reason": "done-for-now"}


@pytest.mark.parametrize("status", [204, 404])
async def test_decline_sends_a_plain_response_and_closes(serve: Any, status: int) -> None:
    """R-SSE-60..64: first send wins; the decline is buffered and sent with a length."""
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "sse.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"999")],
            }
        )
        try:
            await send({"type": "sse.start"})
        except EventOrderError as exc:
            raised.append(exc)
        body = b"" if status == 204 else b"no such "
        await send({"type": "sse.http.response.body", "body": body, "more": True})
        await send({"type": "sse.http.response.body", "body": b"" if status == 204 else b"feed"})
        try:
            await send({"type": "sse.send", "data": "x"})
        except EventOrderError as exc:
            raised.append(exc)
        with anyio.fail_after(1):
            assert (await receive())["type"] == "sse.request"
            assert (await receive())["type"] == "sse.disconnect"

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n")
        response = await read_until_close(stream)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert header(head, b"connection") == [b"close"]
    assert header(head, b"transfer-encoding") == []
    if status == 404:
        assert header(head, b"content-length") == [b"12"]
        assert body == b"no such feed"
    else:
        assert body == b""
    assert len(raised) == 2


async def test_decline_after_start_raises(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        with pytest.raises(EventOrderError, match="first send wins"):
            await send({"type": "sse.http.response.start", "status": 404})

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url, headers=SSE_ACCEPT)
    assert response.status_code == 200


async def test_client_disconnect_reaches_the_app(serve: Any) -> None:
    """R-SSE-11/12: sse.disconnect client_closed; later sends are no-ops."""
    events: list[dict[str, Any]] = []
    finished = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        events.append(await receive())
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "one"})
        events.append(await receive())
        await send({"type": "sse.send", "data": "into the void"})
        await send({"type": "sse.close"})
        finished.set()

    async with serve(app) as running:
        # A raw socket: leaving httpx's line iterator half-way leaves its inner async
        # generators to the garbage collector (an unraisable-exception warning on trio).
        async with await running.connect() as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n")
            seen = b""
            with anyio.fail_after(5):
                while b"data: one\n" not in seen:
                    seen += await stream.receive()
        with anyio.fail_after(5):
            await finished.wait()
    assert events[1] == {"type": "sse.disconnect", "reason": "client_closed"}


@pytest.mark.parametrize("how", ["return", "raise"])
async def test_backstop_without_start_is_500(serve: Any, how: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if how == "raise":
            raise RuntimeError("boom")

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url, headers=SSE_ACCEPT)
    assert response.status_code == 500


async def test_returning_after_start_ends_the_stream(serve: Any) -> None:
    """R-SSE-50: same bytes as sse.close."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "bye", "event": "end"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url, headers=SSE_ACCEPT)
    assert response.text == "event: end\ndata: bye\n\n"


async def test_idle_timeout_ends_the_stream(serve: Any) -> None:
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "sse.start"})
        await send({"type": "sse.keepalive", "interval": 0.05})  # keepalives are not activity
        await send({"type": "sse.send", "data": "only"})
        events.append(await receive())
        await send({"type": "sse.send", "data": "too late"})

    async with serve(app, sse_idle_timeout=0.3) as running:
        sse = await RawSSE.open(running)
        start = anyio.current_time()
        body = await sse.until_end(timeout=3)
        assert anyio.current_time() - start >= 0.25
        await sse.eof()
    assert body.startswith(b"data: only\n\n") and b"too late" not in body
    assert events == [{"type": "sse.disconnect", "reason": "idle_timeout"}]


async def test_graceful_drain_sends_server_shutdown(serve: Any) -> None:
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "live"})
        events.append(await receive())
        await send({"type": "sse.send", "data": "ignored"})

    async with serve(app, shutdown_timeout=5) as running:
        sse = await RawSSE.open(running)
        assert await sse.chunk() == b"data: live\n\n"
        running.server.request_shutdown()
        assert await sse.until_end() == b""
        await sse.eof()
    assert events == [{"type": "sse.disconnect", "reason": "server_shutdown"}]


async def test_access_log_line_at_close(serve: Any) -> None:
    buffer = io.StringIO()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        await send({"type": "sse.send", "data": "x" * 50})

    async with serve(app, access_log=buffer, access_log_format="%m %U %s %B") as running:
        async with httpx.AsyncClient() as client:
            await client.get(running.url + "/events", headers=SSE_ACCEPT)
        with anyio.fail_after(5):
            while not buffer.getvalue():
                await anyio.sleep(0.02)
    assert re.fullmatch(r"GET /events 200 (\d+)\n", buffer.getvalue())
    assert int(buffer.getvalue().split()[-1]) >= 58


async def test_plain_accept_is_an_http_scope(serve: Any) -> None:
    """R-SSE-1/3: only Accept decides; wildcards do not count."""
    types: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        types.append(scope["type"])
        if scope["type"] == "sse":
            await send({"type": "sse.start"})
            return
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        await client.get(running.url + "/events", headers={"accept": "*/*"})
        await client.get(running.url, headers={"accept": "text/html, text/event-stream;q=0.5"})
    assert types == ["http", "sse"]
