"""The app test_tools_security_over_server.py runs under the real pagi-server."""

from __future__ import annotations

from typing import Any

from pagi.tools import Request, Router, WebSocket
from pagi.tools.middleware import CORS, RateLimit, SecurityHeaders, Session, TrustedHost

router = Router()


@router.post("/login")
async def login(request: Request) -> Any:
    request.session["user"] = (await request.json())["user"]
    request.session.regenerate()  # type: ignore[attr-defined]
    return {"ok": True}


@router.get("/me")
async def me(request: Request) -> Any:
    return {"user": request.session.get("user")}


@router.route("/api", methods=["GET", "PUT"])
async def api(request: Request) -> Any:
    return {"method": request.method}


@router.get("/limited")
async def limited(request: Request) -> Any:
    return {"ok": True}


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {websocket.session.get('user')}")
    await websocket.close()


app = TrustedHost(
    SecurityHeaders(
        CORS(
            Session(
                RateLimit(router, rate=0.01, burst=2, paths=["/limited"]),
                secret_key="over-the-wire-" + "w" * 32,
            ),
            allow_origins=["https://app.example"],
            allow_methods=["GET", "PUT"],
            allow_headers=["x-token"],
            allow_credentials=True,
        )
    ),
    allowed_hosts=["127.0.0.1", "localhost"],
)
