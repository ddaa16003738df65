from pathlib import Path

import httpx
from example_harness import serve


def test_state_is_set_at_startup_shared_and_summarised_at_shutdown(tmp_path: Path) -> None:
    with serve("lifespan_state/app.py", tmp_path, "--lifespan", "on") as server:
        first = httpx.get(server.url + "/").json()
        second = httpx.get(server.url + "/").json()
        assert first["greeting"] == "hello from the lifespan"
        assert second["requests"] == first["requests"] + 1
        assert second["uptime"] >= first["uptime"] >= 0
        served = second["requests"]
    # serve() stopped the server; the shutdown hook ran and printed its summary.
    assert f"shutting down after {served} requests" in server.log()
