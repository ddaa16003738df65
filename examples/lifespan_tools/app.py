"""Lifespan utilities: startup and shutdown hooks, a context-manager lifespan, shared state.

``Lifespan(router, startup=[...], shutdown=[...], context=[...])`` runs the
hooks in order at startup (sync or async, each given the state dict), then
enters the context managers; at shutdown it exits the contexts in reverse
and runs the shutdown hooks. Whatever a context yields is merged into the
state, which handlers read as ``request.state``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pagi.tools import Lifespan, Request, Router

router = Router()


def load_settings(state: dict[str, Any]) -> None:  # a plain function works too
    state["settings"] = {"greeting": "hello"}
    print("lifespan_tools: settings loaded", flush=True)


async def open_counter(state: dict[str, Any]) -> None:
    state["hits"] = {"count": 0}


@asynccontextmanager
async def pool(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Stands in for a database pool: opened at startup, closed at shutdown."""
    connections = ["conn-1", "conn-2"]
    print("lifespan_tools: pool opened", flush=True)
    try:
        yield {"pool": connections}
    finally:
        print("lifespan_tools: pool closed", flush=True)


async def report(state: dict[str, Any]) -> None:
    print(f"lifespan_tools: served {state['hits']['count']} hits", flush=True)


@router.get("/")
async def index(request: Request) -> Any:
    request.state["hits"]["count"] += 1
    return {
        "greeting": request.state["settings"]["greeting"],
        "pool": request.state["pool"],
        "hits": request.state["hits"]["count"],
    }


app = Lifespan(router, startup=[load_settings, open_counter], shutdown=[report], context=[pool])
