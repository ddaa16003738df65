"""WebSocket scopes end to end: the ``websockets`` client (in a thread) and raw sockets.

Requirement ids: R-WS-1/2, R-WS-10..22, R-WS-30..35, R-WS-40..44, R-WSDENY-1..6,
R-WSP-4, R-CONN-17, R-FLOW-1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import pytest
from server_helpers import until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from ws_client import WS_HEADERS, RawWS, Recorder

from pagi.spec import EventError, EventOrderError

pytestmark = pytest.mark.anyio

T = TypeVar("T")


def ws_connect(running: Any, path: str = "/", **options: Any) -> ClientConnection:
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    return connect(f"ws://{running.host}:{running.port}{path}", **options)


async def in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


async def test_echo_scope_and_first_event(serve: Any) -> None:
    """R-WS-1, R-WS-10, R-WS-13, R-CONN-17, R-WSDENY-1, R-FLOW-1."""
    app = Recorder()
    async with serve(app) as running:

        def client() -> tuple[Any, Any]:
            with ws_connect(running, "/chat/room%201?x=1") as ws:
                ws.send("héllo")
                text = ws.recv(timeout=5)
                ws.send(b"\x00\xff")
                data = ws.recv(timeout=5)
            return text, data

        text, data = await in_thread(client)
        assert (text, data) == ("héllo", b"\x00\xff")
        event = await app.disconnect()
    scope = app.scope
    assert app.events[0] == {"type": "websocket.connect"}
    assert app.events[1] == {"type": "websocket.receive", "text": "héllo"}
    assert app.events[2] == {"type": "websocket.receive", "bytes": b"\x00\xff"}
    assert (event["code"], event["reason"]) == (1000, "")
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws" and scope["http_version"] == "1.1"
    assert scope["path"] == "/chat/room 1" and scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == []
    assert "method" not in scope and "pagi.connection" not in scope
    assert scope["extensions"]["websocket.http.response"] == {}
    assert "pagi.transport" in scope
    names = [name for name, _ in scope["headers"]]
    assert b"sec-websocket-key" in names and b"upgrade" in names and b"host" in names


async def test_subprotocols_split_and_selected(serve: Any) -> None:
    """R-WS-2 (several lines, commas, whitespace) and R-WS-16 (subprotocol, extra headers)."""
    app = Recorder(accept=False)

    async def chooser(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "superchat",
                "headers": [(b"x-extra", b"yes")],
            }
        )
        app.scope = scope
        await send({"type": "websocket.close"})

    async with serve(chooser) as running:
        extra = b"sec-websocket-protocol: chat ,  superchat\r\nsec-websocket-protocol: v2\r\n"
        ws, head = await RawWS.open(running, extra=extra)
        lower = head.lower()
        assert b"\r\nsec-websocket-protocol: superchat" in lower
        assert b"\r\nx-extra: yes" in lower
        assert (await ws.recv_close())[0] == 1000
        await ws.close()
        await ws.expect_eof()
    assert app.scope["subprotocols"] == ["chat", "superchat", "v2"]


async def test_accept_is_validated_before_anything_is_sent(serve: Any) -> None:
    """Byte safety of handshake headers; a subprotocol the client never offered raises."""
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        for bad in (
            {"type": "websocket.accept", "headers": [(b"x-bad", b"a\r\nb: c")]},
            {"type": "websocket.accept", "subprotocol": "nope"},
            {"type": "websocket.accept", "subprotocol": "two words"},
            {"type": "websocket.send", "text": "too early"},
            {"type": "websocket.keepalive", "interval": 1},
        ):
            try:
                await send(bad)
            except EventError as exc:
                errors.append(exc)
        await send({"type": "websocket.accept", "subprotocol": "chat"})
        with pytest.raises(EventOrderError):
            await send({"type": "websocket.accept"})
        with pytest.raises(EventError, match="exactly one"):
            await send({"type": "websocket.send", "text": "a", "bytes": b"b"})
        with pytest.raises(EventError, match="UTF-8"):
            await send({"type": "websocket.send", "text": "\ud800"})
        await send({"type": "websocket.send", "text": "ok"})
        await receive()

    async with serve(app) as running:

        def client() -> tuple[str | None, Any]:
            with ws_connect(running, subprotocols=["chat"]) as ws:
                return ws.subprotocol, ws.recv(timeout=5)

        assert await in_thread(client) == ("chat", "ok")
    assert len(errors) == 5
    assert "headers" in str(errors[0]) and "not offered" in str(errors[1])


@pytest.mark.parametrize("how", ["close", "return", "raise"])
async def test_refusing_the_handshake(serve: Any, how: str) -> None:
    """R-WS-12 (close -> 403), R-WS-21 (return -> 403); an exception gets 500."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if how == "close":
            await send({"type": "websocket.close", "code": 4000})
            assert await receive() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
        elif how == "raise":
            raise RuntimeError("boom")

    async with serve(app) as running:
        with pytest.raises(InvalidStatus) as info:
            await in_thread(lambda: ws_connect(running))
        ws, head = await RawWS.open(running)
        body = await ws.expect_eof()
    status = 500 if how == "raise" else 403
    assert info.value.response.status_code == status
    assert head.startswith(b"HTTP/1.1 %d" % status)
    assert b"content-length:" in head.lower()
    if status == 403:
        assert body == b"Forbidden\n"


async def test_denial_response(serve: Any) -> None:
    """R-WSDENY-3/4: a real HTTP response in several body parts, then close."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"log ", "more": True})
        await send({"type": "websocket.http.response.body", "body": b"in first"})
        # Nothing was queued for the app; a receive anyway does not hang.
        with anyio.fail_after(1):
            assert (await receive())["type"] == "websocket.disconnect"

    async with serve(app) as running:
        ws, head = await RawWS.open(running)
        body = await ws.expect_eof()
    lower = head.lower()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"www-authenticate: basic" in lower and b"content-length: 12" in lower
    assert b"connection: close" in lower and b"upgrade" not in lower
    assert body == b"log in first"


async def test_denial_events_after_accept_are_ignored(serve: Any) -> None:
    """R-WSDENY-6."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.http.response.start", "status": 500})
        await send({"type": "websocket.http.response.body", "body": b"x"})
        await send({"type": "websocket.send", "text": "still open"})
        await receive()

    async with serve(app) as running:

        def client() -> Any:
            with ws_connect(running) as ws:
                return ws.recv(timeout=5)

        assert await in_thread(client) == "still open"


@pytest.mark.parametrize("failure", [False, True])
async def test_app_returning_while_open_closes_the_socket(serve: Any, failure: bool) -> None:
    """R-WS-22: a return closes with 1000; an exception closes with 1011."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        if failure:
            raise RuntimeError("boom")

    async with serve(app) as running:

        def client() -> tuple[int | None, str | None]:
            with ws_connect(running) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=5)
                assert info.value.rcvd is not None
                return info.value.rcvd.code, info.value.rcvd.reason

        code, _ = await in_thread(client)
    assert code == (1011 if failure else 1000)


async def test_app_close_with_code_and_reason(serve: Any) -> None:
    """R-WS-18; the app's own disconnect reports the code it sent (A-29)."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        await send({"type": "websocket.send", "text": "ignored"})  # R-WS-17
        seen.append(await receive())

    async with serve(app) as running:

        def client() -> Any:
            with ws_connect(running) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=5)
                return info.value.rcvd

        rcvd = await in_thread(client)
    assert (rcvd.code, rcvd.reason) == (4001, "bye now")
    assert seen == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}]


async def test_peer_close_code_and_reason_reach_the_app(serve: Any) -> None:
    """R-WS-31: the peer's code and reason, unchanged."""
    app = Recorder()
    async with serve(app) as running:

        def client() -> None:
            with ws_connect(running) as ws:
                ws.close(4002, "done here")

        await in_thread(client)
        event = await app.disconnect()
    assert (event["code"], event["reason"]) == (4002, "done here")


async def test_abort_without_close_is_1006_client_closed(serve: Any) -> None:
    """R-WS-32; sends after the disconnect are no-ops (R-WS-17)."""
    sent_after = anyio.Event()
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        events.append(await receive())
        await send({"type": "websocket.send", "text": "nobody listens"})
        await send({"type": "websocket.close"})
        sent_after.set()

    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.aclose()
        with anyio.fail_after(5):
            await sent_after.wait()
    assert events == [{"type": "websocket.disconnect", "code": 1006, "reason": "client_closed"}]


async def test_client_gone_during_handshake(serve: Any) -> None:
    connected = anyio.Event()
    gone = anyio.Event()
    finished = anyio.Event()
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        events.append(await receive())
        connected.set()
        await gone.wait()
        # Nothing in a websocket scope signals the client's EOF before accept: this
        # gives the server the time to read it, so the accept comes after it.
        await anyio.sleep(0.1)
        await send({"type": "websocket.accept"})  # a no-op: nobody is there
        events.append(await receive())
        finished.set()

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n" + WS_HEADERS + b"\r\n")
        with anyio.fail_after(5):
            await connected.wait()  # the app has the handshake: now the client goes
        await stream.aclose()
        gone.set()
        with anyio.fail_after(5):
            await finished.wait()
    assert events[1] == {"type": "websocket.disconnect", "code": 1006, "reason": "client_closed"}


async def test_keepalive_pings_and_stop(serve: Any) -> None:
    """R-WS-40/41/42: pings at the interval, pongs accepted, interval 0 stops them."""
    stop = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.keepalive", "interval": 5})
        await send({"type": "websocket.keepalive", "interval": 0.05, "timeout": 1})
        await stop.wait()
        await send({"type": "websocket.keepalive", "interval": 0})
        await send({"type": "websocket.send", "text": "stopped"})
        await receive()

    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        for _ in range(3):
            _, opcode, payload, _ = await ws.recv_frame(timeout=1)
            assert opcode == 0x9
            await ws.send_frame(0xA, payload)
        stop.set()
        while True:
            _, opcode, payload, _ = await ws.recv_frame(timeout=1)
            if opcode == 0x1:
                break
        assert payload == b"stopped"
        with pytest.raises(TimeoutError):
            await ws.recv_frame(timeout=0.3)
        await ws.close()
        await ws.expect_eof()


async def test_keepalive_timeout_aborts_with_1006(serve: Any) -> None:
    """R-WS-43: no pong in time -> TCP dropped without a Close frame, 1006 keepalive_timeout."""
    app = Recorder(accept=False)

    async def pinging(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.keepalive", "interval": 0.05, "timeout": 0.2})
        app.events.append(await receive())

    async with serve(pinging) as running:
        ws, _ = await RawWS.open(running)
        rest = await ws.expect_eof(timeout=3)  # never answer the pings
    # Only ping frames (opcode 0x9) came, never a Close.
    assert rest == b"" or rest[0] & 0x0F == 0x9
    pos = 0
    while pos < len(rest):
        assert rest[pos] & 0x0F == 0x9
        pos += 2 + (rest[pos + 1] & 0x7F)
    assert app.events == [
        {"type": "websocket.disconnect", "code": 1006, "reason": "keepalive_timeout"}
    ]


async def test_receive_queue_overflow_closes_1008(serve: Any) -> None:
    """R-WSP-4: an app that stops receiving sheds the connection instead of buffering."""
    go = anyio.Event()
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        while True:
            event = await receive()
            events.append(event)
            if event["type"] == "websocket.disconnect":
                return

    async with serve(app, max_receive_queue=4) as running:
        ws, _ = await RawWS.open(running)
        for i in range(10):
            await ws.send_frame(0x1, b"m%d" % i)
        code, _ = await ws.recv_close()
        assert code == 1008
        await ws.close(1008)
        await ws.expect_eof()
        go.set()
        with anyio.fail_after(5):
            while not events or events[-1]["type"] != "websocket.disconnect":
                await anyio.sleep(0.02)
    assert [e.get("text") for e in events[:-1]] == ["m0", "m1", "m2", "m3"]
    assert events[-1] == {"type": "websocket.disconnect", "code": 1008, "reason": "queue_overflow"}


async def test_idle_timeout_closes_1001(serve: Any) -> None:
    app = Recorder()
    async with serve(app, ws_idle_timeout=0.3) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x1, b"hi")
        assert await ws.recv_message() == (0x1, b"hi")
        start = anyio.current_time()
        code, _ = await ws.recv_close(timeout=3)
        assert code == 1001
        assert anyio.current_time() - start >= 0.25
        await ws.close(1001)
        await ws.expect_eof()
    event = await app.disconnect()
    assert (event["code"], event["reason"]) == (1001, "idle_timeout")


async def test_graceful_drain_closes_1001_with_server_shutdown(serve: Any) -> None:
    app = Recorder()
    async with serve(app, shutdown_timeout=5) as running:
        ws, _ = await RawWS.open(running)
        await ws.send_frame(0x1, b"before")
        assert await ws.recv_message() == (0x1, b"before")
        running.server.request_shutdown()
        code, _ = await ws.recv_close()
        assert code == 1001
        await ws.close(1001)
        await ws.expect_eof()
        event = await app.disconnect()
    assert (event["code"], event["reason"]) == (1001, "server_shutdown")


async def test_concurrent_sends_stay_whole_frames(serve: Any) -> None:
    """Several tasks sending at once: every message arrives intact (frames never interleave)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

        async def sender(tag: int) -> None:
            for i in range(40):
                size = (i % 4) * 30_000 + 1
                await send({"type": "websocket.send", "text": f"{tag}:{i}:" + "x" * size})

        async with anyio.create_task_group() as tg:
            for tag in range(4):
                tg.start_soon(sender, tag)
        await receive()

    async with serve(app) as running:

        def client() -> list[str]:
            got = []
            with ws_connect(running, max_size=None) as ws:
                for _ in range(160):
                    got.append(ws.recv(timeout=10))
            return got

        messages = await in_thread(client)
    seen = set()
    for message in messages:
        tag, i, body = message.split(":", 2)
        assert body == "x" * ((int(i) % 4) * 30_000 + 1)
        seen.add((tag, i))
    assert len(seen) == 160


async def test_permessage_deflate_with_a_real_client(serve: Any) -> None:
    app = Recorder()
    async with serve(app) as running:

        def client() -> tuple[str, Any]:
            with ws_connect(running, max_size=None) as ws:
                ws.send("compress me " * 10_000)
                echoed = ws.recv(timeout=5)
                return ws.response.headers["sec-websocket-extensions"], echoed

        extensions, echoed = await in_thread(client)
    assert extensions.startswith("permessage-deflate")
    assert "server_max_window_bits=12" in extensions
    assert echoed == "compress me " * 10_000


async def test_access_log_line_at_close(serve: Any) -> None:
    buffer = io.StringIO()
    app = Recorder()
    async with serve(app, access_log=buffer, access_log_format="%m %U %s %B %d") as running:

        def client() -> None:
            with ws_connect(running, "/live", compression=None) as ws:
                ws.send("x" * 100)
                ws.recv(timeout=5)

        await in_thread(client)
        await app.disconnect()
        with anyio.fail_after(5):
            while not buffer.getvalue():
                await anyio.sleep(0.02)
    match = re.fullmatch(r"WEBSOCKET /live 101 (\d+) (\d+\.\d{3})\n", buffer.getvalue())
    assert match is not None, buffer.getvalue()
    assert int(match.group(1)) >= 100


async def test_drain_during_the_handshake_closes_right_after_accept(serve: Any) -> None:
    asked = anyio.Event()
    release = anyio.Event()
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        asked.set()
        await release.wait()
        await send({"type": "websocket.accept"})
        events.append(await receive())

    async with serve(app, shutdown_timeout=5) as running:
        stream = await running.connect()
        ws = RawWS(stream)
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n" + WS_HEADERS + b"\r\n")
        with anyio.fail_after(5):
            await asked.wait()
        running.server.request_shutdown()
        await until(lambda: running.server.ctx.draining, "the drain to start")
        release.set()
        head = await ws._read_head()
        assert head.startswith(b"HTTP/1.1 101")
        assert (await ws.recv_close())[0] == 1001
        await ws.close(1001)
        await ws.expect_eof()
    assert events == [{"type": "websocket.disconnect", "code": 1001, "reason": "server_shutdown"}]


async def test_forced_shutdown_cancels_an_app_that_ignores_the_drain(serve: Any) -> None:
    cancelled = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with serve(app, shutdown_timeout=0.3) as running:
        ws, _ = await RawWS.open(running)
        running.server.request_shutdown()
        assert (await ws.recv_close())[0] == 1001  # sent at the start of the drain
        await ws.expect_eof()  # we never answer; the forced close ends it
        with anyio.fail_after(5):
            await cancelled.wait()
