"""Class-based endpoints: one class per resource for HTTP, WebSocket and SSE.

A small shared list of to-dos, served three ways:

* ``TodoList`` and ``TodoItem`` (``HTTPEndpoint``): a method per HTTP
  verb (``get``, ``post``, ``patch``, ``delete``); other verbs get ``405``
  with ``Allow``, ``OPTIONS`` and ``HEAD`` come for free.
* ``TodoSocket`` (``WebSocketEndpoint``): ``on_connect`` greets,
  ``on_receive`` takes ``{"add": "text"}`` or ``{"done": 1}`` and answers,
  ``on_disconnect`` counts who left. Text that is not JSON, or a message
  it does not know, is answered with ``{"error": ...}`` and the socket
  stays open.
* ``TodoFeed`` (``SSEEndpoint``): ``on_connect`` checks ``?only=all|open|done``
  and declines anything else with a ``400`` that says so; ``stream`` sends
  a ``snapshot`` then a ``todo`` event for every change it shows;
  ``on_disconnect`` unsubscribes.

Every change, from HTTP or WebSocket, reaches every feed.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from pagi.tools import (
    SSE,
    HTTPEndpoint,
    HTTPException,
    JSONResponse,
    Request,
    Response,
    Route,
    Router,
    SSEEndpoint,
    SSERoute,
    WebSocket,
    WebSocketEndpoint,
    WebSocketRoute,
)

TODOS: dict[int, dict[str, Any]] = {}
USAGE = 'send {"add": "some text"} or {"done": id}'
FEEDS: set[MemoryObjectSendStream[dict[str, Any]]] = set()
STATS = {"sockets_closed": 0}


def add_todo(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip() or len(text) > 200:
        raise ValueError("text must be a non-empty string of at most 200 characters")
    todo = {"id": max(TODOS, default=0) + 1, "text": text.strip(), "done": False}
    TODOS[todo["id"]] = todo
    publish("added", todo)
    return todo


def publish(change: str, todo: dict[str, Any]) -> None:
    for feed in list(FEEDS):
        try:
            feed.send_nowait({"change": change, "todo": todo})
        except anyio.WouldBlock:
            pass  # a feed that is this far behind misses a change rather than stalling us


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status=status)


async def json_object(request: Request) -> dict[str, Any]:
    body = await request.json()  # 400 with a message when the body is not JSON
    if not isinstance(body, dict):
        raise HTTPException(422, "send a JSON object")
    return body


class TodoList(HTTPEndpoint):
    async def get(self, request: Request) -> Any:
        return {"todos": list(TODOS.values())}

    async def post(self, request: Request) -> Response:
        body = await json_object(request)
        try:
            todo = add_todo(body.get("text"))
        except ValueError as exc:
            return error(422, str(exc))
        return JSONResponse(todo, status=201, headers={"location": f"/todos/{todo['id']}"})


class TodoItem(HTTPEndpoint):
    def find(self, request: Request) -> dict[str, Any]:
        todo_id = request.path_params["id"]
        if todo_id not in TODOS:
            raise HTTPException(404, f"no to-do {todo_id}")
        return TODOS[todo_id]

    async def get(self, request: Request) -> Any:
        return self.find(request)

    async def patch(self, request: Request) -> Any:
        todo = self.find(request)
        body = await json_object(request)
        if not isinstance(body.get("done"), bool):
            return error(422, "done must be true or false")
        todo["done"] = body["done"]
        publish("updated", todo)
        return todo

    async def delete(self, request: Request) -> Response:
        todo = TODOS.pop(self.find(request)["id"])
        publish("deleted", todo)
        return Response(status=204)


class TodoSocket(WebSocketEndpoint):
    encoding = "text"  # JSON is parsed here, so a bad message gets an answer, not a close

    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"hello": USAGE, "count": len(TODOS)})

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            await websocket.send_json({"error": "not JSON: " + USAGE})
            return
        if isinstance(message, dict) and "add" in message:
            try:
                await websocket.send_json({"added": add_todo(message["add"])})
            except ValueError as exc:
                await websocket.send_json({"error": str(exc)})
        elif isinstance(message, dict) and "done" in message:
            wanted = message["done"]
            todo = TODOS.get(wanted) if type(wanted) is int else None  # not True, not 1.0
            if todo is None:
                await websocket.send_json({"error": f"no to-do {wanted!r}"})
                return
            todo["done"] = True
            publish("updated", todo)
            await websocket.send_json({"updated": todo})
        else:
            await websocket.send_json({"error": "unknown message: " + USAGE})

    async def on_disconnect(self, websocket: WebSocket, code: int, reason: str) -> None:
        STATS["sockets_closed"] += 1


SHOWN = {
    "all": lambda todo: True,
    "open": lambda todo: not todo["done"],
    "done": lambda todo: todo["done"],
}


class TodoFeed(SSEEndpoint):
    keepalive_interval = 15  # the server sends a comment line this often

    async def on_connect(self, sse: SSE) -> None:
        self.only = sse.query_params.get("only", "all")
        if self.only not in SHOWN:
            await sse.decline(status=400, body="only must be all, open or done")
            return
        self.changes, self.inbox = anyio.create_memory_object_stream[dict[str, Any]](100)
        FEEDS.add(self.changes)
        await sse.start()

    async def stream(self, sse: SSE) -> None:
        shown = SHOWN[self.only]
        await sse.send({"todos": [t for t in TODOS.values() if shown(t)]}, event="snapshot")
        async for change in self.inbox:
            if shown(change["todo"]):
                await sse.send(change, event="todo")

    async def on_disconnect(self, sse: SSE) -> None:
        FEEDS.discard(self.changes)
        self.changes.close()
        self.inbox.close()


async def stats(request: Request) -> Any:
    return {**STATS, "feeds": len(FEEDS)}


app = Router(
    [
        Route("/todos", TodoList),
        Route("/todos/{id:int}", TodoItem),
        WebSocketRoute("/todos/socket", TodoSocket),
        SSERoute("/todos/feed", TodoFeed),
        Route("/stats", stats),
    ]
)
