import time
from pathlib import Path

import httpx
from example_harness import serve, wait


def test_tasks_run_after_the_response(tmp_path: Path) -> None:
    with serve("background_tasks/app.py", tmp_path) as server:
        sent = httpx.post(server.url + "/signup?email=ann@example.org")
        assert sent.status_code == 202
        # The response came before the (half-second) task finished ...
        assert all(
            entry["task"] != "welcome" for entry in httpx.get(server.url + "/log").json()["done"]
        )
        # ... which then ran.
        wait(
            "the welcome task",
            lambda: (
                {"task": "welcome", "email": "ann@example.org"}
                in httpx.get(server.url + "/log").json()["done"]
            ),
        )
        assert httpx.post(server.url + "/signup?email=nope").status_code == 400

        started = time.monotonic()
        assert httpx.post(server.url + "/thumbnail?size=150000").status_code == 202
        # The loop is free while the thread hashes: another request is answered meanwhile.
        assert httpx.get(server.url + "/log").status_code == 200
        done = wait(
            "the thumbnail",
            lambda: [
                e for e in httpx.get(server.url + "/log").json()["done"] if e["task"] == "thumbnail"
            ],
            timeout=20,
        )
        assert done == [{"task": "thumbnail", "size": 150000, "thread": True}]
        assert time.monotonic() - started < 20
