"""PAGI side of run_security.py: the issue-10 security stack around a JSON route.

``/stack``: ProxyHeaders + TrustedHost + SecurityHeaders + CORS + Session
(cookie store, read only) around a router route that reads the session and
returns a small JSON dict. ``/bare``: the same route with no middleware.
``/login`` (behind the stack) sets the session the benchmark then sends back.
"""

from pagi.tools import Request, Router
from pagi.tools.middleware import CORS, ProxyHeaders, SecurityHeaders, Session, TrustedHost

SECRET = "bench-session-secret-" + "b" * 32


def make_router():
    router = Router()

    @router.get("/stack")
    @router.get("/bare", name="bare")
    async def hello(request: Request):
        session = request.scope.get("pagi.session")
        user = session.get("user") if session is not None else None
        return {"message": "Hello, world!", "user": user, "n": 42}

    @router.get("/login")
    async def login(request: Request):
        request.session["user"] = "bench"
        return {"ok": True}

    return router


stacked = ProxyHeaders(
    TrustedHost(
        SecurityHeaders(
            CORS(
                Session(make_router(), secret_key=SECRET),
                allow_origins=["https://app.example"],
                allow_credentials=True,
            )
        ),
        allowed_hosts=["127.0.0.1", "localhost"],
    ),
    trusted=["127.0.0.1"],
)
bare = make_router()


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bare":
        await bare(scope, receive, send)
    else:
        await stacked(scope, receive, send)
