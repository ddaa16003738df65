"""A class-based router: controllers as classes, mounted as sub-routers, with stash and middleware.

``Controller`` (below, about 30 lines) turns a class into a ``Router``:
methods marked ``@get(path)`` / ``@post(path)`` become routes, the
class's ``middleware`` list wraps its whole router, and a route's own
``middleware=[...]`` wraps just that route. Controllers are mounted with
``Mount`` under ``/api``, which has middleware of its own; the app has one
more layer outside everything.

Layers talk to handlers through the stash (``request.stash``, which is
``scope["pagi.stash"]``: one dict per request, shared by every layer):

* ``Trail`` (one per level, ``Middleware(Trail, "app")``...) appends its
  label, so ``GET /api/whoami`` shows the order the layers ran in;
* ``LoadUser`` (on the ``/api`` mount) reads ``Authorization: Bearer
  <token>`` and puts the user, or ``None``, in ``stash["user"]``;
* ``RequireRole`` (on the notes controller, and on one users route) answers
  ``401`` without a user and ``403`` with the wrong role, in JSON.

Tokens for trying it: ``ann-token`` (admin), ``bob-token`` (user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pagi.spec import Receive, Scope, Send
from pagi.tools import HTTPException, JSONResponse, Mount, Request, Route, Router
from pagi.tools.middleware import BaseMiddleware, Middleware

TOKENS = {
    "ann-token": {"name": "ann", "role": "admin"},
    "bob-token": {"name": "bob", "role": "user"},
}
RANKS = {"user": 1, "admin": 2}


# -- the class-based router ---------------------------------------------------------


def route(method: str, path: str, *, middleware: Sequence[Middleware] = ()) -> Callable[[Any], Any]:
    """Mark a controller method as the handler of ``method path``."""

    def mark(func: Any) -> Any:
        func.route_spec = (method, path, list(middleware))
        return func

    return mark


def get(path: str, **options: Any) -> Callable[[Any], Any]:
    return route("GET", path, **options)


def post(path: str, **options: Any) -> Callable[[Any], Any]:
    return route("POST", path, **options)


class Controller:
    """Subclass, mark methods with ``@get``/``@post``; ``router()`` builds the ``Router``."""

    middleware: ClassVar[Sequence[Middleware]] = ()

    def router(self) -> Router:
        routes = []
        for name in dir(type(self)):
            spec = getattr(getattr(type(self), name), "route_spec", None)
            if spec is not None:
                method, path, middleware = spec
                handler = getattr(self, name)  # bound: handlers see the controller's state
                routes.append(Route(path, handler, methods=[method], middleware=middleware))
        return Router(routes, middleware=list(self.middleware))


# -- middleware that fills and reads the stash ------------------------------------------


class Trail(BaseMiddleware):
    """Record ``label`` in ``stash["trail"]``: shows which layers ran, in order."""

    def __init__(self, app: Any, label: str) -> None:
        super().__init__(app)
        self.label = label

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        Request(scope).stash.setdefault("trail", []).append(self.label)
        await self.app(scope, receive, send)


class LoadUser(BaseMiddleware):
    """``stash["user"]``: the user of the bearer token, or ``None``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        request.stash["user"] = TOKENS.get(token) if scheme.lower() == "bearer" else None
        await self.app(scope, receive, send)


class RequireRole(BaseMiddleware):
    """``401`` without a user, ``403`` when the user's role ranks below ``role``."""

    def __init__(self, app: Any, role: str) -> None:
        super().__init__(app)
        if role not in RANKS:
            raise ValueError(f"role must be one of {sorted(RANKS)}, got {role!r}")
        self.role = role

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = Request(scope).stash.get("user")
        if user is None:
            answer = JSONResponse(
                {"error": "send Authorization: Bearer <token>"},
                status=401,
                headers={"www-authenticate": "Bearer"},
            )
        elif RANKS[user["role"]] < RANKS[self.role]:
            answer = JSONResponse({"error": f"this needs the {self.role} role"}, status=403)
        else:
            await self.app(scope, receive, send)
            return
        await answer(scope, receive, send)


# -- controllers --------------------------------------------------------------------


async def json_object(request: Request) -> dict[str, Any]:
    body = await request.json()  # a 400 that says why when the body is not JSON
    if not isinstance(body, dict):
        raise HTTPException(422, "send a JSON object")
    return body


class Users(Controller):
    middleware = (Middleware(Trail, "users controller"),)

    def __init__(self) -> None:
        self.users = {user["name"]: dict(user) for user in TOKENS.values()}

    @get("/")
    async def list_users(self, request: Request) -> Any:
        return {"users": sorted(self.users)}

    @get("/{name}")
    async def show(self, request: Request) -> Any:
        name = request.path_params["name"]
        if name not in self.users:
            return JSONResponse({"error": f"no user {name!r}"}, status=404)
        return self.users[name]

    @post("/", middleware=[Middleware(Trail, "create route"), Middleware(RequireRole, "admin")])
    async def create(self, request: Request) -> Any:
        body = await json_object(request)
        name, role = body.get("name"), body.get("role", "user")
        if not isinstance(name, str) or not name.isalnum() or len(name) > 30:
            return JSONResponse({"error": "name must be 1 to 30 letters or digits"}, status=422)
        if role not in RANKS:
            return JSONResponse({"error": f"role must be one of {sorted(RANKS)}"}, status=422)
        if name in self.users:
            return JSONResponse({"error": f"user {name!r} exists"}, status=409)
        self.users[name] = {"name": name, "role": role}
        return JSONResponse(self.users[name], status=201)


class Notes(Controller):
    """Each user's own notes; every route needs a signed-in user."""

    middleware = (Middleware(Trail, "notes controller"), Middleware(RequireRole, "user"))

    def __init__(self) -> None:
        self.notes: dict[str, list[str]] = {}

    @get("/")
    async def mine(self, request: Request) -> Any:
        mine = self.notes.get(request.stash["user"]["name"], [])
        return {"notes": mine, "trail": request.stash["trail"]}

    @post("/")
    async def add(self, request: Request) -> Any:
        text = (await json_object(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            return JSONResponse({"error": "text must be a non-empty string"}, status=422)
        mine = self.notes.setdefault(request.stash["user"]["name"], [])
        mine.append(text.strip())
        return JSONResponse({"notes": mine}, status=201)


async def whoami(request: Request) -> Any:
    return {"user": request.stash["user"], "trail": request.stash["trail"]}


async def home(request: Request) -> Any:
    return {"try": ["/api/users/", "/api/users/ann", "/api/notes/", "/api/whoami"]}


app = Router(
    [
        Route("/", home),
        Mount(
            "/api",
            routes=[
                Route("/whoami", whoami, middleware=[Middleware(Trail, "whoami route")]),
                Mount("/users", Users().router()),
                Mount("/notes", Notes().router()),
            ],
            middleware=[Middleware(Trail, "api mount"), Middleware(LoadUser)],
        ),
    ],
    middleware=[Middleware(Trail, "app")],
)
