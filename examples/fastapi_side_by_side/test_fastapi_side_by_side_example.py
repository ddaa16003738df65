"""One set of client checks, run against the FastAPI original and the pagi-tools port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from example_harness import serve

VERSIONS = {
    "fastapi": ("fastapi_side_by_side/fastapi_app.py", "--interface", "asgi"),
    "pagi-tools": ("fastapi_side_by_side/app.py",),
}
JSON = {"content-type": "application/json"}


def field_errors(response: httpx.Response) -> list[tuple[list[object], str]]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["type"]) for e in response.json()["detail"]]


def check_the_api(http: httpx.Client) -> None:
    assert http.get("/items").json() == []
    made = http.post("/items", json={"name": "lamp", "price": 25, "tags": ["home"]})
    assert (made.status_code, made.json()) == (
        201,
        {"name": "lamp", "price": 25.0, "tags": ["home"], "id": 1},
    )
    http.post("/items", json={"name": "desk", "price": 120.5})
    assert [i["name"] for i in http.get("/items").json()] == ["lamp", "desk"]
    assert [i["name"] for i in http.get("/items?max_price=100").json()] == ["lamp"]
    assert http.get("/items/2").json() == {"name": "desk", "price": 120.5, "tags": [], "id": 2}

    # Validation: the same 422 body, field by field, from both.
    bad = http.post("/items", json={"name": "", "price": -1, "tags": "x"})
    assert bad.json() == {
        "detail": [
            {
                "type": "string_too_short",
                "loc": ["body", "name"],
                "msg": "String should have at least 1 character",
                "input": "",
                "ctx": {"min_length": 1},
            },
            {
                "type": "greater_than",
                "loc": ["body", "price"],
                "msg": "Input should be greater than 0",
                "input": -1,
                "ctx": {"gt": 0.0},
            },
            {
                "type": "list_type",
                "loc": ["body", "tags"],
                "msg": "Input should be a valid list",
                "input": "x",
            },
        ]
    }
    assert field_errors(http.post("/items", json={"price": 1})) == [(["body", "name"], "missing")]
    assert field_errors(http.post("/items", content=b'{"name": ', headers=JSON)) == [
        (["body", 9], "json_invalid")
    ]
    assert field_errors(http.post("/items", content=b"", headers=JSON)) == [(["body"], "missing")]
    assert field_errors(http.get("/items?max_price=cheap")) == [
        (["query", "max_price"], "float_parsing")
    ]
    assert field_errors(http.get("/items?max_price=0")) == [
        (["query", "max_price"], "greater_than")
    ]
    assert field_errors(http.get("/items/one")) == [(["path", "item_id"], "int_parsing")]

    # Misses and the wrong method, answered in JSON.
    assert http.get("/items/9").json() == {"detail": "Item not found"}
    assert http.get("/elsewhere").json() == {"detail": "Not Found"}
    wrong = http.put("/items/1")
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    assert "GET" in wrong.headers["allow"]

    assert http.delete("/items/1").status_code == 204
    assert http.delete("/items/1").json() == {"detail": "Item not found"}
    assert [i["id"] for i in http.get("/items").json()] == [2]


@pytest.mark.parametrize("version", VERSIONS)
def test_same_checks_pass_on_both(version: str, tmp_path: Path) -> None:
    app, *args = VERSIONS[version]
    with serve(app, tmp_path, *args) as server, httpx.Client(base_url=server.url) as http:
        check_the_api(http)
