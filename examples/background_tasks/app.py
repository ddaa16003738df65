"""Background tasks: work that runs after the response has gone out.

* ``POST /signup?email=...`` answers ``202`` at once and then, in the
  same task after the response is complete, "sends" a welcome mail (an
  async function: fire and forget).
* ``POST /thumbnail?size=N`` answers at once and then runs a CPU-bound
  function (a plain ``def``) in a worker thread, so the event loop keeps
  serving other requests meanwhile.
* ``GET /log`` lists what the background work has done so far.

Tasks run only once ``pagi.connection`` reports the response complete; if
the client left before that they are skipped, unless ``always=True``.
"""

import hashlib
import threading
import time
from typing import Any

import anyio

from pagi.tools import JSONResponse, Request, Router
from pagi.tools.background import BackgroundTask, BackgroundTasks

router = Router()
LOG: list[dict[str, Any]] = []


async def send_welcome(email: str) -> None:
    await anyio.sleep(0.5)  # stands in for talking to a mail server
    LOG.append({"task": "welcome", "email": email})


def make_thumbnail(size: int) -> None:
    """CPU work in a thread: hash a buffer ``size`` times."""
    digest = b""
    for _ in range(size):
        digest = hashlib.sha256(digest + b"x" * 4096).digest()
    LOG.append(
        {
            "task": "thumbnail",
            "size": size,
            "thread": threading.current_thread().name != "MainThread",
        }
    )


@router.post("/signup")
async def signup(request: Request) -> Any:
    email = request.query_params.get("email", "")
    if "@" not in email:
        return JSONResponse({"error": "give ?email=someone@example.org"}, status=400)
    tasks = BackgroundTasks([BackgroundTask(send_welcome, email)])
    return JSONResponse({"queued": email, "at": time.time()}, status=202, background=tasks)


@router.post("/thumbnail")
async def thumbnail(request: Request) -> Any:
    size = max(1, min(int(request.query_params.get("size", "1000")), 200_000))
    return JSONResponse(
        {"queued": size}, status=202, background=BackgroundTask(make_thumbnail, size)
    )


@router.get("/log")
async def log(request: Request) -> Any:
    return {"done": LOG}


app = router
