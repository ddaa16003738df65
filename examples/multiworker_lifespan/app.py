"""Multi-worker lifespan: each worker process runs its own startup and shutdown.

Run with ``--workers 2``. Every worker writes ``startup-<pid>`` when its
lifespan starts and ``shutdown-<pid>`` when it ends (after the server has
drained its requests), in ``LIFESPAN_DIR`` (the current folder by default),
so a test or an operator can see that each worker started and shut down.
``GET /`` answers with the worker's pid and the time its startup ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pagi.tools import Lifespan, Request, Router

OUT = Path(os.environ.get("LIFESPAN_DIR", "."))
router = Router()


def record(step: str) -> None:
    (OUT / f"{step}-{os.getpid()}").write_text(f"{time.time():.3f}\n")
    print(f"multiworker_lifespan: worker {os.getpid()} {step}", flush=True)


def startup(state: dict[str, Any]) -> None:
    state["pid"], state["started"] = os.getpid(), time.time()
    record("startup")


def shutdown(state: dict[str, Any]) -> None:
    record("shutdown")


@router.get("/")
async def whoami(request: Request) -> Any:
    return {"pid": request.state["pid"], "started": request.state["started"]}


app = Lifespan(router, startup=[startup], shutdown=[shutdown])
