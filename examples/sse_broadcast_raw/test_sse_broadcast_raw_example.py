from contextlib import ExitStack
from pathlib import Path

import httpx
from example_harness import serve

SSE = {"accept": "text/event-stream"}


def _event(lines) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("stream ended")


def test_every_listener_gets_every_message(tmp_path: Path) -> None:
    with serve("sse_broadcast_raw/app.py", tmp_path) as server, ExitStack() as streams:
        listeners = []
        for _ in range(2):
            stream = streams.enter_context(
                httpx.stream("GET", server.url + "/events", headers=SSE, timeout=5)
            )
            lines = stream.iter_lines()
            assert _event(lines)["event"] == "hello"
            listeners.append(lines)
        sent = httpx.post(server.url + "/publish", content="héllo, listeners".encode())
        assert sent.json() == {"id": 1, "delivered": 2}
        for lines in listeners:
            assert _event(lines) == {"event": "message", "id": "1", "data": "héllo, listeners"}
        bad = httpx.post(server.url + "/publish", content=b"\xff")
        assert bad.status_code == 400 and "UTF-8" in bad.json()["error"]
        assert httpx.get(server.url + "/nope", headers=SSE).status_code == 404
