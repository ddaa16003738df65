"""Class-based HTTP, WebSocket and SSE endpoints over a real pagi-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
from example_harness import serve, wait
from websockets.sync.client import connect


def events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    """(event name, decoded data) for each event of an SSE body; comments are skipped."""
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def test_http_endpoints(tmp_path: Path) -> None:
    with serve("endpoints/app.py", tmp_path) as server, httpx.Client(base_url=server.url) as http:
        created = http.post("/todos", json={"text": "write the endpoint demo"})
        assert created.status_code == 201 and created.headers["location"] == "/todos/1"
        assert http.get("/todos").json() == {"todos": [created.json()]}
        assert http.patch("/todos/1", json={"done": True}).json()["done"] is True
        assert http.head("/todos/1").status_code == 200  # HEAD comes with get()

        # Only the verbs the class defines: 405 with Allow, and OPTIONS answered.
        put = http.put("/todos/1", json={})
        assert put.status_code == 405
        assert put.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
        options = http.options("/todos")
        assert (options.status_code, options.headers["allow"]) == (204, "GET, HEAD, OPTIONS, POST")

        # Bad input gets a status and a sentence.
        for method, path, kwargs, status, message in [
            ("POST", "/todos", {"content": b"{nope"}, 400, "request body is not valid JSON"),
            ("POST", "/todos", {"json": ["text"]}, 422, "send a JSON object"),
            ("POST", "/todos", {"json": {"text": " "}}, 422, "text must be a non-empty string"),
            ("PATCH", "/todos/1", {"json": {"done": "yes"}}, 422, "done must be true or false"),
            ("GET", "/todos/9", {}, 404, "no to-do 9"),
            ("GET", "/todos/x", {}, 404, "Not Found"),
        ]:
            got = http.request(method, path, **kwargs)
            assert (got.status_code, message in got.text) == (status, True), (path, got.text)

        assert http.delete("/todos/1").status_code == 204
        assert http.get("/todos/1").status_code == 404


def test_websocket_and_sse_endpoints(tmp_path: Path) -> None:
    with serve("endpoints/app.py", tmp_path) as server, httpx.Client(base_url=server.url) as http:
        http.post("/todos", json={"text": "already there"})
        declined = http.get("/todos/feed?only=maybe", headers={"accept": "text/event-stream"})
        assert (declined.status_code, declined.text) == (400, "only must be all, open or done")

        with (
            http.stream(
                "GET", "/todos/feed?only=open", headers={"accept": "text/event-stream"}, timeout=5
            ) as feed,
            connect(server.ws_url + "/todos/socket", proxy=None) as ws,
        ):
            assert feed.status_code == 200
            received = events(feed.iter_lines())
            assert next(received) == (
                "snapshot",
                {"todos": [{"id": 1, "text": "already there", "done": False}]},
            )

            def say(message: object) -> dict:
                ws.send(message if isinstance(message, str) else json.dumps(message))
                return json.loads(ws.recv(timeout=5))

            assert json.loads(ws.recv(timeout=5))["count"] == 1
            assert say({"add": "from the socket"})["added"]["id"] == 2
            assert say({"done": 1})["updated"] == {"id": 1, "text": "already there", "done": True}
            http.post("/todos", json={"text": "from HTTP"})

            # The feed shows open to-dos only: the change that closed 1 is not in it.
            assert next(received) == (
                "todo",
                {"change": "added", "todo": {"id": 2, "text": "from the socket", "done": False}},
            )
            assert next(received) == (
                "todo",
                {"change": "added", "todo": {"id": 3, "text": "from HTTP", "done": False}},
            )

            # Bad messages are answered, and the socket stays open.
            assert say("add milk")["error"].startswith("not JSON")
            assert say({"remove": 1})["error"].startswith("unknown message")
            assert say({"add": ""})["error"].startswith("text must be")
            assert say({"done": True}) == {"error": "no to-do True"}
            assert say({"done": 42}) == {"error": "no to-do 42"}
            assert say({"add": "still here"})["added"]["id"] == 4

        # on_disconnect ran for both: the socket is counted, the feed unsubscribed.
        wait(
            "both endpoints to clean up",
            lambda: http.get("/stats").json() == {"sockets_closed": 1, "feeds": 0},
            timeout=5,
        )
