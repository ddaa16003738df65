"""ASGI side of run_security.py: the equivalent Starlette stack around a JSON route.

``/stack``: uvicorn's ProxyHeadersMiddleware + Starlette TrustedHostMiddleware
+ a security-headers middleware (Starlette has none; this one adds the same
four headers as pagi.tools SecurityHeaders) + CORSMiddleware +
SessionMiddleware, around a Starlette route reading the session.
``/bare``: the same route in a Starlette app without that stack. uvicorn runs
with ``--no-proxy-headers`` so the proxy rule is applied once, by the stack.
"""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

SECRET = "bench-session-secret-" + "b" * 32
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    """Add the four headers unless the app set them (pure ASGI, no BaseHTTPMiddleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def hello(request):
    user = request.session.get("user") if "session" in request.scope else None
    return JSONResponse({"message": "Hello, world!", "user": user, "n": 42})


async def login(request):
    request.session["user"] = "bench"
    return JSONResponse({"ok": True})


stacked = Starlette(
    routes=[Route("/stack", hello), Route("/login", login)],
    middleware=[
        Middleware(ProxyHeadersMiddleware, trusted_hosts=["127.0.0.1"]),
        Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"]),
        Middleware(SecurityHeadersMiddleware),
        Middleware(CORSMiddleware, allow_origins=["https://app.example"], allow_credentials=True),
        Middleware(SessionMiddleware, secret_key=SECRET),
    ],
)
bare = Starlette(routes=[Route("/bare", hello)])


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bare":
        await bare(scope, receive, send)
    else:
        await stacked(scope, receive, send)
