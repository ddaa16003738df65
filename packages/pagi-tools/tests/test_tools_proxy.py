"""pagi.tools.proxy.Proxy: a streaming reverse proxy, against real upstreams on 127.0.0.1.

The upstream is an in-process pagi-server running a raw PAGI app; the
proxy runs in another in-process pagi-server (or in the test client), on
asyncio and trio. WebSocket checks use the websockets client in a thread.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import ipaddress
import json
import ssl
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from live_server import live_server
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from pagi.tools.proxy import EventStreamParser, Proxy, hop_by_hop_names
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

CHUNK = b"x" * 65536


class Upstream:
    """A raw PAGI app with the routes the tests need, recording what it saw."""

    def __init__(self) -> None:
        self.disconnects: list[Any] = []
        self.gone = anyio.Event()
        self.second_event_at = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind, path = scope["type"], scope["path"]
        if kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "sse":
            await self.sse(scope, receive, send)
        elif path.endswith("/echo"):
            size, digest = 0, hashlib.sha256()
            while True:
                event = await receive()
                size += len(event.get("body", b""))
                digest.update(event.get("body", b""))
                if event["type"] != "http.request" or not event.get("more"):
                    break
            info = {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "http_version": scope["http_version"],
                "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
                "size": size,
                "sha256": digest.hexdigest(),
            }
            await self.reply(send, 200, json.dumps(info).encode(), b"application/json")
        elif path == "/big":
            size = int(scope["query_string"].decode().partition("=")[2])
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % size)]})  # fmt: skip
            for _ in range(size // len(CHUNK)):
                await send({"type": "http.response.body", "body": CHUNK, "more": True})
            await send({"type": "http.response.body", "body": b"", "more": False})
        elif path == "/gzip":
            body = gzip.compress(b"compressed " * 100)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-encoding", b"gzip"), (b"x-up", b"1")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
        elif path == "/hang":
            await anyio.sleep(30)
        else:
            await self.reply(send, 404, b"nope")

    @staticmethod
    async def reply(send: Any, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype)]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def sse(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] != "/events":
            await send({"type": "sse.http.response.start", "status": 404, "headers": []})
            await send({"type": "sse.http.response.body", "body": b"no stream"})
            return
        await send({"type": "sse.start", "headers": [(b"x-stream", b"1")]})
        await send({"type": "sse.send", "data": "one"})
        await anyio.sleep(0.4)
        self.second_event_at = time.monotonic()
        await send({"type": "sse.send", "data": "two\nlines", "event": "tick", "id": "2",
                    "retry": 500})  # fmt: skip
        await send({"type": "sse.comment", "comment": "ping"})
        event = await receive()
        while event["type"] == "sse.request":
            event = await receive()
        self.disconnects.append(event)
        self.gone.set()

    async def websocket(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] == "/deny":
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer")]})  # fmt: skip
            await send({"type": "websocket.http.response.body", "body": b"who are you?"})
            return
        offered = scope.get("subprotocols") or []
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if "echo" in offered:
            accept["subprotocol"] = "echo"
        await send(accept)
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                self.disconnects.append((event["code"], event.get("reason", "")))
                self.gone.set()
                return
            if event.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4002, "reason": "bye now"})
            elif event.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo:" + event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"][::-1]})


@asynccontextmanager
async def proxied(**options: Any) -> AsyncIterator[tuple[Upstream, str]]:
    """An upstream server and a proxy server in front of it: yields (upstream, proxy address)."""
    upstream = Upstream()
    async with live_server(upstream, max_body_size=0) as up:
        proxy = Proxy(f"http://{up}", **options)
        try:
            async with live_server(proxy, max_body_size=0) as front:
                yield upstream, front
        finally:
            await proxy.aclose()


def headers_of(info: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in info["headers"]}


# -- http ---------------------------------------------------------------------------------


async def test_forwarded_headers_and_hop_by_hop_removed() -> None:
    upstream = Upstream()
    async with live_server(upstream) as up:
        proxy = Proxy(f"http://{up}/base", headers={"x-api-key": "k"})
        client = AsyncTestClient(proxy, root_path="/mount", client=("10.1.2.3", 5555))
        hop = {"connection": "x-secret, keep-alive", "x-secret": "s", "keep-alive": "5",
               "te": "trailers", "x-forwarded-for": "1.1.1.1", "forwarded": "for=1.1.1.1",
               "x-api-key": "spoof", "x-kept": "yes"}  # fmt: skip
        r = await client.post("/mount/echo?a=1", content=b"data", headers=hop)
        await proxy.aclose()
    assert r.status_code == 200
    info = r.json()
    seen = headers_of(info)
    assert (info["method"], info["path"], info["query"]) == ("POST", "/base/echo", "a=1")
    assert info["size"] == 4
    assert seen["host"] == up
    for name in ("connection", "x-secret", "keep-alive", "te"):
        assert name not in seen
    assert seen["x-kept"] == "yes"
    assert seen["x-api-key"] == "k"
    assert seen["x-forwarded-for"] == "1.1.1.1, 10.1.2.3"
    assert seen["forwarded"] == "for=1.1.1.1, for=10.1.2.3;proto=http;host=testserver"
    assert (seen["x-forwarded-proto"], seen["x-forwarded-host"]) == ("http", "testserver")


async def test_preserve_host_and_ipv6_forwarded() -> None:
    upstream = Upstream()
    async with live_server(upstream) as up:
        proxy = Proxy(f"http://{up}", preserve_host=True)
        client = AsyncTestClient(proxy, base_url="https://site.example:8443", client=("::1", 1))
        info = (await client.get("/echo")).json()
        await proxy.aclose()
    seen = headers_of(info)
    assert seen["host"] == "site.example:8443"
    assert seen["forwarded"] == 'for="[::1]";proto=https;host="site.example:8443"'
    assert seen["x-forwarded-proto"] == "https"


def test_hop_by_hop_names_include_the_connection_list() -> None:
    names = hop_by_hop_names([(b"connection", b"X-A, close"), (b"x-a", b"1")])
    assert {b"x-a", b"close", b"transfer-encoding", b"upgrade", b"te"} <= names


async def test_content_coding_passes_through_untouched() -> None:
    async with proxied() as (_, front):
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", f"http://{front}/gzip") as r:
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.headers["content-encoding"] == "gzip" and r.headers["x-up"] == "1"
    assert gzip.decompress(raw) == b"compressed " * 100


async def test_50_mib_both_ways_with_bounded_memory() -> None:
    size = 50 * 1024 * 1024

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // len(CHUNK)):
            yield CHUNK

    expected = hashlib.sha256()
    for _ in range(size // len(CHUNK)):
        expected.update(CHUNK)
    async with proxied() as (_, front):
        tracemalloc.start()
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.post(f"http://{front}/echo", content=upload())
                assert r.json()["size"] == size
                assert r.json()["sha256"] == expected.hexdigest()
                received = 0
                async with client.stream("GET", f"http://{front}/big?size={size}") as down:
                    async for chunk in down.aiter_raw():
                        received += len(chunk)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert received == size
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for 2 x 50 MiB"


async def test_502_when_the_upstream_cannot_be_reached() -> None:
    async with live_server(Upstream()) as up:
        pass  # the port is closed again
    proxy = Proxy(f"http://{up}", timeout=5)
    r = await AsyncTestClient(proxy).get("/echo")
    await proxy.aclose()
    assert (r.status_code, r.text) == (502, "Bad Gateway\n")


async def test_504_when_the_upstream_hangs() -> None:
    async with proxied(timeout=0.5) as (_, front):
        started = time.monotonic()
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{front}/hang")
        assert (r.status_code, r.text) == (504, "Gateway Timeout\n")
        assert 0.4 < time.monotonic() - started < 3


async def test_http2_upstream_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    upstream = Upstream()
    async with live_server(upstream, ssl_certfile=str(cert), ssl_keyfile=str(key)) as up:
        port = up.rpartition(":")[2]
        proxy = Proxy(f"https://localhost:{port}", verify=context)
        info = (await AsyncTestClient(proxy).post("/echo", content=b"abc")).json()
        await proxy.aclose()
    assert (info["http_version"], info["size"]) == ("2", 3)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    proxy = Proxy("http://127.0.0.1:9")
    with pytest.raises(ImportError, match=r"pagi-tools\[proxy\]"):
        proxy._http_client()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="upstream"):
        Proxy("ftp://x")
    with pytest.raises(ValueError, match="timeout"):
        Proxy("http://x", timeout=0)


# -- sse --------------------------------------------------------------------------------


async def test_sse_event_by_event_and_disconnect_closes_upstream() -> None:
    # A raw socket: httpx can only read part of a stream through nested async
    # generators, which trio finalises (and warns about) after the test is over.
    async with proxied() as (upstream, front):
        host, port = front.split(":")
        arrivals: list[tuple[float, bytes]] = []
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(
                b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
            )
            raw = b""
            with anyio.fail_after(10):
                while b":ping" not in raw:
                    chunk = await stream.receive()
                    raw += chunk
                    arrivals.append((time.monotonic(), chunk))
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"content-type: text/event-stream" in head.lower()
        assert b"x-stream: 1" in head.lower()
        assert b"data: one\n\n" in body
        assert b"event: tick\nid: 2\nretry: 500\ndata: two\ndata: lines\n\n" in body
        first_at = next(at for at, chunk in arrivals if b"data: one" in chunk)
        assert first_at < upstream.second_event_at  # relayed before the next one existed
        with anyio.fail_after(5):
            await upstream.gone.wait()
    assert upstream.disconnects[0]["type"] == "sse.disconnect"


async def test_sse_decline_passes_through() -> None:
    async with proxied() as (_, front):
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{front}/nowhere", headers={"accept": "text/event-stream"})
    assert (r.status_code, r.text) == (404, "no stream")


def test_event_stream_parser() -> None:
    parser = EventStreamParser()
    out = parser.feed(b"\xef\xbb\xbfdata: a\r")
    out += parser.feed(b"\ndata:b\r\n\r\n: note\n")
    out += parser.feed(b"id: 7\nid: bad\x00\nevent: e\nretry: x\nretry: 9\ndata\n\n")
    out += parser.feed(b"id: only\n\ndata: cut")
    assert out == [
        {"type": "sse.send", "data": "a\nb"},
        {"type": "sse.comment", "comment": " note"},
        {"type": "sse.send", "data": "", "id": "7", "event": "e", "retry": 9},
    ]


# -- websocket -------------------------------------------------------------------------------


async def test_websocket_echo_and_close_codes_both_ways() -> None:
    async with proxied() as (upstream, front):

        def talk() -> tuple[Any, ...]:
            with connect(f"ws://{front}/ws", subprotocols=["echo"]) as ws:  # type: ignore[list-item]
                ws.send("hi")
                text = ws.recv(timeout=5)
                ws.send(b"\x01\x02\x03")
                data = ws.recv(timeout=5)
                ws.send("close-me")
                try:
                    ws.recv(timeout=5)
                except ConnectionClosed:
                    pass
                assert ws.close_code is not None
                return ws.subprotocol, text, data, ws.close_code, ws.close_reason

        subprotocol, text, data, code, reason = await anyio.to_thread.run_sync(talk)
        assert (subprotocol, text, data) == ("echo", "echo:hi", b"\x03\x02\x01")
        assert (code, reason) == (4002, "bye now")  # upstream -> client

        def client_closes() -> None:
            with connect(f"ws://{front}/ws") as ws:
                ws.send("hello")
                assert ws.recv(timeout=5) == "echo:hello"
                ws.close(4001, "client bye")

        upstream.gone = anyio.Event()
        await anyio.to_thread.run_sync(client_closes)
        with anyio.fail_after(5):
            await upstream.gone.wait()
        assert upstream.disconnects[-1] == (4001, "client bye")  # client -> upstream


async def test_websocket_denial_and_502() -> None:
    async with proxied() as (_, front):

        def denied() -> tuple[int, bytes]:
            with pytest.raises(InvalidStatus) as info:
                connect(f"ws://{front}/deny")
            response = info.value.response
            return response.status_code, response.body or b""

        assert await anyio.to_thread.run_sync(denied) == (401, b"who are you?")
    async with live_server(Upstream()) as up:
        pass
    async with live_server(Proxy(f"http://{up}")) as front:

        def refused() -> int:
            with pytest.raises(InvalidStatus) as info:
                connect(f"ws://{front}/ws")
            return info.value.response.status_code

        assert await anyio.to_thread.run_sync(refused) == 502


# -- helpers ---------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
