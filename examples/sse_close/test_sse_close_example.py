from pathlib import Path

import httpx
from example_harness import serve

SSE = {"accept": "text/event-stream"}


def test_the_stream_ends_and_a_reconnect_is_declined(tmp_path: Path) -> None:
    with serve("sse_close/app.py", tmp_path) as server:
        # The whole stream can be read to its end: the server closed it.
        got = httpx.get(server.url + "/countdown?from=3", headers=SSE, timeout=5)
        assert got.status_code == 200
        data = [line[6:] for line in got.text.splitlines() if line.startswith("data: ")]
        events = [line[7:] for line in got.text.splitlines() if line.startswith("event: ")]
        assert data == ["3", "2", "1", "done"]
        assert events == ["tick", "tick", "tick", "end"]
        again = httpx.get(
            server.url + "/countdown", headers={**SSE, "last-event-id": "end"}, timeout=5
        )
        assert again.status_code == 204
