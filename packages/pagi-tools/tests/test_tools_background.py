"""Background tasks: after the response completes, skipped after a disconnect unless asked."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from pagi.tools import JSONResponse, Request, Router, StreamingResponse
from pagi.tools.background import BackgroundTask, BackgroundTasks
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def test_tasks_run_in_order_after_the_response_completed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []
    router = Router()

    @router.get("/")
    async def home(request: Request) -> Any:
        connection = request.scope["pagi.connection"]

        async def first(value: int) -> None:
            seen.append(("first", value, connection.response_complete()))

        def in_thread() -> None:
            seen.append(("thread", threading.current_thread() is not threading.main_thread()))

        def broken() -> None:
            raise RuntimeError("task broke")

        tasks = BackgroundTasks()
        tasks.add_task(first, 1)
        tasks.add_task(broken)
        tasks.add_task(in_thread)
        return JSONResponse({"ok": True}, background=tasks)

    response = await AsyncTestClient(router).get("/")
    assert response.json() == {"ok": True}
    assert seen == [("first", 1, True), ("thread", True)]
    assert any(r.name == "pagi.tools.background" and r.exc_info for r in caplog.records)


async def test_tasks_are_skipped_after_a_disconnect_unless_always() -> None:
    seen: list[str] = []
    router = Router()

    @router.get("/stream")
    async def stream(request: Request) -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await anyio.sleep(10)
            yield b"never"

        tasks = BackgroundTasks()
        tasks.add_task(seen.append, "normal")
        tasks.add_task(seen.append, "always", always=True)
        return StreamingResponse(chunks(), background=tasks)

    client = AsyncTestClient(router, close_timeout=2)
    async with client.stream("GET", "/stream") as response:
        async with aclosing(response.aiter_bytes()) as chunks:
            async for chunk in chunks:
                assert chunk == b"first"
                break
    assert seen == ["always"]


async def test_single_task_on_a_plain_response() -> None:
    seen: list[int] = []
    router = Router()

    @router.get("/")
    async def home(request: Request) -> Any:
        return JSONResponse([], background=BackgroundTask(seen.append, 7))

    await AsyncTestClient(router).get("/")
    assert seen == [7]
    with pytest.raises(TypeError):
        BackgroundTask("not callable")  # type: ignore[arg-type]
