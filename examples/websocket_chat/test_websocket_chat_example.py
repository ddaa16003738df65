import json
from pathlib import Path
from typing import Any

from example_harness import serve
from websockets.sync.client import ClientConnection, connect


def _next(ws: ClientConnection, kind: str, **fields: str) -> dict[str, Any]:
    """The next message of type ``kind`` with these fields (skipping the others)."""
    while True:
        message = json.loads(ws.recv(timeout=5))
        if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
            return dict(message)


def test_two_members_talk_in_the_lobby(tmp_path: Path) -> None:
    with serve("websocket_chat/app.py", tmp_path) as server:
        with connect(server.ws_url + "/?nick=ann", proxy=None) as ann:
            assert _next(ann, "welcome")["nick"] == "ann"
            with connect(server.ws_url + "/?nick=bob", proxy=None) as bob:
                _next(bob, "welcome")
                assert _next(ann, "joined", nick="bob")["room"] == "lobby"
                bob.send(json.dumps({"type": "message", "text": "hi ann"}))
                said = _next(ann, "message")
                assert (said["nick"], said["text"], said["room"]) == ("bob", "hi ann", "lobby")
                bob.send("not json at all")
                assert "error" in _next(bob, "error")
                bob.send(json.dumps({"type": "message", "text": "still here"}))
                assert _next(ann, "message")["text"] == "still here"
