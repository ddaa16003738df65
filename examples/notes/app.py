"""Notes: a small app on pagi.tools -- a JSON API, live updates over SSE, a WebSocket.

Run it with ``pagi-server examples/notes/app.py`` and try::

    curl -X POST localhost:5000/notes -H 'content-type: application/json' -d '{"text": "hi"}'
    curl localhost:5000/notes
    curl -N -H 'accept: text/event-stream' localhost:5000/notes/events

The notes live in memory, created at startup by the lifespan hook and
shared with every request through ``request.state`` (one store per worker).
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio

from pagi.tools import (
    SSE,
    HTTPException,
    JSONResponse,
    Lifespan,
    Request,
    Router,
    WebSocket,
)


class NoteStore:
    """Notes in memory, plus a broadcast to every live SSE listener."""

    def __init__(self) -> None:
        self.notes: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._listeners: set[anyio.abc.ObjectSendStream[dict[str, Any]]] = set()

    def add(self, text: str) -> dict[str, Any]:
        note = {"id": next(self._ids), "text": text}
        self.notes[note["id"]] = note
        for listener in list(self._listeners):
            try:
                listener.send_nowait(note)
            except anyio.WouldBlock:
                pass  # a slow listener misses an update rather than stalling writers
        return note

    def listen(self) -> anyio.abc.ObjectReceiveStream[dict[str, Any]]:
        """A new listener: a small queue of the notes added from now on."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](16)
        self._listeners.add(send)
        return receive

    def prune(self) -> None:
        """Drop listeners whose receiving end was closed (their client left)."""
        for send in list(self._listeners):
            if send.statistics().open_receive_streams == 0:
                self._listeners.discard(send)
                send.close()


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
    note = store_of(request).add(data["text"])
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
    store = store_of(sse)
    updates = store.listen()
    await sse.start()
    await sse.keepalive(15)
    try:
        await sse.stream(note_updates(updates))
    finally:
        updates.close()
        store.prune()


async def note_updates(updates: anyio.abc.ObjectReceiveStream[dict[str, Any]]) -> Any:
    async for note in updates:
        yield {"data": note, "event": "note", "id": str(note["id"])}


@router.websocket("/notes/ws")
async def note_socket(ws: WebSocket) -> None:
    """Send ``{"text": ...}`` to add a note; each reply is the stored note."""
    await ws.accept()
    async for message in ws.iter_json():
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text:
            await ws.send_json({"error": 'send {"text": "..."}'})
            continue
        await ws.send_json(store_of(ws).add(text))


def open_store(state: dict[str, Any]) -> None:
    state["notes"] = NoteStore()


app = Lifespan(router, startup=[open_store])
