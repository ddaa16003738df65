"""Full demo: routing, a session login, SSE notifications, a WebSocket chat, a Builder stack.

* ``POST /login`` (``{"name", "password"}``) signs in: the ``Session``
  middleware keeps ``user`` in a signed cookie, and the session id is
  regenerated on login; ``POST /logout`` clears it; ``GET /me`` says who
  you are (``401`` when nobody).
* ``POST /notes`` (signed in) adds a note and notifies everyone:
  ``GET /notifications`` is an SSE stream of ``note`` and ``chat`` events
  (declined with ``401`` when not signed in).
* ``/chat`` is a WebSocket for signed-in users (denied with ``403``
  otherwise): ``{"text": "..."}`` goes to every chat socket and feed;
  anything else is answered with ``{"error": ...}``.
* ``GET /`` is the page (``index.html``) that uses all of it.

The stack, outermost first, built with ``Builder``: ``ErrorHandler`` (a
bug is a plain ``500``, never a traceback to the client), ``RequestId``,
``SecurityHeaders``, ``GZip``, ``Session``. Users: ann / wonderland and
bob / builder. ``DEMO_SECRET`` keeps sessions valid across restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pagi.tools import SSE, HTMLResponse, JSONResponse, Request, Router, WebSocket
from pagi.tools.middleware import Builder, ErrorHandler, GZip, RequestId, SecurityHeaders, Session

SECRET = os.environ.get("DEMO_SECRET") or secrets.token_hex(32)
USERS = {"ann": "wonderland", "bob": "builder"}
PAGE = (Path(__file__).resolve().parent / "index.html").read_text()
NOTES: list[dict[str, str]] = []


class Hub:
    """Fan-out of events to every subscriber (SSE streams and chat sockets)."""

    def __init__(self) -> None:
        self.subscribers: set[MemoryObjectSendStream[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber.send_nowait(event)
            except anyio.WouldBlock:
                pass  # a subscriber this far behind misses an event rather than stalling others

    def subscribe(self) -> Any:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
        self.subscribers.add(send)
        return send, receive


hub = Hub()
router = Router()


def user_of(connection: Any) -> str | None:
    return connection.session.get("user")


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status=status)


async def json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@router.get("/")
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.post("/login")
async def login(request: Request) -> Any:
    body = await json_object(request)
    if body is None:
        return problem(400, 'send a JSON object: {"name": ..., "password": ...}')
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or USERS.get(name) != password:
        return problem(401, "wrong name or password")
    request.session.regenerate()  # an id planted before login is worth nothing after it
    request.session["user"] = name
    return {"user": name}


@router.post("/logout")
async def logout(request: Request) -> Any:
    request.session.clear()
    return {"user": None}


@router.get("/me")
async def me(request: Request) -> Any:
    user = user_of(request)
    return {"user": user} if user else problem(401, "not signed in")


@router.get("/notes")
async def list_notes(request: Request) -> Any:
    return {"notes": NOTES}


@router.post("/notes")
async def add_note(request: Request) -> Any:
    user = user_of(request)
    if user is None:
        return problem(401, "sign in first")
    body = await json_object(request)
    text = body.get("text") if body else None
    if not isinstance(text, str) or not text.strip() or len(text) > 500:
        return problem(422, "text must be a non-empty string of at most 500 characters")
    note = {"by": user, "text": text.strip()}
    NOTES.append(note)
    hub.publish({"event": "note", "data": note})
    return JSONResponse(note, status=201)


@router.sse("/notifications")
async def notifications(sse: SSE) -> None:
    if user_of(sse) is None:
        await sse.decline(status=401, body="sign in first")
        return
    send, receive = hub.subscribe()
    try:
        await sse.start()
        await sse.send({"user": user_of(sse)}, event="hello")

        async def relay() -> None:
            async for item in receive:
                await sse.send(item["data"], event=item["event"])

        await sse.run_until_disconnect(relay)
    finally:
        hub.subscribers.discard(send)


@router.websocket("/chat")
async def chat(websocket: WebSocket) -> None:
    user = user_of(websocket)
    if user is None:
        await websocket.deny(status=403, body="sign in first")
        return
    await websocket.accept()
    send, receive = hub.subscribe()

    async def relay() -> None:
        async for item in receive:
            if item["event"] == "chat":
                await websocket.send_json(item["data"])

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(relay)
            async for message in websocket:
                text = chat_text(message)
                if text is None:
                    await websocket.send_json(
                        {"error": 'send {"text": "..."} (1 to 500 characters)'}
                    )
                    continue
                hub.publish({"event": "chat", "data": {"from": user, "text": text}})
            group.cancel_scope.cancel()  # the client left: stop relaying
    finally:
        hub.subscribers.discard(send)


def chat_text(message: str | bytes) -> str | None:
    """The text of a ``{"text": ...}`` message, or ``None`` for anything else."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > 500:
        return None
    return text.strip()


app = (
    Builder()
    .add(ErrorHandler)
    .add(RequestId)
    .add(SecurityHeaders)
    .add(GZip)
    .add(Session, secret_key=SECRET)
    .build(router)
)
