"""Job runner: a job queue with a dashboard, over HTTP, SSE and WebSocket at once.

* ``GET /`` serves the dashboard (``index.html``, no external scripts).
* ``POST /jobs`` with ``{"name": "...", "steps": 1..200}`` queues a job
  (``201`` and the job); ``GET /jobs`` lists them, ``GET /jobs/{id}`` shows one.
* ``/jobs/events`` (SSE): a ``job`` event with the job's JSON for every
  change (queued, each step, paused, done...), after a snapshot of the jobs
  that exist when the stream opens.
* ``/control`` (WebSocket): ``{"action": "pause" | "resume" | "cancel", "id": n}``;
  each message is answered with ``{"ok": action, "job": {...}}`` or
  ``{"error": "..."}``, and the socket stays open either way.

Two workers (tasks started in the lifespan) take jobs in order. Every
change is published on the ``jobs`` channel of a ``pagi.tools.channels``
hub, which every SSE stream subscribes to. ``JOBS_STEP_SECONDS`` sets the
time one step takes (default 0.2).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pagi.tools import (
    SSE,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    Lifespan,
    Request,
    Router,
    WebSocket,
)
from pagi.tools.channels import Channels, Event

PAGE = Path(__file__).with_name("index.html").read_text(encoding="utf-8")
CHANNEL = "jobs"
WORKERS = 2
MAX_STEPS = 200


class Job:
    def __init__(self, job_id: int, name: str, steps: int) -> None:
        self.id = job_id
        self.name = name
        self.steps = steps
        self.done = 0
        self.started = False
        self.state = "queued"  # queued, running, paused, done, cancelled
        self.resumed = anyio.Event()
        self.resumed.set()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "steps": self.steps,
            "done": self.done,
            "state": self.state,
        }


class Board:
    """The jobs, the queue the workers read, and the channel their changes go to."""

    def __init__(self, channels: Channels, step_seconds: float) -> None:
        self.channels = channels
        self.step_seconds = step_seconds
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._queue_in: MemoryObjectSendStream[Job]
        self._queue_out: MemoryObjectReceiveStream[Job]
        self._queue_in, self._queue_out = anyio.create_memory_object_stream[Job](math.inf)

    async def changed(self, job: Job) -> None:
        await self.channels.publish(CHANNEL, job.as_dict())

    async def submit(self, name: str, steps: int) -> Job:
        job = Job(next(self._ids), name, steps)
        self.jobs[job.id] = job
        await self.changed(job)
        self._queue_in.send_nowait(job)
        return job

    async def work(self) -> None:
        async for job in self._queue_out:
            if job.state == "cancelled":
                continue
            job.started = True
            if job.state == "queued":  # a job paused while queued stays paused
                job.state = "running"
                await self.changed(job)
            while job.done < job.steps:
                await job.resumed.wait()
                if job.state == "cancelled":
                    break
                await anyio.sleep(self.step_seconds)  # the "work" of one step
                if job.state == "cancelled":
                    break
                job.done += 1
                await self.changed(job)
            if job.state != "cancelled":
                job.state = "done"
                await self.changed(job)

    async def control(self, action: str, job: Job) -> str | None:
        """Apply ``action``; returns an error message when it does not apply."""
        if job.state in ("done", "cancelled"):
            return f"job {job.id} is already {job.state}"
        if action == "pause":
            if job.state == "paused":
                return f"job {job.id} is already paused"
            job.state = "paused"
            job.resumed = anyio.Event()
        elif action == "resume":
            if job.state != "paused":
                return f"job {job.id} is not paused"
            job.state = "running" if job.started else "queued"
            job.resumed.set()
        else:  # cancel
            job.state = "cancelled"
            job.resumed.set()  # wakes a paused worker, which then sees the cancel
        await self.changed(job)
        return None


router = Router()


def board_of(connection: Request | SSE | WebSocket) -> Board:
    board: Board = connection.state["board"]
    return board


def job_or_404(board: Board, job_id: int) -> Job:
    job = board.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get("/")
async def index(request: Request) -> Any:
    return HTMLResponse(PAGE)


@router.get("/jobs")
async def list_jobs(request: Request) -> Any:
    return {"jobs": [job.as_dict() for job in board_of(request).jobs.values()]}


@router.post("/jobs")
async def submit_job(request: Request) -> Any:
    data = await request.json()  # a body that is not JSON is a 400 with the reason
    if not isinstance(data, dict):
        raise HTTPException(422, 'send a JSON object: {"name": "...", "steps": 10}')
    name, steps = data.get("name"), data.get("steps", 10)
    if not isinstance(name, str) or not name.strip() or len(name) > 40:
        raise HTTPException(422, "name must be a non-empty string of at most 40 characters")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise HTTPException(422, f"steps must be an integer from 1 to {MAX_STEPS}")
    job = await board_of(request).submit(name.strip(), steps)
    return JSONResponse(job.as_dict(), status=201, headers={"location": f"/jobs/{job.id}"})


@router.get("/jobs/{job_id:int}")
async def show_job(request: Request) -> Any:
    return job_or_404(board_of(request), request.path_params["job_id"]).as_dict()


@router.sse("/jobs/events")
async def job_events(sse: SSE) -> None:
    board = board_of(sse)
    await sse.start()
    await sse.keepalive(15)
    # Subscribe first, then send the snapshot: no change can fall in between.
    async with board.channels.subscribe(
        CHANNEL, transport=sse.scope.get("pagi.transport")
    ) as updates:
        for job in list(board.jobs.values()):
            await sse.send(job.as_dict(), event="job")
        await sse.stream(as_job_events(updates))


async def as_job_events(updates: AsyncIterator[Event]) -> AsyncIterator[dict[str, Any]]:
    async for event in updates:
        yield {"data": event.data, "event": "job"}


@router.websocket("/control")
async def control(ws: WebSocket) -> None:
    board = board_of(ws)
    await ws.accept()
    async for raw in ws:
        try:
            message = json.loads(raw)
        except ValueError:
            await ws.send_json({"error": 'not JSON: send {"action": "pause", "id": 1}'})
            continue
        action = message.get("action") if isinstance(message, dict) else None
        job_id = message.get("id") if isinstance(message, dict) else None
        if action not in ("pause", "resume", "cancel"):
            await ws.send_json({"error": "action must be pause, resume or cancel"})
            continue
        if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id not in board.jobs:
            await ws.send_json({"error": f"no job {job_id!r}"})
            continue
        job = board.jobs[job_id]
        problem = await board.control(action, job)
        if problem:
            await ws.send_json({"error": problem})
        else:
            await ws.send_json({"ok": action, "job": job.as_dict()})


@asynccontextmanager
async def job_runner(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The channel hub and the workers, for the life of the server."""
    channels = Channels()
    # A dashboard wants the latest state: a slow page loses old steps, not new ones.
    channels.configure(CHANNEL, queue_size=500, overflow="drop_oldest")
    step = float(os.environ.get("JOBS_STEP_SECONDS", "0.2"))
    async with channels, anyio.create_task_group() as workers:
        board = Board(channels, step)
        for _ in range(WORKERS):
            workers.start_soon(board.work)
        yield {"board": board}
        workers.cancel_scope.cancel()


app = Lifespan(router, context=[job_runner])
