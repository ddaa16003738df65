"""WebSockets over HTTP/2 streams (RFC 8441), with a raw ``h2`` client and ``wsproto`` framing.

The session on a stream is the one HTTP/1.1 upgrades use, so these tests
check what the stream changes: the advertised setting, the Extended CONNECT
handshake and its refusals, DATA as the byte stream with its flow control,
END_STREAM and RST_STREAM as the ends, and that one WebSocket ending never
ends its connection (R-WSH2-*).
"""

from __future__ import annotations

from typing import Any

import anyio
import h2.errors
import h2.events
import h2.settings
import pytest
from h2_client import H2Client, h2_connections, request_headers
from server_helpers import hello
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

pytestmark = pytest.mark.anyio


def connect_headers(
    path: bytes = b"/ws", extra: tuple[tuple[bytes, bytes], ...] = ()
) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"example.test"),
        (b"sec-websocket-version", b"13"),
        *extra,
    ]


class WSOverH2:
    """One WebSocket on one stream of an :class:`H2Client`."""

    def __init__(self, client: H2Client, sid: int, extensions: list[Any] | None = None) -> None:
        self.client = client
        self.sid = sid
        self.ws = Connection(ConnectionType.CLIENT, extensions=extensions or [])
        self.events: list[Any] = []
        self._parts: list[Any] = []
        self._seen = 0

    async def send(self, event: Any, end: bool = False) -> None:
        """Frame ``event`` and send it as DATA, as the stream's window allows."""
        conn = self.client.conn
        data = self.ws.send(event)
        with anyio.fail_after(10):
            while True:
                room = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
                if room <= 0 and data:
                    await self.client.receive_once()  # WINDOW_UPDATE comes as the server reads
                    continue
                chunk, data = data[:room], data[room:]
                conn.send_data(self.sid, chunk, end_stream=end and not data)
                await self.client.flush()
                if not data:
                    return

    def _collect(self) -> None:
        for event in self.client.seen[self._seen :]:
            if isinstance(event, h2.events.DataReceived) and event.stream_id == self.sid:
                if self.ws.state is ConnectionState.CLOSED:
                    # After the closing handshake only the stream's end may follow (an
                    # empty DATA with END_STREAM), possibly in the same read as the Close.
                    assert not event.data, f"WebSocket bytes after the Close: {event.data!r}"
                    continue
                self.ws.receive_data(event.data)
                for ws_event in self.ws.events():
                    if isinstance(ws_event, Message):
                        # wsproto hands a message over in pieces as bytes arrive.
                        self._parts.append(ws_event.data)
                        if not ws_event.message_finished:
                            continue
                        joined: Any = (
                            "".join(self._parts)
                            if isinstance(ws_event, TextMessage)
                            else b"".join(self._parts)
                        )
                        self._parts = []
                        ws_event = type(ws_event)(data=joined)
                    self.events.append(ws_event)
        self._seen = len(self.client.seen)

    async def until(self, kind: type, timeout: float = 5.0) -> Any:
        with anyio.fail_after(timeout):
            while True:
                self._collect()
                for event in self.events:
                    if isinstance(event, kind):
                        self.events.remove(event)
                        return event
                await self.client.receive_once()
                if self.client.closed:
                    raise AssertionError("connection closed")


async def open_client(running: Any) -> H2Client:
    client = H2Client(await running.connect(), validate=False)
    await client.start()
    return client


async def echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        await hello(scope, receive, send)
        return
    event = await receive()
    assert event["type"] == "websocket.connect"
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") == "version?":
            await send({"type": "websocket.send", "text": scope["http_version"]})
        elif event.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
        elif "text" in event:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


async def test_settings_offer_extended_connect(serve: Any) -> None:
    """R-WSH2-1, R-WSH2-2: SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised (and can be off)."""
    for enabled in (True, False):
        async with serve(echo, h2_websocket=enabled) as running:
            client = await open_client(running)
            seen = await client.until(
                lambda s: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in s)
            )
            changed = next(e for e in seen if isinstance(e, h2.events.RemoteSettingsChanged))
            setting = changed.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
            assert (setting.new_value if setting else 0) == int(enabled)


async def test_echo_subprotocol_and_scope_over_a_stream(serve: Any) -> None:
    """R-WSH2-1..4: same scope (http_version "2"), 200 with the subprotocol, frames in DATA."""
    scopes: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(dict(scope))
        await echo(scope, receive, send)

    async with serve(app) as running:
        client = await open_client(running)
        sid = await client.request(
            connect_headers(extra=((b"sec-websocket-protocol", b"chat, superchat"),)), end=False
        )
        await client.until(lambda s: sid in client.statuses())
        assert client.statuses()[sid] == b"200"
        response = next(e for e in client.seen if isinstance(e, h2.events.ResponseReceived))
        assert (b"sec-websocket-protocol", b"chat") in response.headers
        assert not any(name == b"sec-websocket-accept" for name, _ in response.headers)
        ws = WSOverH2(client, sid)
        await ws.send(TextMessage("héllo"))
        assert (await ws.until(TextMessage)).data == "héllo"
        await ws.send(BytesMessage(b"\x00\x01" * 40000))  # larger than a frame and the window
        assert (await ws.until(BytesMessage)).data == b"\x00\x01" * 40000
        await ws.send(TextMessage("version?"))
        assert (await ws.until(TextMessage)).data == "2"
        await ws.send(Ping(b"p"))
        assert (await ws.until(Pong)).payload == b"p"
        await client.stream.aclose()
    scope = scopes[0]
    assert scope["type"] == "websocket" and scope["http_version"] == "2"
    assert scope["path"] == "/ws" and scope["scheme"] == "ws"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert "method" not in scope and "pagi.transport" in scope


async def test_close_ends_only_the_stream(serve: Any) -> None:
    """R-WSH2-5: a clean Close reports its code; the stream is freed, the connection lives on."""
    disconnects: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            disconnects.append(await receive())
            return
        await hello(scope, receive, send)

    async with serve(app) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        ws = WSOverH2(client, sid)
        await ws.send(CloseConnection(code=1000, reason="done"))
        reply = await ws.until(CloseConnection)
        assert reply.code == 1000
        await client.until(lambda s: sid in client.ended())
        # Late DATA on the finished stream never tears the connection down.
        client.conn.send_data(sid, b"\x81\x00", end_stream=True)
        await client.flush()
        get = await client.request(request_headers(b"/after"))
        await client.until(lambda s: get in client.ended())
        assert client.statuses()[get] == b"200"
        assert client.goaway() is None and not client.closed
        assert h2_connections(running)[0].streams == {}
    assert disconnects == [{"type": "websocket.disconnect", "code": 1000, "reason": "done"}]


async def test_server_close_code_and_end_stream(serve: Any) -> None:
    async with serve(echo) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        ws = WSOverH2(client, sid)
        await ws.send(TextMessage("close"))
        closing = await ws.until(CloseConnection)
        assert (closing.code, closing.reason) == (4000, "bye")
        await ws.send(closing.response(), end=True)
        await client.until(lambda s: sid in client.ended())
        assert sid not in client.resets()


async def test_stream_reset_is_a_drop_1006(serve: Any) -> None:
    """R-WSH2-5 / R-WS-32: RST_STREAM is a connection drop: the app sees 1006."""
    seen: list[dict[str, Any]] = []
    done = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await hello(scope, receive, send)
            return
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())
        done.set()

    async with serve(app) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        client.conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        with anyio.fail_after(5):
            await done.wait()
        get = await client.request(request_headers())
        await client.until(lambda s: get in client.ended())
        assert client.statuses()[get] == b"200"
    assert seen[0]["type"] == "websocket.disconnect" and seen[0]["code"] == 1006


async def test_denial_response_over_a_stream(serve: Any) -> None:
    """R-WSDENY-7: a denial is a response on the Extended CONNECT stream."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who are you"})

    async with serve(app) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.ended())
        assert client.statuses()[sid] == b"401"
        body = b"".join(
            e.data
            for e in client.seen
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert body == b"who are you"


async def test_app_that_never_accepts_gets_403(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async with serve(app) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.ended())
        assert client.statuses()[sid] == b"403"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            [(n, v) for n, v in connect_headers() if n != b"sec-websocket-version"]
            + [(b"sec-websocket-version", b"8")],
            b"426",
        ),
        (
            [(n, v) if n != b":protocol" else (n, b"webtransport") for n, v in connect_headers()],
            b"501",
        ),
    ],
    ids=["bad-version", "other-protocol"],
)
async def test_refused_handshakes(
    serve: Any, headers: list[tuple[bytes, bytes]], expected: bytes
) -> None:
    async with serve(echo) as running:
        client = await open_client(running)
        sid = await client.request(headers, end=False)
        await client.until(lambda s: sid in client.statuses())
        assert client.statuses()[sid] == expected
        get = await client.request(request_headers())
        await client.until(lambda s: get in client.ended())


async def test_extended_connect_when_turned_off_gets_501(serve: Any) -> None:
    """R-WSH2-6: without RFC 8441 no websocket scope is made over HTTP/2."""
    async with serve(echo, h2_websocket=False) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        assert client.statuses()[sid] == b"501"


async def test_permessage_deflate_over_a_stream(serve: Any) -> None:
    async with serve(echo) as running:
        client = await open_client(running)
        offer = b"permessage-deflate; client_max_window_bits"
        sid = await client.request(
            connect_headers(extra=((b"sec-websocket-extensions", offer),)), end=False
        )
        await client.until(lambda s: sid in client.statuses())
        response = next(e for e in client.seen if isinstance(e, h2.events.ResponseReceived))
        reply = dict(response.headers).get(b"sec-websocket-extensions", b"")
        assert reply.startswith(b"permessage-deflate")
        deflate = PerMessageDeflate(client_max_window_bits=15)
        deflate.finalize(reply.decode())
        ws = WSOverH2(client, sid, extensions=[deflate])
        text = "compress me " * 2000
        await ws.send(TextMessage(text))
        assert (await ws.until(TextMessage)).data == text
        wire = sum(
            len(e.data)
            for e in client.seen
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert wire < len(text) // 10  # it really was compressed both ways
        await client.stream.aclose()


async def test_session_that_stops_reading_stops_the_client_by_window(serve: Any) -> None:
    """Backpressure: unread messages hold the stream window, not server memory."""
    release = anyio.Event()
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await hello(scope, receive, send)
            return
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            received.append(len(event["bytes"]))

    async with serve(app, max_receive_queue_bytes=256 * 1024) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        ws = WSOverH2(client, sid)
        message = BytesMessage(b"x" * 60000)
        sent = 0
        with anyio.move_on_after(1):
            while sent < 100:
                await ws.send(message)
                sent += 1
        assert sent < 100  # the server stopped granting window
        carrier = h2_connections(running)[0].streams[sid]
        assert carrier.unacked <= 2 * 1024 * 1024
        release.set()
        with anyio.fail_after(10):
            while len(received) < sent:
                await client.receive_once()
        assert received == [60000] * sent
        await client.stream.aclose()


async def test_drain_closes_websockets_on_streams_with_1001(serve: Any) -> None:
    async with serve(echo, ws_close_timeout=0.5) as running:
        client = await open_client(running)
        sid = await client.request(connect_headers(), end=False)
        await client.until(lambda s: sid in client.statuses())
        ws = WSOverH2(client, sid)
        running.server.request_shutdown()
        closing = await ws.until(CloseConnection)
        assert closing.code == 1001
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        # h2's client sends nothing after a GOAWAY, so our Close cannot answer:
        # the server ends the stream itself once ws_close_timeout has passed.
        await client.until(lambda s: sid in client.ended() or sid in client.resets())


async def test_websockets_and_requests_share_one_connection(serve: Any) -> None:
    async with serve(echo) as running:
        client = await open_client(running)
        sockets = []
        for _ in range(3):
            sid = await client.request(connect_headers(), end=False)
            sockets.append(WSOverH2(client, sid))
        gets = [await client.request(request_headers(b"/%d" % i)) for i in range(3)]
        await client.until(lambda s: all(g in client.ended() for g in gets))
        for i, ws in enumerate(sockets):
            await ws.send(TextMessage(f"n{i}"))
        for i, ws in enumerate(sockets):
            assert (await ws.until(TextMessage)).data == f"n{i}"
        await client.stream.aclose()
