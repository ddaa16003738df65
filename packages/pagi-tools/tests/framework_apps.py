"""Real frameworks for test_tools_bridges_frameworks.py, served by pagi-server.

``fastapi_app``, ``starlette_app`` and ``django_app`` run with
``--interface asgi``, ``flask_app`` with ``--interface wsgi``.
``FRAMEWORK_DATA`` names a directory holding ``big.bin`` (served as a file)
and ``static/hello.txt``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("FRAMEWORK_DATA", "/nonexistent"))
CHUNK = b"s" * 40_000  # three of them are well past the 64 KiB a more_body mix-up would cut

# --- FastAPI --------------------------------------------------------------------

from fastapi import Depends, FastAPI, Header, HTTPException, Request, WebSocket  # noqa: E402
from fastapi.responses import FileResponse, StreamingResponse  # noqa: E402
from pydantic import BaseModel  # noqa: E402


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


fastapi_app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


def token(x_token: str = Header()) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return x_token


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def create_item(item: Item, user: str = Depends(token)) -> dict[str, Any]:
    return {"name": item.name, "price": item.price, "by": user}


@fastapi_app.get("/greeting")
async def greeting(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


@fastapi_app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}


@fastapi_app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield CHUNK

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@fastapi_app.get("/file")
async def file() -> FileResponse:
    return FileResponse(DATA / "big.bin")


@fastapi_app.websocket("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"fastapi says {text}")


# --- Starlette -------------------------------------------------------------------

from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse  # noqa: E402
from starlette.routing import Mount, Route, WebSocketRoute  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402
from starlette.websockets import WebSocket as StarletteWebSocket  # noqa: E402


class Stamp(BaseHTTPMiddleware):
    async def dispatch(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-stamp"] = "starlette-middleware"
        return response


async def hello_route(request: Any) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.path_params['name']}")


async def json_route(request: Any) -> JSONResponse:
    return JSONResponse({"method": request.method, "body": (await request.body()).decode()})


async def ws_route(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    data = await websocket.receive_bytes()
    await websocket.send_bytes(data[::-1])
    await websocket.close(code=4000)


starlette_app = Starlette(
    routes=[
        Route("/hello/{name}", hello_route),
        Route("/json", json_route, methods=["POST"]),
        WebSocketRoute("/ws", ws_route),
        Mount("/static", StaticFiles(directory=str(DATA / "static"), check_dir=False)),
    ],
    middleware=[Middleware(Stamp)],
)


# --- Django ----------------------------------------------------------------------

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bridge-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def sync_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"sync {request.method} {request.GET.get('x', '')}")


async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"async": True, "body": request.body.decode(), "path": request.path})


urlpatterns = [path("sync", sync_view), path("async", async_view)]

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()


# --- Flask (WSGI) ------------------------------------------------------------------

from flask import Flask, Response, request, send_file, stream_with_context  # noqa: E402

flask_app = Flask(__name__)


@flask_app.post("/form")
def form() -> dict[str, Any]:
    return {"name": request.form["name"], "tags": request.form.getlist("tag")}


@flask_app.get("/stream")
def flask_stream() -> Response:
    def chunks() -> Any:
        for i in range(3):
            yield f"line {i}\n" + "f" * 30_000 + "\n"

    return Response(stream_with_context(chunks()), mimetype="text/plain")


@flask_app.get("/download")
def download() -> Response:
    return send_file(DATA / "big.bin", as_attachment=True, download_name="big.bin")


@flask_app.post("/upload")
def flask_upload() -> dict[str, int]:
    return {"received": len(request.get_data())}
