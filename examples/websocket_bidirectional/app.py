"""Bidirectional WebSocket: the server pushes on its own schedule while it answers the client.

Two tasks share one socket: one sends ``{"tick": n}`` every
``?interval=`` seconds (default 1), the other answers each client message
at once with ``{"echo": ...}``. A client message ``{"interval": x}``
changes the tick rate on the fly. When the client leaves, the reading task
ends and cancels the ticker.
"""

import json

import anyio

from pagi.tools import Router, WebSocket

router = Router()


@router.websocket("/")
async def both_ways(ws: WebSocket) -> None:
    interval = {"seconds": min(max(float(ws.query_params.get("interval", "1")), 0.01), 60)}
    await ws.accept()
    lock = anyio.Lock()  # one writer at a time on the socket

    async def say(message: dict) -> None:
        async with lock:
            await ws.send_text(json.dumps(message))

    changed = {"event": anyio.Event()}

    async def ticker() -> None:
        n = 0
        while True:
            with anyio.move_on_after(interval["seconds"]) as timer:
                await changed["event"].wait()
            if not timer.cancelled_caught:  # a new interval: start the wait again
                changed["event"] = anyio.Event()
                continue
            n += 1
            await say({"tick": n})

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async for text in ws.iter_text():
            try:
                message = json.loads(text)
            except ValueError:
                await say({"error": "send JSON"})
                continue
            if isinstance(message, dict) and isinstance(message.get("interval"), (int, float)):
                interval["seconds"] = min(max(float(message["interval"]), 0.01), 60)
                changed["event"].set()
            await say({"echo": message})
        tg.cancel_scope.cancel()  # the client left: stop ticking


app = router
