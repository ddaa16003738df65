"""HTTP/2 (RFC 9113): prior-knowledge h2c and h2 over TLS, sharing the http stream (R-H2-*)."""

from __future__ import annotations

import json
import ssl
import subprocess
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from server_helpers import echo_scope, hello

pytestmark = pytest.mark.anyio


class RawH2:
    """A minimal HTTP/2 client on a raw socket, for what httpx does not expose."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )

    async def start(self) -> None:
        self.conn.initiate_connection()
        await self.stream.send(self.conn.data_to_send())

    async def request(
        self, headers: list[tuple[bytes, bytes]], body: bytes = b"", end: bool = True
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=not body and end)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        await self.stream.send(self.conn.data_to_send())
        return sid

    async def events(self, until: type, timeout: float = 5.0) -> list[Any]:
        seen: list[Any] = []
        with anyio.fail_after(timeout):
            while not any(isinstance(e, until) for e in seen):
                data = await self.stream.receive()
                for event in self.conn.receive_data(data):
                    seen.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                await self.stream.send(self.conn.data_to_send())
        return seen


def _request(path: bytes, method: bytes = b"GET", extra: tuple[Any, ...] = ()) -> list[Any]:
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", b"example.test"),
        *extra,
    ]


async def test_prior_knowledge_h2c_scope_R_H2_10_11(serve: Any) -> None:
    async with serve(echo_scope) as running:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            response = await client.get(running.url + "/x%20y?q=1")
    assert response.http_version == "HTTP/2"
    scope = response.json()
    assert scope["http_version"] == "2"
    assert scope["path"] == "/x y" and scope["query_string"] == "q=1"
    assert all(not name.startswith(":") for name, _ in scope["headers"])
    assert ["host", f"{running.host}:{running.port}"] in scope["headers"]


async def test_authority_becomes_host_and_cookie_crumbs_merge_R_H2_11_12(serve: Any) -> None:
    async with serve(echo_scope) as running:
        client = RawH2(await running.connect())
        await client.start()
        sid = await client.request(_request(b"/", extra=((b"cookie", b"a=1"), (b"cookie", b"b=2"))))
        events = await client.events(h2.events.StreamEnded)
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    scope = json.loads(body)
    assert sid == 1
    assert scope["headers"][0] == ["host", "example.test"]
    assert ["cookie", "a=1; b=2"] in scope["headers"]
    assert sum(1 for name, _ in scope["headers"] if name == "cookie") == 1


async def test_request_body_and_large_response_respect_flow_control_R_H2_4(serve: Any) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: far past the default 64 KiB window

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more"):
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": payload[: len(body)], "more": True})
        await send({"type": "http.response.body", "body": payload[len(body) :]})

    async with serve(app) as running:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            response = await client.post(running.url, content=b"z" * 100_000)
    assert response.content == payload


async def test_head_204_and_connection_headers_dropped_R_HSRV_4(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = 204 if scope["path"] == "/none" else 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"connection", b"keep-alive"),
                    (b"transfer-encoding", b"chunked"),
                    (b"content-length", b"5"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async with serve(app) as running:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            head = await client.head(running.url)
            none = await client.get(running.url + "/none")
            full = await client.get(running.url)
    assert head.content == b"" and head.headers["content-length"] == "5"
    assert none.status_code == 204 and none.content == b""
    assert full.content == b"hello"
    assert "connection" not in full.headers and "transfer-encoding" not in full.headers


async def test_trailers_and_backstop_and_reset_R_HERR_6(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/trailers":
            await send({"type": "http.response.start", "status": 200, "trailers": True})
            await send({"type": "http.response.body", "body": b"data"})
            await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})
        elif scope["path"] == "/boom":
            raise RuntimeError("before start")
        else:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"part", "more": True})
            raise RuntimeError("mid-body")

    async with serve(app) as running:
        client = RawH2(await running.connect())
        await client.start()
        await client.request(_request(b"/trailers"))
        trailers = await client.events(h2.events.TrailersReceived)
        await client.request(_request(b"/boom"))
        boom = await client.events(h2.events.StreamEnded)
        await client.request(_request(b"/mid"))
        mid = await client.events(h2.events.StreamReset)
    received = next(e for e in trailers if isinstance(e, h2.events.TrailersReceived))
    assert (b"x-sum", b"1") in received.headers
    response = next(e for e in boom if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"500") in response.headers
    assert any(isinstance(e, h2.events.StreamReset) for e in mid)


async def test_client_reset_disconnects_the_stream_R_H2_6(serve: Any) -> None:
    reasons: list[str] = []
    entered = anyio.Event()
    done = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        entered.set()
        with anyio.fail_after(5):
            reasons.append(await conn.disconnect_future())
            event = await receive()
        reasons.append(event["type"])
        done.set()

    async with serve(app) as running:
        client = RawH2(await running.connect())
        await client.start()
        sid = await client.request(_request(b"/", method=b"POST"), end=False)
        with anyio.fail_after(5):
            await entered.wait()  # the stream reached the app: now reset it
        client.conn.reset_stream(sid)
        await client.stream.send(client.conn.data_to_send())
        with anyio.fail_after(5):
            await done.wait()
    assert reasons == ["client_closed", "http.disconnect"]


async def test_concurrent_streams_are_independent_R_H2_1(serve: Any) -> None:
    """/slow answers only once /fast, sent after it on the same connection, is answered."""
    slow_started = anyio.Event()
    fast_answered = anyio.Event()
    answered: list[tuple[str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            slow_started.set()
            with anyio.fail_after(5):  # streams served one at a time would wait here
                await fast_answered.wait()
        await hello(scope, receive, send)
        answered.append((scope["path"], scope["http_version"]))
        if scope["path"] == "/fast":
            fast_answered.set()

    async with serve(app) as running:
        async with httpx.AsyncClient(http1=False, http2=True) as client:

            async def fetch(path: str) -> None:
                response = await client.get(running.url + path)
                assert response.text == "hello"

            async with anyio.create_task_group() as tg:
                tg.start_soon(fetch, "/slow")
                with anyio.fail_after(5):
                    await slow_started.wait()
                tg.start_soon(fetch, "/fast")
    assert answered == [("/fast", "2"), ("/slow", "2")]


async def test_h2_over_tls_via_alpn_R_H2_9(serve: Any, tmp_path: Any) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    async with serve(echo_scope, ssl_certfile=str(cert), ssl_keyfile=str(key)) as running:
        context = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            response = await client.get(f"https://{running.host}:{running.port}/")
    assert response.http_version == "HTTP/2"
    scope = response.json()
    assert scope["scheme"] == "https" and scope["http_version"] == "2"
    assert scope["extensions"]["tls"]["tls_version"] in (0x0303, 0x0304)


async def test_content_length_is_enforced_the_same_way_on_h2(serve: Any) -> None:
    """The rule lives in the shared stream, not in one driver."""
    errors: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
        )
        try:
            await send({"type": "http.response.body", "body": b"toolong"})
        except ValueError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": b"abc"})

    async with serve(app) as running:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            response = await client.get(running.url)
    assert response.content == b"abc"
    assert errors and "content-length" in errors[0]
