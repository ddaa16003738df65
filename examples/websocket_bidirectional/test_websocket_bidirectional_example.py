import json
from pathlib import Path

from example_harness import serve
from websockets.sync.client import connect


def test_ticks_arrive_while_messages_are_answered(tmp_path: Path) -> None:
    with serve("websocket_bidirectional/app.py", tmp_path) as server:
        with connect(server.ws_url + "/?interval=60", proxy=None) as ws:
            ws.send(json.dumps({"hello": 1}))
            # Answered at once, although the ticker would not speak for a minute.
            assert json.loads(ws.recv(timeout=2)) == {"echo": {"hello": 1}}
            ws.send(json.dumps({"interval": 0.05}))
            assert json.loads(ws.recv(timeout=2)) == {"echo": {"interval": 0.05}}
            ticks = [json.loads(ws.recv(timeout=2)) for _ in range(3)]
            assert [t["tick"] for t in ticks] == [1, 2, 3]
            ws.send("oops")
            replies = [json.loads(ws.recv(timeout=2)) for _ in range(5)]
            assert {"error": "send JSON"} in replies
