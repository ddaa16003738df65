"""The three examples behind one PAGI app, plain and through ``to_asgi``.

``/hello/...`` is examples/hello, ``/chat/...`` examples/chat, the rest
examples/notes; the lifespan runs both notes' and chat's, sharing one state. ``/probe/...`` are
small endpoints for what the examples do not exercise: the emulated
``pagi.connection`` and file bodies. Served by pagi-server (``app``) and by
uvicorn, hypercorn and granian (``asgi_app``) in test_tools_to_asgi.py.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import anyio

from pagi.tools.asgi import to_asgi
from pagi.tools.lifespan import serve_lifespan

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DATA = Path(os.environ.get("BRIDGE_DATA_FILE", "/nonexistent"))


def _load(name: str) -> Any:
    path = EXAMPLES / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"bridge_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


hello, chat, notes = _load("hello"), _load("chat"), _load("notes")
seen_disconnects: list[str] = []


async def probe(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    if scope["type"] == "websocket":  # /probe/deny: a denial response with a body
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    if path == "/probe/wait-disconnect":
        # Never calls receive(): the disconnect must reach pagi.connection anyway.
        gone = anyio.Event()

        def on_disconnect(reason: str) -> None:
            seen_disconnects.append(reason)
            gone.set()

        scope["pagi.connection"].on_disconnect(on_disconnect)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting\n", "more": True})
        with anyio.move_on_after(10):
            await gone.wait()
        return
    if path == "/probe/disconnects":
        body = ",".join(seen_disconnects).encode()
    elif path == "/probe/file":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % DATA.stat().st_size)]})  # fmt: skip
        await send({"type": "http.response.body", "file": str(DATA)})
        return
    elif path == "/probe/file-range":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "file": str(DATA), "offset": 10, "length": 20})
        return
    else:
        body = b"?"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _strip(scope: dict[str, Any], prefix: str) -> dict[str, Any]:
    scope = dict(scope)
    scope["path"] = scope["path"][len(prefix) :] or "/"
    if "raw_path" in scope:
        scope["raw_path"] = scope["raw_path"][len(prefix) :] or b"/"
    return scope


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        # Both notes and chat keep their channels in the lifespan state.
        await serve_lifespan(scope, receive, send, [notes, chat])
        return
    path = scope["path"]
    if path.startswith("/hello"):
        await hello(_strip(scope, "/hello"), receive, send)
    elif path.startswith("/chat"):
        await chat(_strip(scope, "/chat"), receive, send)
    elif path.startswith("/probe"):
        await probe(scope, receive, send)
    else:
        await notes(scope, receive, send)


asgi_app = to_asgi(app)
