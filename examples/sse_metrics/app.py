"""SSE metrics dashboard: samples published on a channel, a live chart drawn by the page.

* ``GET /`` serves the dashboard (``index.html``: an SVG chart per series,
  drawn by a short script of its own; nothing loaded from elsewhere).
* ``/metrics`` (SSE): one ``sample`` event per interval, with an id. A new
  stream first gets the samples kept so far (the last 120), so the chart
  starts full; a reconnecting ``EventSource`` sends ``Last-Event-ID`` and
  gets only what it missed.
* ``GET /work?ms=50`` burns ``ms`` milliseconds of CPU (0 to 500) so that
  the chart has something to show; anything else there is a ``400``.

A sampler task, started by the lifespan, measures every
``METRICS_INTERVAL`` seconds (default 1): HTTP requests per second
(counted by a small middleware), CPU use of the process, event-loop lag,
and the number of open dashboard streams. It publishes each sample on the
``metrics`` channel of a ``pagi.tools.channels`` hub that keeps history.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from pagi.spec import Receive, Scope, Send
from pagi.tools import SSE, HTMLResponse, HTTPException, Lifespan, Request, Router
from pagi.tools.channels import Channels, Event
from pagi.tools.middleware import Builder, ErrorHandler
from pagi.tools.middleware.base import Middleware

PAGE = Path(__file__).with_name("index.html").read_text(encoding="utf-8")
CHANNEL = "metrics"
KEPT = 120


class CountRequests(Middleware):
    """Count every HTTP request into a shared counter (the sampler turns it into a rate)."""

    def __init__(self, app: Any, counter: dict[str, int]) -> None:
        super().__init__(app)
        self.counter = counter

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.counter["requests"] += 1
        await self.app(scope, receive, send)


COUNTER = {"requests": 0}
router = Router()


@router.get("/")
async def index(request: Request) -> Any:
    return HTMLResponse(PAGE)


@router.get("/work")
async def work(request: Request) -> Any:
    raw = request.query_params.get("ms", "50")
    if not raw.isdigit() or not 0 <= int(raw) <= 500:
        raise HTTPException(400, "ms must be a whole number of milliseconds from 0 to 500")
    until = time.perf_counter() + int(raw) / 1000
    while time.perf_counter() < until:  # deliberately blocking: it shows up as loop lag
        pass
    return {"worked_ms": int(raw)}


@router.sse("/metrics")
async def metrics(sse: SSE) -> None:
    channels: Channels = sse.state["channels"]
    await sse.start()
    await sse.keepalive(15)
    # "0" is older than every id: a new stream gets all the kept samples first.
    async with channels.subscribe(
        CHANNEL,
        last_event_id=sse.last_event_id or "0",
        transport=sse.scope.get("pagi.transport"),
    ) as samples:
        await sse.stream(as_events(samples))


async def as_events(samples: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    async for sample in samples:
        yield {"data": sample.data, "event": "sample", "id": sample.id}


async def sample_forever(channels: Channels, interval: float) -> None:
    last_requests = COUNTER["requests"]
    last_cpu, last_wall = time.process_time(), time.monotonic()
    while True:
        await anyio.sleep(interval)
        now, cpu = time.monotonic(), time.process_time()
        elapsed = now - last_wall
        requests = COUNTER["requests"]
        await channels.publish(
            CHANNEL,
            {
                "t": round(time.time(), 3),
                "rps": round((requests - last_requests) / elapsed, 1),
                "requests": requests,
                "cpu": round(100 * (cpu - last_cpu) / elapsed, 1),
                "lag_ms": round(max(0.0, elapsed - interval) * 1000, 1),
                "streams": channels.local_presence(CHANNEL),
            },
        )
        last_requests, last_cpu, last_wall = requests, cpu, now


@asynccontextmanager
async def sampler(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    channels = Channels()
    channels.configure(CHANNEL, history=KEPT)
    interval = float(os.environ.get("METRICS_INTERVAL", "1"))
    async with channels, anyio.create_task_group() as group:
        group.start_soon(sample_forever, channels, interval)
        yield {"channels": channels}
        group.cancel_scope.cancel()


app = Lifespan(
    Builder().add(ErrorHandler).add(CountRequests, counter=COUNTER).build(router),
    context=[sampler],
)
