"""The app test_tools_over_server.py runs under the real pagi-server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from pagi.tools import (
    SSE,
    FileResponse,
    Lifespan,
    PlainTextResponse,
    Request,
    Router,
    StreamingResponse,
    WebSocket,
)

router = Router()


@router.get("/hello")
async def hello(request: Request) -> Any:
    response = PlainTextResponse(f"hello {request.query_params.get('name', 'world')}")
    response.set_cookie("seen", "1", httponly=True)
    return response


@router.post("/echo")
async def echo(request: Request) -> Any:
    form = await request.form() if request.content_type == "multipart/form-data" else None
    if form is not None:
        upload = form["file"]
        return {"field": form["field"], "file": (await upload.read()).decode()}  # type: ignore[union-attr]
    return {"body": (await request.body()).decode(), "cookies": request.cookies}


@router.get("/file")
async def file(request: Request) -> Any:
    return FileResponse(os.environ["PAGI_TOOLS_TEST_FILE"])


@router.get("/stream")
async def stream(request: Request) -> Any:
    async def chunks() -> AsyncIterator[str]:
        for n in range(3):
            yield f"chunk {n}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@router.sse("/events")
async def events(sse: SSE) -> None:
    await sse.send({"last": sse.last_event_id}, event="hello", id="1")
    await sse.send("line one\nline two")
    await sse.close()


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    if websocket.query_params.get("deny"):
        await websocket.deny(PlainTextResponse("no entry", 401))
        return
    await websocket.accept(subprotocol="echo" if "echo" in websocket.subprotocols else None)
    async for message in websocket:
        await websocket.send_text(f"echo: {message}")


app = Lifespan(router, startup=[lambda state: state.setdefault("started", True)])
