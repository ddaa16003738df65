from pathlib import Path

import httpx
from example_harness import serve


def test_hooks_contexts_and_state_in_order(tmp_path: Path) -> None:
    with serve("lifespan_tools/app.py", tmp_path, "--lifespan", "on") as server:
        first = httpx.get(server.url + "/").json()
        assert first["greeting"] == "hello" and first["pool"] == ["conn-1", "conn-2"]
        assert httpx.get(server.url + "/").json()["hits"] == first["hits"] + 1
        hits = first["hits"] + 1
    log = server.log()
    order = [
        "settings loaded",
        "pool opened",
        "pool closed",
        f"served {hits} hits",
    ]
    positions = [log.index(f"lifespan_tools: {line}") for line in order]
    assert positions == sorted(positions), log
