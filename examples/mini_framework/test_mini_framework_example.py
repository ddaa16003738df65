"""The mini framework over a real pagi-server: routes, injection, one clear 422; and its size."""

from __future__ import annotations

from pathlib import Path

import httpx
from example_harness import EXAMPLES, serve

ANN = {"authorization": "Bearer ann-token"}


def test_the_framework_stays_small() -> None:
    lines = (EXAMPLES / "mini_framework" / "mini.py").read_text().splitlines()
    assert len(lines) < 200


def test_routes_injection_and_validation(tmp_path: Path) -> None:
    with (
        serve("mini_framework/app.py", tmp_path) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        dune = {"title": "Dune", "author": "Herbert", "year": 1965, "tags": ["sf"]}
        made = http.post("/books", json=dune, headers=ANN)
        assert made.status_code == 201
        assert made.json() == {**dune, "id": 1, "added_by": "ann"}  # User came from a provider
        http.post("/books", json={"title": "Emma", "author": "Austen", "year": 1815}, headers=ANN)

        # Path and query parameters, converted to the annotated types.
        assert http.get("/books/2").json()["tags"] == []
        assert [b["id"] for b in http.get("/books").json()] == [1, 2]
        assert [b["title"] for b in http.get("/books?author=Austen").json()] == ["Emma"]
        assert [b["id"] for b in http.get("/books?limit=1").json()] == [1]

        # Every problem with the input in one 422, each saying where and what.
        bad = http.post(
            "/books",
            json={"title": 7, "year": "1965", "tags": ["ok", 3], "isbn": "x"},
            headers=ANN,
        )
        assert (bad.status_code, bad.json()) == (
            422,
            {
                "errors": [
                    {"where": "body.isbn", "problem": "is not a known field"},
                    {"where": "body.title", "problem": "must be a string"},
                    {"where": "body.author", "problem": "is required"},
                    {"where": "body.year", "problem": "must be an integer"},
                    {"where": "body.tags[1]", "problem": "must be a string"},
                ]
            },
        )
        for request, where, problem in [
            (http.get("/books?limit=lots"), "query.limit", "must be an integer"),
            (http.get("/books/first"), "path.book_id", "must be an integer"),
            (http.post("/books", content=b"{", headers=ANN), "body", "is not valid JSON"),
            (http.post("/books", json=["Dune"], headers=ANN), "body", "must be a JSON object"),
            (http.post("/books", headers=ANN), "body", "must be a JSON object"),
            (
                http.post("/books", json={**dune, "year": 3000, "title": " "}, headers=ANN),
                "body.title",
                "must not be blank",
            ),
        ]:
            assert request.status_code == 422, request.text
            assert request.json()["errors"][0] == {"where": where, "problem": problem}

        # A provider may refuse: the handler never runs.
        nobody = http.post("/books", json=dune)
        assert (nobody.status_code, nobody.json()) == (
            401,
            {"error": "send Authorization: Bearer <token>"},
        )
        assert nobody.headers["www-authenticate"] == "Bearer"
        assert http.delete("/books/1").status_code == 401
        assert http.delete("/books/1", headers=ANN).status_code == 204
        assert http.get("/books/1").json() == {"error": "no book 1"}
        assert http.get("/books/1").status_code == 404
        assert http.put("/books/1").status_code == 405
