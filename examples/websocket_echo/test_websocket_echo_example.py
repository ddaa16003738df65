from pathlib import Path

import httpx
from example_harness import serve
from websockets.sync.client import connect


def test_echo_and_shout(tmp_path: Path) -> None:
    with serve("websocket_echo/app.py", tmp_path) as server:
        with connect(server.ws_url + "/echo", proxy=None) as ws:
            ws.send("ping ✓")
            assert ws.recv(timeout=5) == "ping ✓"
            ws.send(b"\x00\xff")
            assert ws.recv(timeout=5) == b"\x00\xff"
        with connect(server.ws_url + "/shout", proxy=None) as ws:
            ws.send("quiet please")
            assert ws.recv(timeout=5) == "QUIET PLEASE"
        assert httpx.get(server.url + "/echo").status_code == 426
