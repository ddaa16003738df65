"""The Lint middleware: scope, receive and send checks with clear messages."""

from __future__ import annotations

from typing import Any

import pytest

from pagi.spec import EventError
from pagi.tools import PlainTextResponse, Router
from pagi.tools.middleware.lint import Lint, LintError, check_scope
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio
START = {"type": "http.response.start", "status": 200}


async def test_a_correct_app_passes_through() -> None:
    async with AsyncTestClient(Lint(Router()), lifespan="on") as client:
        assert (await client.get("/")).status_code == 404


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([{"type": "http.response.body", "body": b"x"}], "before http.response.start"),
        ([{"type": "http.response.start"}], "'status' is required"),
        (
            [{"type": "http.response.start", "status": 200, "headers": [(b"X", b"1\n")]}],
            "control byte",
        ),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body", "body": "str"},
            ],
            "must be bytes",
        ),
        ([{"type": "websocket.accept"}], "not an event a http application can send"),
    ],
)
async def test_bad_app_events_raise_lint_errors(events: list[dict[str, Any]], message: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for event in events:
            await send(event)

    with pytest.raises(LintError, match=message) as info:
        await AsyncTestClient(Lint(app), lifespan="off").get("/")
    assert info.value.side == "app" and isinstance(info.value, EventError)
    assert "Lint" in str(info.value)


async def test_returning_without_a_response_is_reported() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(LintError, match=r"returned without sending a response .*await"):
        await AsyncTestClient(Lint(app), lifespan="off").get("/")


async def test_in_place_scope_mutation_is_reported() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["path"] = "/changed"
        await PlainTextResponse("x")(scope, receive, send)

    with pytest.raises(LintError, match="R-MW-2"):
        await AsyncTestClient(Lint(app), lifespan="off").get("/")


async def test_bad_server_events_are_blamed_on_the_server() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async def bad_receive() -> Any:
        return {"type": "http.request", "body": "text"}

    scope = {
        "type": "http",
        "pagi": {"version": "0.3"},
        "path": "/",
        "query_string": b"",
        "headers": [],
        "method": "GET",
        "pagi.connection": object(),
    }
    with pytest.raises(LintError) as info:
        await Lint(app)(scope, bad_receive, None)  # type: ignore[arg-type]
    assert info.value.side == "server" and info.value.field == "body"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"path": b"/"}, "path"),
        ({"headers": [(b"Host", b"x")]}, "headers"),
        ({"method": "get"}, "method"),
        ({"pagi": {"version": 0.3}}, "pagi"),
        ({"pagi.connection": None}, "pagi.connection"),
    ],
)
def test_scope_checks(change: dict[str, Any], field: str) -> None:
    scope = {
        "type": "http",
        "pagi": {"version": "0.3"},
        "path": "/",
        "query_string": b"",
        "headers": [],
        "method": "GET",
        "pagi.connection": object(),
    }
    check_scope(scope)
    scope.update(change)
    if change.get("pagi.connection", 1) is None:
        del scope["pagi.connection"]
    with pytest.raises(LintError) as info:
        check_scope(scope)
    assert info.value.field == field
