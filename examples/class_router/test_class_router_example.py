"""The class-based router over a real pagi-server: sub-routers, the stash, middleware order."""

from __future__ import annotations

from pathlib import Path

import httpx
from example_harness import serve

ANN = {"authorization": "Bearer ann-token"}  # admin
BOB = {"authorization": "Bearer bob-token"}  # user


def test_controllers_stash_and_middleware(tmp_path: Path) -> None:
    with (
        serve("class_router/app.py", tmp_path) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        # Layers run outside in (app, mount, route) and leave what they found in the stash.
        me = http.get("/api/whoami", headers=BOB).json()
        assert me == {
            "user": {"name": "bob", "role": "user"},
            "trail": ["app", "api mount", "whoami route"],
        }
        assert http.get("/api/whoami").json()["user"] is None
        assert (
            http.get("/api/whoami", headers={"authorization": "Basic ann-token"}).json()["user"]
            is None
        )

        # A controller's methods, mounted as a sub-router.
        assert http.get("/api/users/").json() == {"users": ["ann", "bob"]}
        assert http.get("/api/users/ann").json() == {"name": "ann", "role": "admin"}
        missing = http.get("/api/users/zed")
        assert (missing.status_code, missing.json()) == (404, {"error": "no user 'zed'"})

        # Route middleware guards one route of the controller.
        nobody = http.post("/api/users/", json={"name": "cy"})
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
        assert nobody.json() == {"error": "send Authorization: Bearer <token>"}
        not_admin = http.post("/api/users/", json={"name": "cy"}, headers=BOB)
        assert (not_admin.status_code, not_admin.json()) == (
            403,
            {"error": "this needs the admin role"},
        )
        made = http.post("/api/users/", json={"name": "cy"}, headers=ANN)
        assert (made.status_code, made.json()) == (201, {"name": "cy", "role": "user"})
        assert http.get("/api/users/").json() == {"users": ["ann", "bob", "cy"]}
        for body, status, message in [
            ({"name": "cy"}, 409, "user 'cy' exists"),
            ({"name": "no spaces"}, 422, "name must be 1 to 30 letters or digits"),
            ({"name": "dee", "role": "root"}, 422, "role must be one of ['admin', 'user']"),
        ]:
            got = http.post("/api/users/", json=body, headers=ANN)
            assert (got.status_code, got.json()) == (status, {"error": message}), body
        bad = http.post("/api/users/", content=b"{", headers=ANN)
        assert bad.status_code == 400 and "not valid JSON" in bad.text
        assert http.put("/api/users/", headers=ANN).status_code == 405

        # Controller middleware guards every route of the notes controller; each user has theirs.
        assert http.get("/api/notes/").status_code == 401
        assert http.post("/api/notes/", json={"text": "bob's"}, headers=BOB).status_code == 201
        assert http.post("/api/notes/", json={"text": "ann's"}, headers=ANN).status_code == 201
        assert http.get("/api/notes/", headers=BOB).json() == {
            "notes": ["bob's"],
            "trail": ["app", "api mount", "notes controller"],
        }
        empty = http.post("/api/notes/", json={"text": "  "}, headers=BOB)
        assert (empty.status_code, empty.json()) == (
            422,
            {"error": "text must be a non-empty string"},
        )
        assert http.post("/api/notes/", json="text", headers=BOB).status_code == 422

        assert http.get("/nowhere").status_code == 404
