"""Request: scope accessors, body once with a cap, streaming, text/json, forms and uploads."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import JSONResponse, Request
from pagi.tools.exceptions import BodyConsumedError, BodyTooLarge, HTTPException
from pagi.tools.forms import FormLimits
from pagi.tools.handlers import request_response
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


def handler_app(handler: Any) -> Any:
    return request_response(handler)


async def test_scope_accessors() -> None:
    async def show(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path.decode(),
                "url": str(request.url),
                "query": request.query_params.getlist("tag"),
                "headers": request.headers.getlist("x-multi"),
                "cookies": request.cookies,
                "client": list(request.client or ()),
                "content_type": request.content_type,
                "charset": request.charset,
                "bearer": request.bearer_token,
            }
        )

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.get(
            "/a%20b?tag=x&tag=y",
            headers=[
                ("x-multi", "1"),
                ("x-multi", "2"),
                ("cookie", "sid=abc; theme=dark"),
                ("content-type", "text/plain; charset=latin-1"),
                ("authorization", "Bearer tok"),
            ],
        )
    assert r.json() == {
        "method": "GET",
        "path": "/a b",
        "raw_path": "/a%20b",
        "url": "http://testserver/a%20b?tag=x&tag=y",
        "query": ["x", "y"],
        "headers": ["1", "2"],
        "cookies": {"sid": "abc", "theme": "dark"},
        "client": ["127.0.0.1", 50000],
        "content_type": "text/plain",
        "charset": "latin-1",
        "bearer": "tok",
    }


async def test_basic_auth_password_may_contain_colon() -> None:
    async def show(request: Request) -> Any:
        return {"auth": request.basic_auth}

    token = base64.b64encode(b"ann:se:cret").decode()
    async with AsyncTestClient(handler_app(show)) as client:
        assert (await client.get("/", headers={"authorization": f"Basic {token}"})).json() == {
            "auth": ["ann", "se:cret"]
        }
        assert (await client.get("/")).json() == {"auth": None}


async def test_body_is_read_once_and_cached_across_views() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        first = await Request(scope, receive).body()
        second = await Request(scope, receive).body()  # another view, same scope
        text = await Request(scope, receive).text()
        await JSONResponse({"same": first == second, "text": text})(scope, receive, send)

    async with AsyncTestClient(app) as client:
        r = await client.post("/", content="héllo", chunk_size=2)
    assert r.json() == {"same": True, "text": "héllo"}


async def test_stream_yields_chunks_then_buffered_helpers_refuse() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        seen.extend([chunk async for chunk in request.stream()])
        with pytest.raises(BodyConsumedError):
            await request.body()
        await JSONResponse({})(scope, receive, send)

    async with AsyncTestClient(app) as client:
        await client.post("/", content=b"abcdefg", chunk_size=3)
    assert seen == [b"abc", b"def", b"g"]


async def test_body_size_cap_gives_413() -> None:
    async def show(request: Request) -> Any:
        request.max_body_size = 5
        return {"len": len(await request.body())}

    async with AsyncTestClient(handler_app(show)) as client:
        assert (await client.post("/", content=b"12345")).json() == {"len": 5}
        r = await client.post("/", content=b"123456")
        assert r.status_code == 413
        # Without a Content-Length the cap trips while reading.
        r = await client.post("/", content=b"123456", headers={"content-length": "x"}, chunk_size=2)
        assert r.status_code == 413


async def test_text_uses_declared_charset_and_json_errors_are_400() -> None:
    async def show(request: Request) -> Any:
        if request.content_type == "application/json":
            return {"json": await request.json()}
        return {"text": await request.text()}

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post(
            "/",
            content="café".encode("latin-1"),
            headers={"content-type": "text/plain; charset=latin-1"},
        )
        assert r.json() == {"text": "café"}
        assert (await client.post("/", json={"a": [1, 2]})).json() == {"json": {"a": [1, 2]}}
        bad = await client.post("/", content=b"{nope", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "not valid JSON" in bad.text


async def test_urlencoded_form_multi_values() -> None:
    async def show(request: Request) -> Any:
        form = await request.form()
        return {"a": form.getlist("a"), "b": form.get_text("b")}

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post("/", data={"a": ["1", "2"], "b": "x y"})
    assert r.json() == {"a": ["1", "2"], "b": "x y"}


async def test_multipart_upload_spools_to_disk_and_is_cleaned_up() -> None:
    uploads: list[Any] = []

    async def show(request: Request) -> Any:
        form = await request.form(FormLimits(spool_max_size=10))
        upload = form["doc"]
        uploads.append(upload)
        return {
            "title": form["title"],
            "filename": upload.filename,  # type: ignore[union-attr]
            "type": upload.content_type,  # type: ignore[union-attr]
            "size": upload.size,  # type: ignore[union-attr]
            "on_disk": not upload.in_memory,  # type: ignore[union-attr]
            "data": (await upload.read()).decode(),  # type: ignore[union-attr]
        }

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post(
            "/",
            data={"title": "Report"},
            files={"doc": ("r.txt", b"x" * 50, "text/plain")},
            chunk_size=7,
        )
    assert r.json() == {
        "title": "Report",
        "filename": "r.txt",
        "type": "text/plain",
        "size": 50,
        "on_disk": True,
        "data": "x" * 50,
    }
    assert uploads[0].file.closed  # the route closed the form after responding


async def test_multipart_rfc5987_filename_and_basename(tmp_path: Any) -> None:
    body = (
        b'--XX\r\ncontent-disposition: form-data; name="f"; filename="a.txt"; '
        b"filename*=UTF-8''na%C3%AFve.txt\r\n\r\nhi\r\n--XX--\r\n"
    )

    async def show(request: Request) -> Any:
        upload = (await request.form())["f"]
        target = tmp_path / "saved" / "out.txt"
        await upload.save(target)  # type: ignore[union-attr]
        return {"name": upload.filename, "saved": target.read_text()}  # type: ignore[union-attr]

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post(
            "/", content=body, headers={"content-type": "multipart/form-data; boundary=XX"}
        )
    assert r.json() == {"name": "naïve.txt", "saved": "hi"}


@pytest.mark.parametrize(
    ("limits", "files", "data"),
    [
        (FormLimits(max_file_size=10), {"f": ("a", b"x" * 11)}, None),
        (FormLimits(max_field_size=3), None, {"a": "1234"}),
        (FormLimits(max_parts=2), None, {"a": "1", "b": "2", "c": "3"}),
        (FormLimits(max_total_size=100), {"f": ("a", b"x" * 200)}, None),
    ],
)
async def test_multipart_limits_give_413(limits: FormLimits, files: Any, data: Any) -> None:
    async def show(request: Request) -> Any:
        await request.form(limits)
        return {}

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post("/", data=data, files=files or {"z": ("z", b"")})
    assert r.status_code == 413, r.text


async def test_truncated_multipart_is_400() -> None:
    async def show(request: Request) -> Any:
        await request.form()
        return {}

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.post(
            "/",
            content=b'--XX\r\ncontent-disposition: form-data; name="a"\r\n\r\nhal',
            headers={"content-type": "multipart/form-data; boundary=XX"},
        )
        assert r.status_code == 400
        r = await client.post("/", content=b"x", headers={"content-type": "multipart/form-data"})
        assert r.status_code == 400 and "boundary" in r.text


async def test_is_disconnected_reads_connection_state_without_consuming() -> None:
    states: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        states.append(await request.is_disconnected())
        body = await request.body()  # still intact: nothing was consumed
        await JSONResponse({"body": body.decode()})(scope, receive, send)
        states.append((request.disconnected, request.disconnect_reason))

    async with AsyncTestClient(app, lifespan="off") as client:
        r = await client.post("/", content=b"kept")
    assert r.json() == {"body": "kept"}
    # After the response the request is over: is_connected() is false as on the
    # server (decision on A-39), and the reason stays None (not an abnormal end).
    assert states == [False, (True, None)]


async def test_content_negotiation_helpers() -> None:
    async def show(request: Request) -> Any:
        return {"json": request.accepts("json"), "best": request.best_match(["html", "json"])}

    async with AsyncTestClient(handler_app(show)) as client:
        r = await client.get("/", headers={"accept": "text/html;q=0.5, application/json"})
    assert r.json() == {"json": True, "best": "json"}


async def test_path_param_lookup_lists_available_names() -> None:
    request = Request({"type": "http", "path_params": {"id": 1}})
    assert request.path_param("id") == 1
    with pytest.raises(KeyError, match=r"available: \['id'\]"):
        request.path_param("name")


async def test_state_and_stash_are_separate() -> None:
    scope: dict[str, Any] = {"type": "http", "state": {"db": "pool"}}
    request = Request(scope)
    request.stash["user"] = "ann"
    assert request.state == {"db": "pool"}
    assert scope["pagi.stash"] == {"user": "ann"}


def test_http_exception_defaults_to_phrase() -> None:
    assert HTTPException(418).detail == "I'm a Teapot"
    assert str(BodyTooLarge("big")) == "413: big"
