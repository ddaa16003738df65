"""Notes: a small app on pagi.tools -- a JSON API, live updates over SSE, a WebSocket.

Run it with ``pagi-server examples/notes/app.py`` and try::

    curl -X POST localhost:5000/notes -H 'content-type: application/json' -d '{"text": "hi"}'
    curl localhost:5000/notes
    curl -N -H 'accept: text/event-stream' localhost:5000/notes/events

The notes live in memory, created at startup by the lifespan context and
shared with every request through ``request.state`` (one store per worker).
New notes go out on the ``notes`` channel of a ``pagi.tools.channels``
hub: in memory by default, or over Redis with ``--redis URL`` (``python
examples/notes/app.py --redis redis://... --port 5000``) or
``NOTES_REDIS_URL``, so that SSE listeners on every worker see notes added
on any of them. A listener that reconnects with ``Last-Event-ID`` gets the
notes it missed (the channel keeps the last 50).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pagi.tools import (
    SSE,
    HTTPException,
    JSONResponse,
    Lifespan,
    Request,
    Router,
    WebSocket,
)
from pagi.tools.channels import Channels, Event, RedisBackend

CHANNEL = "notes"


class NoteStore:
    """Notes in memory; every new note is also published on the ``notes`` channel."""

    def __init__(self, channels: Channels) -> None:
        self.notes: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.channels = channels

    async def add(self, text: str) -> dict[str, Any]:
        note_id = next(self._ids)
        note: dict[str, Any] = {"id": note_id, "text": text}
        self.notes[note_id] = note
        # Never waits for listeners: each has a bounded queue (see pagi.tools.channels).
        await self.channels.publish(CHANNEL, note)
        return note


router = Router()


def store_of(connection: Request | SSE | WebSocket) -> NoteStore:
    store: NoteStore = connection.state["notes"]
    return store


@router.get("/notes", name="list")
async def list_notes(request: Request) -> Any:
    return {"notes": list(store_of(request).notes.values())}


@router.post("/notes")
async def create_note(request: Request) -> Any:
    data = await request.json()
    if not isinstance(data, dict) or not isinstance(data.get("text"), str) or not data["text"]:
        raise HTTPException(422, 'send {"text": "..."}')
    note = await store_of(request).add(data["text"])
    location = request.url_for("note", note_id=note["id"])
    return JSONResponse(note, status=201, headers={"location": location})


@router.get("/notes/{note_id:int}", name="note")
async def get_note(request: Request) -> Any:
    note = store_of(request).notes.get(request.path_params["note_id"])
    if note is None:
        raise HTTPException(404, "no such note")
    return note


@router.sse("/notes/events")
async def note_events(sse: SSE) -> None:
    """Every new note, as event ``note``; ``Last-Event-ID`` replays the last 50."""
    store = store_of(sse)
    await sse.start()
    await sse.keepalive(15)
    async with store.channels.subscribe(
        CHANNEL, last_event_id=sse.last_event_id, transport=sse.scope.get("pagi.transport")
    ) as updates:
        await sse.stream(note_updates(updates))


async def note_updates(updates: AsyncIterator[Event]) -> Any:
    async for event in updates:
        yield {"data": event.data, "event": "note", "id": event.id}


@router.websocket("/notes/ws")
async def note_socket(ws: WebSocket) -> None:
    """Send ``{"text": ...}`` to add a note; each reply is the stored note.

    Anything else (not JSON, or JSON without a non-empty ``text``) gets
    ``{"error": ...}`` back and the socket stays open: bad input from a
    client is the client's mistake, answered, never a server traceback.
    """
    await ws.accept()
    async for raw in ws:
        try:
            message = json.loads(raw)
        except ValueError:  # includes UnicodeDecodeError for binary frames
            await ws.send_json({"error": 'not JSON: send {"text": "..."}'})
            continue
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text:
            await ws.send_json({"error": 'send {"text": "..."}'})
            continue
        await ws.send_json(await store_of(ws).add(text))


@asynccontextmanager
async def notes_lifespan(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Channels (memory, or Redis from NOTES_REDIS_URL) and the store, for the server's life."""
    url = os.environ.get("NOTES_REDIS_URL") or None
    channels = Channels(RedisBackend(url) if url else None)
    channels.configure(CHANNEL, history=50)
    async with channels:
        yield {"notes": NoteStore(channels)}


app = Lifespan(router, context=[notes_lifespan])


def main(argv: list[str]) -> None:
    """``python app.py [--redis URL] [pagi-server options]``: serve this app."""
    from pagi.server.cli import main as serve

    args = list(argv)
    if "--redis" in args:
        at = args.index("--redis")
        os.environ["NOTES_REDIS_URL"] = args[at + 1]
        del args[at : at + 2]
    serve([__file__, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
