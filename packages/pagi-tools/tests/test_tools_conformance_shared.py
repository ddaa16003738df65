"""One conformance table, two backends: the in-process test client and the real server.

Issue 15, item 5. Each case is an app fragment (what it sends, in order) and
the outcome a client must see: status, the content-length field, the body,
whether it was truncated, and the errors the app's ``send`` raised (type and
field). The same case runs against ``pagi.tools.testing.AsyncTestClient`` and
against ``pagi.server.Server`` over a raw HTTP/1.1 socket, with the same
expected outcome, so the test client cannot drift from the server again.

The second half runs one behavioural test of ``pagi.connection`` against the
test client's ``FakeConnection`` and the server's ``RequestConnection``
through real requests: callbacks registered before and after the end,
exactly one of ``on_disconnect``/``on_complete`` firing, ``is_connected``,
``disconnect_reason`` and ``disconnect_future``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from server_helpers import read_until_close, serve_app

from pagi.tools.testing import AppProtocolError, AsyncTestClient

pytestmark = pytest.mark.anyio

DATA = b"0123456789"

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Ctx:
    """What a case's app fragment gets: ``send`` that records errors, and the data file."""

    raw_send: Send
    path: Path
    errors: list[str] = field(default_factory=list)

    async def send(self, event: dict[str, Any]) -> None:
        """Send, recording an exception as ``Type:field`` instead of raising it."""
        try:
            await self.raw_send(event)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}:{getattr(exc, 'field', None)}")


@dataclass(frozen=True)
class Outcome:
    status: int
    content_length: str | None
    body: bytes
    truncated: bool
    errors: tuple[str, ...] = ()


def _start(status: int = 200, length: int | None = None, **extra: Any) -> dict[str, Any]:
    headers = [(b"content-type", b"application/octet-stream")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


def _body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more": more}


Script = Callable[[Ctx], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    id: str
    script: Script
    expect: Outcome
    method: str = "GET"


def _fh_case(
    id: str, position: int, expect: bytes, length_header: bool = False, **fields: int
) -> Case:
    """An ``fh`` body from a handle standing at ``position``, with ``offset``/``length``."""

    async def script(ctx: Ctx) -> None:
        with open(ctx.path, "rb") as fh:
            fh.seek(position)
            await ctx.send(_start(length=len(expect) if length_header else None))
            await ctx.send({"type": "http.response.body", "fh": fh, **fields})

    cl = str(len(expect)) if length_header else None
    return Case(id, script, Outcome(200, cl, expect, False))


def _file_case(id: str, expect: bytes, **fields: int) -> Case:
    async def script(ctx: Ctx) -> None:
        await ctx.send(_start(length=len(expect)))
        await ctx.send({"type": "http.response.body", "file": str(ctx.path), **fields})

    return Case(id, script, Outcome(200, str(len(expect)), expect, False))


def _sends(*events: dict[str, Any]) -> Script:
    async def script(ctx: Ctx) -> None:
        for event in events:
            await ctx.send(event)

    return script


async def _fh_over_run(ctx: Ctx) -> None:
    with open(ctx.path, "rb") as fh:
        await ctx.send(_start(length=3))
        await ctx.send({"type": "http.response.body", "fh": fh})  # 10 bytes: refused
    await ctx.send(_body(b"abc"))


async def _fh_under_run(ctx: Ctx) -> None:
    with open(ctx.path, "rb") as fh:
        await ctx.send(_start(length=10))
        await ctx.send({"type": "http.response.body", "fh": fh, "offset": 5})


CASES = [
    # File bodies (R-HFILE, decision A-45: an fh offset is absolute, absent = where it stands).
    _fh_case("fh-no-offset-reads-from-position", 3, DATA[3:]),
    _fh_case("fh-offset-0-seeks-to-start", 3, DATA, offset=0),
    _fh_case("fh-offset-0-seeks-to-start-with-length", 3, DATA, length_header=True, offset=0),
    _fh_case("fh-no-offset-with-length-header", 4, DATA[4:], length_header=True),
    _fh_case("fh-offset-and-length", 3, DATA[5:7], offset=5, length=2),
    _fh_case("fh-length-from-position", 2, DATA[2:6], length=4),
    _fh_case("fh-length-past-end", 0, DATA[8:], offset=8, length=10),
    _fh_case("fh-offset-past-end", 0, b"", offset=20),
    _file_case("file-whole", DATA),
    _file_case("file-offset-and-length", DATA[2:5], offset=2, length=3),
    _file_case("file-offset-only", DATA[6:], offset=6),
    # Bodiless responses (RFC 9110 9.3.2, 15.3.5, 15.4.5): headers kept, body dropped.
    Case(
        "head-drops-body",
        _sends(_start(length=5), _body(b"hello")),
        Outcome(200, "5", b"", False),
        method="HEAD",
    ),
    Case(
        "head-short-body-is-not-an-under-run",
        _sends(_start(length=5), _body(b"hi")),
        Outcome(200, "5", b"", False),
        method="HEAD",
    ),
    Case(
        "head-no-body-events-beyond-the-final",
        _sends(_start(length=100), _body()),
        Outcome(200, "100", b"", False),
        method="HEAD",
    ),
    Case("204-drops-body", _sends(_start(204), _body(b"xyz")), Outcome(204, None, b"", False)),
    Case(
        "304-keeps-length-drops-body",
        _sends(_start(304, length=10), _body(b"abc")),
        Outcome(304, "10", b"", False),
    ),
    Case(
        "304-no-body-is-not-an-under-run",
        _sends(_start(304, length=10), _body()),
        Outcome(304, "10", b"", False),
    ),
    # Content-length: over-run raises naming the field and changes nothing; under-run truncates.
    Case(
        "content-length-over-run-in-one-event",
        _sends(_start(length=5), _body(b"toolong"), _body(b"hello")),
        Outcome(200, "5", b"hello", False, ("EventError:body",)),
    ),
    Case(
        "content-length-over-run-across-events",
        _sends(_start(length=5), _body(b"hel", more=True), _body(b"loXX"), _body(b"lo")),
        Outcome(200, "5", b"hello", False, ("EventError:body",)),
    ),
    Case(
        "content-length-over-run-fh",
        _fh_over_run,
        Outcome(200, "3", b"abc", False, ("EventError:body",)),
    ),
    Case(
        "content-length-under-run",
        _sends(_start(length=10), _body(b"hello")),
        Outcome(200, "10", b"hello", True),
    ),
    Case(
        "content-length-under-run-across-events",
        _sends(_start(length=10), _body(b"hel", more=True), _body(b"lo")),
        Outcome(200, "10", b"hello", True),
    ),
    Case("content-length-under-run-fh", _fh_under_run, Outcome(200, "10", DATA[5:], True)),
    Case(
        "content-length-invalid",
        _sends(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"x")]},
            _start(length=2),
            _body(b"ok"),
        ),
        Outcome(200, "2", b"ok", False, ("EventError:headers",)),
    ),
    # Ordering errors (R-HTTP-32): raised by send, the response goes on.
    Case(
        "body-before-start",
        _sends(_body(b"early"), _start(length=2), _body(b"ok")),
        Outcome(200, "2", b"ok", False, ("EventOrderError:None",)),
    ),
    Case(
        "start-twice",
        _sends(_start(length=2), _start(201, length=2), _body(b"ok")),
        Outcome(200, "2", b"ok", False, ("EventOrderError:None",)),
    ),
    Case(
        "body-after-end",
        _sends(_start(length=2), _body(b"ok"), _body(b"late")),
        Outcome(200, "2", b"ok", False, ("EventOrderError:None",)),
    ),
    Case(
        "start-after-end",
        _sends(_start(length=2), _body(b"ok"), _start(500)),
        Outcome(200, "2", b"ok", False, ("EventOrderError:None",)),
    ),
]


def _app(case: Case, path: Path, errors: list[tuple[str, ...]], done: anyio.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ctx = Ctx(send, path)
        try:
            await case.script(ctx)
        finally:
            errors.append(tuple(ctx.errors))
            done.set()

    return app


async def _via_test_client(case: Case, path: Path) -> Outcome:
    errors: list[tuple[str, ...]] = []
    done = anyio.Event()
    app = _app(case, path, errors, done)
    async with AsyncTestClient(app, raise_app_exceptions=False, lifespan="off") as c:
        response = await c.request(case.method, "/")
    exc = response.exception
    truncated = isinstance(exc, AppProtocolError) and "content-length" in str(exc)
    assert exc is None or truncated, f"unexpected app exception {exc!r}"
    return Outcome(
        response.status_code,
        response.headers.get("content-length"),
        response.content,
        truncated,
        errors[0],
    )


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """The body of a chunked message and whether it ended properly."""
    out = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return out, False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return out, rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            return out + rest[:size], False
        out += rest[:size]
        data = rest[size + 2 :]


async def _via_server(case: Case, path: Path) -> Outcome:
    errors: list[tuple[str, ...]] = []
    done = anyio.Event()
    async with serve_app(_app(case, path, errors, done)) as running:
        stream = await running.connect()
        await stream.send(
            f"{case.method} / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".encode()
        )
        raw = await read_until_close(stream)
        with anyio.fail_after(5):
            await done.wait()
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode()] = value.strip().decode()
    length = fields.get("content-length")
    bodiless = case.method == "HEAD" or status in (204, 304)
    if bodiless:
        body, truncated = rest, False
    elif fields.get("transfer-encoding") == "chunked":
        body, complete = _dechunk(rest)
        truncated = not complete
    else:
        assert length is not None, "a body framed by close"
        body, truncated = rest, len(rest) < int(length)
        assert len(rest) <= int(length), "bytes past the content-length"
    return Outcome(status, length, body, truncated, errors[0])


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize("backend", ["test-client", "server"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_shared_conformance_case(case: Case, backend: str, data_file: Path) -> None:
    run = _via_test_client if backend == "test-client" else _via_server
    assert await run(case, data_file) == case.expect


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


# --- pagi.connection: one behavioural test, both implementations ---------------------


@dataclass
class Seen:
    calls: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    done: anyio.Event = field(default_factory=anyio.Event)


async def _future_resolved(conn: Any) -> str | None:
    """The reason if ``disconnect_future()`` resolves without blocking, else ``None``."""
    with anyio.move_on_after(0.05):
        return str(await conn.disconnect_future())
    return None


def _connection_app(seen: Seen, abnormal: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        calls = seen.calls
        try:
            conn.on_disconnect(lambda reason: calls.append(f"disconnect:{reason}"))
            conn.on_complete(lambda: calls.append("complete"))
            seen.checks["before"] = (conn.is_connected(), conn.disconnect_reason())
            await send(_start(length=4))
            seen.checks["started"] = (conn.response_started(), conn.response_complete())
            if abnormal:
                await send(_body(b"ab", more=True))
                seen.checks["reason"] = str(await conn.disconnect_future())
                await send(_body(b"cd"))  # a no-op now (R-HTTP-61)
            else:
                await send(_body(b"abcd"))
                seen.checks["reason"] = await _future_resolved(conn)
            seen.checks["after"] = (
                conn.is_connected(),
                conn.disconnect_reason(),
                conn.response_complete(),
            )
            calls.append("late registration")
            conn.on_disconnect(lambda reason: calls.append(f"late disconnect:{reason}"))
            conn.on_complete(lambda: calls.append("late complete"))
        finally:
            seen.done.set()

    return app


async def _connection_via_test_client(abnormal: bool) -> Seen:
    seen = Seen()
    async with AsyncTestClient(_connection_app(seen, abnormal), lifespan="off") as client:
        if abnormal:
            async with client.stream("GET", "/") as response:
                async for chunk in response.aiter_bytes():
                    assert chunk == b"ab"
                    break
        else:
            assert (await client.get("/")).content == b"abcd"
    with anyio.fail_after(5):
        await seen.done.wait()
    return seen


async def _connection_via_server(abnormal: bool) -> Seen:
    seen = Seen()
    async with serve_app(_connection_app(seen, abnormal)) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        received = b""
        with anyio.fail_after(5):
            while not received.endswith(b"ab" if abnormal else b"abcd"):
                received += await stream.receive()
        if abnormal:
            await stream.aclose()
        with anyio.fail_after(5):
            await seen.done.wait()
    return seen


@pytest.mark.parametrize("backend", ["test-client", "server"])
async def test_connection_success_fires_only_on_complete(backend: str) -> None:
    run = _connection_via_test_client if backend == "test-client" else _connection_via_server
    seen = await run(False)
    assert seen.checks == {
        "before": (True, None),
        "started": (True, False),
        "reason": None,  # the future never resolves on success (R-CONN-20)
        "after": (False, None, True),  # the request is over (decision on A-39)
    }
    # Exactly one outcome; a late on_complete runs at once, a late on_disconnect never.
    assert seen.calls == ["complete", "late registration", "late complete"]


@pytest.mark.parametrize("backend", ["test-client", "server"])
async def test_connection_disconnect_fires_only_on_disconnect(backend: str) -> None:
    run = _connection_via_test_client if backend == "test-client" else _connection_via_server
    seen = await run(True)
    assert seen.checks == {
        "before": (True, None),
        "started": (True, False),
        "reason": "client_closed",
        "after": (False, "client_closed", False),
    }
    assert seen.calls == [
        "disconnect:client_closed",
        "late registration",
        "late disconnect:client_closed",
    ]
