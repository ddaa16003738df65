"""Pure building blocks: headers, multi-dicts, query params, cookies, negotiation, ranges."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pagi.tools.conditional import (
    Unsatisfiable,
    etag_for,
    evaluate_preconditions,
    http_date,
    parse_range,
    range_applies,
)
from pagi.tools.cookies import format_set_cookie, parse_cookie_header
from pagi.tools.datastructures import URL, MultiDict, QueryParams
from pagi.tools.headers import Headers, MutableHeaders
from pagi.tools.negotiation import accepts, best_match, parse_accept, quality


def test_headers_case_insensitive_multi_valued_ordered() -> None:
    h = Headers(raw=[(b"Accept", b"a"), (b"x-y", b"1"), (b"accept", b"b")])
    assert h["ACCEPT"] == "a"
    assert h.getlist("accept") == ["a", "b"]
    assert list(h) == ["accept", "x-y"]
    assert "X-Y" in h and "nope" not in h
    assert h.multi_items() == [("accept", "a"), ("x-y", "1"), ("accept", "b")]


def test_mutable_headers_set_append_delete_vary() -> None:
    h = MutableHeaders({"Content-Type": "text/plain"})
    h.append("set-cookie", "a=1")
    h.append("set-cookie", "b=2")
    h["content-type"] = "text/html"
    assert h.raw[0] == (b"content-type", b"text/html")
    assert h.getlist("set-cookie") == ["a=1", "b=2"]
    h.add_vary("Accept")
    h.add_vary("accept")
    h.add_vary("Origin")
    assert h["vary"] == "Accept, Origin"
    del h["set-cookie"]
    assert "set-cookie" not in h
    with pytest.raises(KeyError):
        del h["set-cookie"]
    assert h.setdefault("x", "1") == "1" and h.setdefault("x", "2") == "1"


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00b"])
def test_header_values_with_control_bytes_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="x-test"):
        MutableHeaders()["x-test"] = value


def test_header_names_must_be_tokens_and_text_latin1() -> None:
    with pytest.raises(ValueError):
        MutableHeaders()["bad name"] = "v"
    with pytest.raises(ValueError, match="latin-1"):
        MutableHeaders()["x"] = "snow ☃"


def test_multidict_last_value_wins_and_getlist() -> None:
    md = MultiDict([("a", 1), ("b", 2), ("a", 3)])
    assert md["a"] == 3 and md.getlist("a") == [1, 3] and len(md) == 2
    assert list(md) == ["a", "b"]


def test_query_params_decoding() -> None:
    q = QueryParams(b"a=1&a=2&name=J%C3%BCrgen+X&empty=&bad=%FF")
    assert q.getlist("a") == ["1", "2"]
    assert q["name"] == "Jürgen X"
    assert q["empty"] == ""
    assert q["bad"] == "\ufffd"


def test_url_from_scope_uses_host_root_path_and_query() -> None:
    scope = {
        "type": "http",
        "scheme": "https",
        "path": "/b c",
        "root_path": "/app",
        "query_string": b"x=1",
        "headers": [(b"host", b"example.com")],
    }
    url = URL.from_scope(scope)
    assert str(url) == "https://example.com/app/b%20c?x=1"
    assert url.hostname == "example.com"
    assert str(url.include_query_params(y="2")) == "https://example.com/app/b%20c?x=1&y=2"


def test_cookie_parsing_is_tolerant() -> None:
    assert parse_cookie_header('a=1; b="two"; junk; c=3=3; a=9') == {
        "a": "1",
        "b": "two",
        "c": "3=3",
    }


def test_set_cookie_has_every_attribute() -> None:
    value = format_set_cookie(
        "sid",
        "abc",
        max_age=60,
        expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        path="/p",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="none",
        partitioned=True,
    )
    assert value == (
        "sid=abc; Max-Age=60; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/p; "
        "Domain=example.com; Secure; HttpOnly; SameSite=None; Partitioned"
    )


@pytest.mark.parametrize(
    ("key", "value", "options"),
    [
        ("bad name", "v", {}),
        ("k", "a;b", {}),
        ("k", "a b", {}),
        ("k", "v", {"samesite": "none"}),
        ("k", "v", {"path": "/a;b"}),
        ("k", "v", {"samesite": "weird"}),
    ],
)
def test_set_cookie_refuses_unsafe_input(key: str, value: str, options: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        format_set_cookie(key, value, **options)  # type: ignore[arg-type]


def test_accept_parsing_orders_by_q_then_specificity() -> None:
    items = parse_accept("text/*;q=0.5, application/json, */*;q=0.1, text/html")
    assert [i.media_type for i in items] == ["application/json", "text/html", "text/*", "*/*"]


def test_negotiation_best_match_and_shortcuts() -> None:
    accept = "text/html;q=0.9, application/json"
    assert best_match(["html", "json"], accept) == "json"
    assert best_match(["text/html", "image/png"], accept) == "text/html"
    assert best_match(["image/png"], accept) is None
    assert best_match(["json", "html"], None) == "json"  # no Accept: first offer wins
    assert not accepts("application/json;q=0, */*", "json")
    assert quality("text/*;q=0.3, text/plain;q=0.7", "text/plain") == 0.7


def test_range_parsing() -> None:
    assert parse_range("bytes=0-9", 100) == [(0, 10)]
    assert parse_range("bytes=-10", 100) == [(90, 100)]
    assert parse_range("bytes=-500", 100) == [(0, 100)]
    assert parse_range("bytes=90-", 100) == [(90, 100)]
    assert parse_range("bytes=90-200", 100) == [(90, 100)]
    assert parse_range("bytes=0-4, 2-9, 50-59", 100) == [(0, 10), (50, 60)]
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=5-1", 100) is None
    assert parse_range("bytes=" + ",".join(["0-0"] * 17), 100) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=100-", 100)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-0", 100)


def test_preconditions_follow_rfc_order() -> None:
    etag = etag_for(10, 123)
    mtime = 1_000_000.0
    date = http_date(mtime)
    assert evaluate_preconditions("GET", {"if-none-match": etag}, etag, mtime) == 304
    assert evaluate_preconditions("GET", {"if-none-match": f"W/{etag}"}, etag, mtime) == 304
    assert evaluate_preconditions("PUT", {"if-none-match": "*"}, etag, mtime) == 412
    assert evaluate_preconditions("GET", {"if-modified-since": date}, etag, mtime) == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    assert (
        evaluate_preconditions(
            "GET", {"if-none-match": '"x"', "if-modified-since": date}, etag, mtime
        )
        is None
    )
    assert evaluate_preconditions("GET", {"if-match": '"other"'}, etag, mtime) == 412
    assert (
        evaluate_preconditions("GET", {"if-unmodified-since": http_date(mtime - 10)}, etag, mtime)
        == 412
    )
    assert range_applies({"if-range": etag}, etag, mtime)
    assert not range_applies({"if-range": '"stale"'}, etag, mtime)
    assert range_applies({"if-range": date}, etag, mtime)
