"""The app test_tools_middleware_over_server.py runs under the real pagi-server.

A Builder-made stack: ErrorHandler (debug) outermost, then Compress,
ConditionalGet and ETag around a router.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pagi.tools import JSONResponse, PlainTextResponse, Request, Router, StreamingResponse
from pagi.tools.middleware import Builder, Compress, ConditionalGet, ErrorHandler, ETag

router = Router()
BIG = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(500)]}


@router.get("/json")
async def big_json(request: Request) -> Any:
    return JSONResponse(BIG)


@router.get("/stream")
async def stream(request: Request) -> Any:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(50):
            yield f"line {i} ".encode() * 20 + b"\n"
            await asyncio.sleep(0)

    return StreamingResponse(lines(), media_type="text/plain")


@router.get("/tagged")
async def tagged(request: Request) -> Any:
    return PlainTextResponse("stable content " * 100)


@router.get("/boom")
async def boom(request: Request) -> Any:
    marker = "<i>local value</i>"  # noqa: F841 - shown escaped on the debug page
    raise ValueError("over the wire <b>")


app = (
    Builder()
    .add(ErrorHandler, debug=True)
    .add(Compress, minimum_size=100)
    .add(ConditionalGet)
    .add(ETag)
    .build(router)
)
