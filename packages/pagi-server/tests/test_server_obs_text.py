"""The obs-text policy, enforced alike by both drivers (issue 15, item 1).

Field values may carry obs-text, bytes 0x80-0xFF (RFC 9110 5.5): the request
is served and the app gets the bytes exactly as sent. Request targets must be
visible ASCII (0x21-0x7E): HTTP/1.1 answers 400, HTTP/2 resets the stream
with PROTOCOL_ERROR (a malformed request, RFC 9113 8.1.1) and serves on. See
the README's "HTTP/1.x grammar" section.
"""

from __future__ import annotations

from typing import Any

import h2.events
import pytest
from h2.errors import ErrorCodes
from h2_client import H2Client, request_headers
from server_helpers import read_response

pytestmark = pytest.mark.anyio

OBS_TEXT = b"caf\xe9 \x80\xff \xc3\xa9"  # latin-1, raw high bytes, UTF-8
BAD_TARGETS = [b"/caf\xc3\xa9", b"/\x80", b"/a b", b"/a\x7fb"]


def _recording_app(seen: list[list[tuple[bytes, bytes]]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(list(scope["headers"]))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next(v for n, v in headers if n == name)


async def test_h1_obs_text_value_reaches_the_app_as_bytes(serve: Any) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []
    async with serve(_recording_app(seen)) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: t\r\nx-obs: " + OBS_TEXT + b"\r\n\r\n")
        response = await read_response(stream)
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nok")
    assert _value(seen[0], b"x-obs") == OBS_TEXT


@pytest.mark.parametrize("target", BAD_TARGETS)
async def test_h1_target_must_be_visible_ascii(serve: Any, target: bytes) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []
    async with serve(_recording_app(seen)) as running:
        stream = await running.connect()
        await stream.send(b"GET " + target + b" HTTP/1.1\r\nhost: t\r\n\r\n")
        response = await read_response(stream)
    assert response.startswith(b"HTTP/1.1 400 ")
    assert seen == []


async def test_h2_obs_text_value_reaches_the_app_as_bytes(serve: Any) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []
    async with serve(_recording_app(seen)) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        sid = await client.request(request_headers(extra=((b"x-obs", OBS_TEXT),)))
        events = await client.until(lambda seen: sid in client.ended())
        assert client.statuses() == {sid: b"200"}
        body = b"".join(
            e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert body == b"ok"
    assert _value(seen[0], b"x-obs") == OBS_TEXT


async def test_h2_path_must_be_visible_ascii(serve: Any) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []
    async with serve(_recording_app(seen)) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        bad = [await client.request(request_headers(path=target)) for target in BAD_TARGETS]
        good = await client.request(request_headers())
        await client.until(lambda seen: good in client.ended() and set(bad) <= set(client.resets()))
        assert [client.resets()[sid] for sid in bad] == [ErrorCodes.PROTOCOL_ERROR] * len(bad)
        assert client.statuses() == {good: b"200"}
        assert client.goaway() is None
    assert len(seen) == 1  # only the good request reached the app


async def test_h2_control_characters_in_values_are_refused_like_h1(serve: Any) -> None:
    """HTTP/1.1 refuses CTLs in field values (400); HTTP/2 makes them stream errors."""
    seen: list[list[tuple[bytes, bytes]]] = []
    async with serve(_recording_app(seen)) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        bad = [
            await client.request(request_headers(extra=((b"x-ctl", value),)))
            for value in (b"a\x01b", b"a\x1fb", b"a\x7fb")
        ]
        tab = await client.request(request_headers(extra=((b"x-tab", b"a\tb"),)))
        await client.until(lambda seen: tab in client.ended() and set(bad) <= set(client.resets()))
        assert [client.resets()[sid] for sid in bad] == [ErrorCodes.PROTOCOL_ERROR] * len(bad)
        assert client.statuses() == {tab: b"200"}
    assert len(seen) == 1 and _value(seen[0], b"x-tab") == b"a\tb"
