"""ETag and ConditionalGet, and the shared pagi.tools.conditional rules."""

from __future__ import annotations

from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import PlainTextResponse, Response, StreamingResponse
from pagi.tools.conditional import evaluate_preconditions
from pagi.tools.middleware import ConditionalGet, ETag, OptionError
from pagi.tools.middleware.etag import body_etag
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def app_for(response: Response) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)

    return app


async def test_etag_hashes_single_bodies() -> None:
    client = AsyncTestClient(Lint(ETag(app_for(PlainTextResponse("hello")))))
    first = await client.get("/")
    assert first.headers["etag"] == body_etag(b"hello")
    assert first.headers["etag"].startswith('"')
    other = await AsyncTestClient(ETag(app_for(PlainTextResponse("hellO")))).get("/")
    assert other.headers["etag"] != first.headers["etag"]
    weak = await AsyncTestClient(ETag(app_for(PlainTextResponse("hello")), weak=True)).get("/")
    assert weak.headers["etag"] == "W/" + first.headers["etag"]


async def test_etag_leaves_streams_errors_existing_tags_and_head_alone() -> None:
    streamed = await AsyncTestClient(ETag(app_for(StreamingResponse([b"a", b"b"])))).get("/")
    assert "etag" not in streamed.headers and streamed.content == b"ab"
    error = await AsyncTestClient(ETag(app_for(PlainTextResponse("x", 404)))).get("/")
    assert "etag" not in error.headers
    tagged = PlainTextResponse("x", headers={"etag": '"mine"'})
    assert (await AsyncTestClient(ETag(app_for(tagged))).get("/")).headers["etag"] == '"mine"'
    head = await AsyncTestClient(ETag(app_for(PlainTextResponse("x")))).head("/")
    assert "etag" not in head.headers


def test_etag_bad_option() -> None:
    with pytest.raises(OptionError, match="'weak'"):
        ETag(app_for(PlainTextResponse("")), weak="no")  # type: ignore[arg-type]


async def test_conditional_get_turns_a_match_into_304_with_cache_headers_only() -> None:
    response = PlainTextResponse(
        "hello", headers={"cache-control": "max-age=60", "x-other": "1", "vary": "accept"}
    )
    client = AsyncTestClient(Lint(ConditionalGet(ETag(app_for(response)))))
    tag = (await client.get("/")).headers["etag"]
    cached = await client.get("/", headers={"if-none-match": f'"nope", {tag}'})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == tag
    assert cached.headers["cache-control"] == "max-age=60"
    assert cached.headers["vary"] == "accept"
    assert "x-other" not in cached.headers and "content-length" not in cached.headers
    # Weak comparison for If-None-Match: W/"x" matches "x".
    assert (await client.get("/", headers={"if-none-match": f"W/{tag}"})).status_code == 304
    changed = await client.get("/", headers={"if-none-match": '"other"'})
    assert changed.status_code == 200 and changed.text == "hello"


async def test_conditional_get_dates_and_412s() -> None:
    response = PlainTextResponse("body", headers={"last-modified": LAST_MODIFIED, "etag": '"v1"'})
    client = AsyncTestClient(Lint(ConditionalGet(app_for(response))))
    later = "Thu, 22 Oct 2015 07:28:00 GMT"
    earlier = "Tue, 20 Oct 2015 07:28:00 GMT"
    assert (await client.get("/", headers={"if-modified-since": later})).status_code == 304
    assert (await client.get("/", headers={"if-modified-since": earlier})).status_code == 200
    assert (await client.get("/", headers={"if-unmodified-since": earlier})).status_code == 412
    assert (await client.get("/", headers={"if-match": '"v2"'})).status_code == 412
    assert (await client.get("/", headers={"if-match": '"v1"'})).status_code == 200
    # For other methods If-None-Match is a 412 and If-Match compares strongly.
    assert (await client.put("/", headers={"if-none-match": '"v1"'})).status_code == 412
    failed = await client.put("/", headers={"if-match": 'W/"v1"'})
    assert failed.status_code == 412 and failed.content == b""


async def test_conditional_get_passes_non_2xx_and_untagged_responses() -> None:
    missing = AsyncTestClient(
        ConditionalGet(app_for(PlainTextResponse("no", 404, {"etag": '"a"'})))
    )
    assert (await missing.get("/", headers={"if-none-match": '"a"'})).status_code == 404
    plain = AsyncTestClient(ConditionalGet(app_for(PlainTextResponse("x"))))
    assert (await plain.get("/", headers={"if-none-match": "*"})).status_code == 200


async def test_conditional_get_drops_a_streamed_body() -> None:
    stream = StreamingResponse([b"a", b"b"], headers={"etag": '"s"'})
    client = AsyncTestClient(Lint(ConditionalGet(app_for(stream))))
    got = await client.get("/", headers={"if-none-match": '"s"'})
    assert got.status_code == 304 and got.content == b""


@pytest.mark.parametrize(
    ("method", "headers", "etag", "mtime", "expected"),
    [
        ("GET", {"if-none-match": '"a"'}, '"a"', None, 304),
        ("GET", {"if-none-match": '"a"'}, None, None, None),
        ("GET", {"if-none-match": "*"}, None, None, 304),
        ("GET", {"if-match": "*"}, None, None, None),
        ("GET", {"if-match": '"a"'}, None, None, 412),
        ("GET", {"if-modified-since": LAST_MODIFIED}, None, None, None),
        ("POST", {"if-none-match": 'W/"a"'}, '"a"', None, 412),
        ("POST", {"if-match": '"a"'}, 'W/"a"', None, 412),
    ],
)
def test_preconditions_without_some_validators(
    method: str, headers: dict[str, str], etag: str | None, mtime: float | None, expected: Any
) -> None:
    assert evaluate_preconditions(method, headers, etag, mtime) == expected
