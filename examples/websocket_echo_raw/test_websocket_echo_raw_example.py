from pathlib import Path

import httpx
import pytest
from example_harness import serve
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect


def test_echo_text_and_bytes_then_bye(tmp_path: Path) -> None:
    with serve("websocket_echo_raw/app.py", tmp_path) as server:
        with connect(server.ws_url + "/", proxy=None) as ws:
            ws.send("héllo")
            assert ws.recv(timeout=5) == "héllo"
            ws.send(b"\x00\x01\xff")
            assert ws.recv(timeout=5) == b"\x00\x01\xff"
            ws.send("bye")
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=5)
            assert ws.close_code == 1000 and ws.close_reason == "bye"
        assert httpx.get(server.url + "/").status_code == 426
