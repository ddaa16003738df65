"""HTTP/1.x framing and the http scope over real sockets (spec-digest sections 2, 3)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import echo_scope, hello, read_body, read_response, read_until_close

pytestmark = pytest.mark.anyio


async def test_hello_adds_date_and_server_headers_R_HSRV_1(serve: Any) -> None:
    async with serve(hello) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url + "/")
    assert response.status_code == 200
    assert response.text == "hello"
    assert "date" in response.headers
    assert response.headers["server"] == "pagi"


async def test_scope_keys_R_HTTP_1(serve: Any) -> None:
    async with serve(echo_scope) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url + "/a%20b/c?x=1&y=%20")
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["pagi"] == {"version": "0.3", "spec_version": "0.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == "/a%20b/c"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["server"] == [running.host, running.port]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["has_connection"] and scope["has_transport"]
    assert scope["extensions"] == {"fullflush": {}}
    assert "tls" not in scope["extensions"]


async def test_path_decoding_utf8_and_latin1_fallback_R_ENC_1_2(serve: Any) -> None:
    async with serve(echo_scope) as running, httpx.AsyncClient() as client:
        good = (await client.get(running.url + "/users/%E4%B8%AD%E6%96%87")).json()
        bad = (await client.get(running.url + "/bad/%FF%FE")).json()
    assert good["path"] == "/users/中文"
    assert good["raw_path"] == "/users/%E4%B8%AD%E6%96%87"
    assert bad["path"] == "/bad/\xff\xfe"


async def test_headers_keep_order_and_duplicates_and_cookies_merge_R_HDR_5_R_CK_1(
    serve: Any,
) -> None:
    async with serve(echo_scope) as running:
        stream = await running.connect()
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-B: 1\r\nCookie: a=1\r\nX-A: 2\r\n"
            b"X-B: 3\r\nCookie: b=2; c=3\r\nConnection: close\r\n\r\n"
        )
        raw = await read_until_close(stream)
    scope = json.loads(raw.partition(b"\r\n\r\n")[2].split(b"\r\n")[1])
    assert scope["headers"] == [
        ["host", "x"],
        ["x-b", "1"],
        ["cookie", "a=1; b=2; c=3"],
        ["x-a", "2"],
        ["x-b", "3"],
        ["connection", "close"],
    ]


async def test_request_body_content_length_and_chunked_R_HTTP_10_11(serve: Any) -> None:
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            event = await receive()
            events.append(event)
            if not event.get("more"):
                break
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert (await read_response(stream)).startswith(b"HTTP/1.1 204")
        await stream.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        await anyio.sleep(0.1)
        await stream.send(b"2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
        assert (await read_response(stream)).startswith(b"HTTP/1.1 204")
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(stream)).startswith(b"HTTP/1.1 204")
        await stream.aclose()
    assert events[0] == {"type": "http.request", "body": b"hello", "more": False}
    chunked = b"".join(e["body"] for e in events[1:-1])
    assert chunked == b"abcde"
    assert events[1]["more"] is True and events[-2]["more"] is False
    assert events[-1] == {"type": "http.request", "body": b"", "more": False}


async def test_keepalive_and_pipelining_answer_in_order(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        delay = 0.2 if scope["path"] == "/slow" else 0
        await anyio.sleep(delay)
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = await read_until_close(stream)
    bodies = [part.split(b"\r\n\r\n")[1][:5] for part in raw.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/slow", b"/fast", b"/last"]
    assert raw.count(b"connection: close") == 1


async def test_chunked_response_when_no_content_length_R_HSRV_2(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"transfer-encoding", b"gzip")],
            }
        )
        await send({"type": "http.response.body", "body": b"ab", "more": True})
        await send({"type": "http.response.body", "body": b"cd", "more": True})
        await send({"type": "http.response.body", "body": b""})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await read_response(stream)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert b"gzip" not in head  # the app's Transfer-Encoding is ignored (R-HTTP-21)
    assert body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"


async def test_http10_close_delimited_and_keepalive_R_HSRV_5(serve: Any) -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"abc", "more": True})
        await send({"type": "http.response.body", "body": b"def"})

    async with serve(streaming) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.0\r\n\r\n")
        raw = await read_until_close(stream)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"connection: close" in head and b"chunked" not in head
    assert body == b"abcdef"

    async with serve(hello) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = await read_response(stream)
        await stream.send(b"GET / HTTP/1.0\r\n\r\n")
        second = await read_until_close(stream)
    assert b"connection: keep-alive" in first.lower()
    assert second.endswith(b"hello") and b"connection: close" in second


async def test_head_sends_headers_without_body_R_HSRV_8(serve: Any) -> None:
    async with serve(hello) as running:
        stream = await running.connect()
        await stream.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            raw = b""
            while raw.count(b"hello") < 1:
                raw += await stream.receive()
    first, _, second = raw.partition(b"\r\n\r\n")
    assert b"content-length: 5" in first
    assert second.startswith(b"HTTP/1.1 200 OK")  # nothing between the two responses


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_R_HSRV_9(serve: Any, status: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status})
        await send({"type": "http.response.body", "body": b"ignored"})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            raw = b""
            while raw.count(b"\r\n\r\n") < 2:
                raw += await stream.receive()
    assert b"chunked" not in raw and b"ignored" not in raw
    assert raw.count(b"HTTP/1.1 %d" % status) == 2


async def test_trailers_use_chunked_R_HTTP_51(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "trailers": True,
                "headers": [(b"content-length", b"4")],
            }
        )
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await read_response(stream)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head
    assert body == b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n"


async def test_app_date_and_server_headers_are_not_duplicated_R_HSRV_1(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
                    (b"server", b"mine"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body"})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await read_response(stream)
    assert raw.lower().count(b"date:") == 1 and b"1970" in raw
    assert raw.lower().count(b"server:") == 1 and b"mine" in raw


async def test_expect_100_continue_only_when_body_is_read_R_HSRV_7(serve: Any) -> None:
    async def reads(scope: Any, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serve(reads) as running:
        stream = await running.connect()
        await stream.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        with anyio.fail_after(5):
            interim = await stream.receive()
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send(b"abc")
        final = await read_response(stream)
        assert final.endswith(b"\r\n\r\nabc")

    async with serve(hello) as running:
        stream = await running.connect()
        await stream.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        raw = await read_until_close(stream)
    assert b"100 Continue" not in raw and raw.startswith(b"HTTP/1.1 200")


async def test_fullflush_and_file_bodies_R_HFILE(serve: Any, tmp_path: Any) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        if scope["path"] == "/file":
            await send({"type": "http.fullflush"})
            await send(
                {"type": "http.response.body", "file": str(path), "offset": 10, "length": 100_000}
            )
        elif scope["path"] == "/fh":
            with open(path, "rb") as fh:
                await send({"type": "http.response.body", "fh": fh, "offset": 255_990})
        else:
            try:
                await send({"type": "http.response.body", "file": str(path) + ".missing"})
            except FileNotFoundError:
                await send({"type": "http.response.body", "body": b"missing"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        whole = await client.get(running.url + "/file")
        tail = await client.get(running.url + "/fh")
        missing = await client.get(running.url + "/missing")
    assert whole.content == data[10:100_010]
    assert tail.content == data[255_990:]
    assert missing.content == b"missing"


async def test_disconnect_after_response_R_HTTP_13(serve: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body"})
        with anyio.fail_after(2):
            seen.append(await receive())

    async with serve(app) as running, httpx.AsyncClient() as client:
        await client.get(running.url)
    assert seen == [{"type": "http.disconnect"}]


async def test_unix_socket_scope_server_R_HTTP_3(serve: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "pagi.sock")
    async with serve(echo_scope, uds=path):
        async with await anyio.connect_unix(path) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = await read_until_close(stream)
    body = raw.partition(b"\r\n\r\n")[2]
    scope = json.loads(body.split(b"\r\n")[1])
    assert scope["server"] == [path, None]
    assert "client" not in scope


async def test_proxy_headers_only_from_trusted_peers(serve: Any) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n"
        b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    )

    async def fetch(running: Any) -> dict[str, Any]:
        stream = await running.connect()
        await stream.send(request)
        raw = await read_until_close(stream)
        return json.loads(raw.partition(b"\r\n\r\n")[2].split(b"\r\n")[1])  # type: ignore[no-any-return]

    async with serve(
        echo_scope, proxy_headers=True, forwarded_allow_ips="127.0.0.1, 10.0.0.0/8"
    ) as running:
        trusted = await fetch(running)
    async with serve(echo_scope, proxy_headers=True, forwarded_allow_ips="192.0.2.1") as running:
        untrusted = await fetch(running)
    assert trusted["client"] == ["203.0.113.9", 0] and trusted["scheme"] == "https"
    assert untrusted["client"][0] == "127.0.0.1" and untrusted["scheme"] == "http"


async def test_fh_offset_is_absolute_and_absent_means_current_position_A_45(
    serve: Any, tmp_path: Any
) -> None:
    path = tmp_path / "digits.txt"
    path.write_bytes(b"0123456789")

    left_open: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with open(path, "rb") as fh:
            fh.seek(4)
            event: dict[str, Any] = {"type": "http.response.body", "fh": fh}
            if scope["path"] == "/zero":
                event["offset"] = 0
            await send({"type": "http.response.start", "status": 200})
            await send(event)
            left_open.append(not fh.closed)  # the app owns the handle (R-HFILE-5)

    async with serve(app) as running, httpx.AsyncClient() as client:
        current = await client.get(running.url + "/current")
        zero = await client.get(running.url + "/zero")
    assert current.content == b"456789"
    assert zero.content == b"0123456789"
    assert left_open == [True, True]  # checked here: an assert inside the app only logs


async def test_length_framed_file_bodies_use_sendfile_on_asyncio(
    serve: Any, tmp_path: Any, monkeypatch: Any, anyio_backend: str
) -> None:
    """R-HFILE-3: zero copy where the framing allows; bytes identical either way.

    Calls are counted at the event loop's ``sendfile`` (the in-process server
    runs on the test's loop), not by patching ``TransportStream``: compiled
    with mypyc, its methods cannot be replaced.
    """
    calls: list[tuple[int, int]] = []
    if anyio_backend == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        original = loop.sendfile

        async def counting(transport: Any, fh: Any, offset: int, count: int, **kw: Any) -> int:
            calls.append((offset, count))
            return await original(transport, fh, offset, count, **kw)

        monkeypatch.setattr(loop, "sendfile", counting)
    data = bytes(range(256)) * 8192  # 2 MiB
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        length = 1_000_000 if scope["path"] == "/length" else len(data) - 5
        headers = [] if scope["path"] == "/chunked" else [(b"content-length", b"%d" % length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "file": str(path), "offset": 5, "length": length})

    async with serve(app) as running, httpx.AsyncClient() as client:
        ranged = await client.get(running.url + "/length")
        rest = await client.get(running.url + "/rest")
        chunked = await client.get(running.url + "/chunked")
    assert ranged.content == data[5:1_000_005]
    assert rest.content == data[5:]
    assert chunked.content == data[5:]
    if anyio_backend == "asyncio":
        assert calls == [(5, 1_000_000), (5, len(data) - 5)]  # not for chunked framing
    else:
        assert calls == []
