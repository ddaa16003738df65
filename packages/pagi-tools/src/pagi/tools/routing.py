"""Routing: map paths (and hosts) to handlers and apps, per scope type.

Theory of operation
-------------------
Each route's :meth:`~BaseRoute.matches` is pure: it looks at a scope and
returns a :class:`Match` level plus the keys a matching child scope gets
(``path_params``, and for mounts the shortened ``path`` and extended
``root_path``). The :class:`Router` tries routes in registration order on a
*copy* of the caller's scope (``dict(scope)``, R-MW-2), applies the first
full match and calls it. A partial match (right path, wrong method) turns a
miss into 405 with ``Allow`` (or answers ``OPTIONS``).

Paths are relative to ``root_path``: a :class:`Mount` at ``/api`` hands
``/users`` to its app and ``root_path + "/api"`` as the new root, and
``url_for`` puts the root back.

Handlers are plain async functions that *return* a response
(:class:`~pagi.tools.response.Response`, or a dict/list for JSON, or a
str for text); the route sends it. WebSocket and SSE handlers get a
:class:`~pagi.tools.websocket.WebSocket` / :class:`~pagi.tools.sse.SSE`.
A class (e.g. an endpoint class) or ``app=`` is used as a raw PAGI app.
Misses are answered in the scope's own terms: 404 on http, a denial on
websocket, a decline on sse (the :class:`~pagi.tools.response.Response`
emission rules do this).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.convertors import CONVERTORS, Convertor, PathConvertor
from pagi.tools.exception_handlers import (
    ExceptionHandler,
    ExceptionHandlers,
    HandlerKey,
    HandlerLayer,
)
from pagi.tools.exceptions import HTTPException
from pagi.tools.handlers import (
    Handler,
    SSEHandler,
    WebSocketHandler,
    error_response,
    request_response,
    sse_session,
    to_response,
    websocket_session,
)
from pagi.tools.lifespan import serve_lifespan
from pagi.tools.response import PlainTextResponse, RedirectResponse, Response

__all__ = [
    "BaseRoute",
    "Host",
    "Match",
    "Mount",
    "NoMatchFound",
    "Route",
    "Router",
    "SSERoute",
    "WebSocketRoute",
    "compile_path",
    "error_response",
    "request_response",
    "sse_session",
    "to_response",
    "websocket_session",
]

MiddlewareFactory = Callable[[App], App]
F = TypeVar("F", bound=Callable[..., Any])

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")


class NoMatchFound(LookupError):
    """``url_path_for`` found no route with that name and those parameters."""


class Match(enum.IntEnum):
    """How well a route fits a scope."""

    NONE = 0
    PARTIAL = 1  # the path fits, the method does not
    FULL = 2


def compile_path(path: str) -> tuple[re.Pattern[str], str, dict[str, Convertor]]:
    """``"/u/{id:int}"`` -> (regex, format string ``"/u/{id}"``, convertors by name)."""
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    pattern, template, convertors = "^", "", {}
    position = 0
    for m in _PARAM.finditer(path):
        name, kind = m.group(1), m.group(2) or "str"
        if kind not in CONVERTORS:
            raise ValueError(f"unknown convertor {kind!r} in {path!r}; known: {sorted(CONVERTORS)}")
        if name in convertors:
            raise ValueError(f"duplicate parameter {name!r} in {path!r}")
        literal = path[position : m.start()]
        pattern += re.escape(literal) + f"(?P<{name}>{CONVERTORS[kind].regex})"
        template += literal + "{" + name + "}"
        convertors[name] = CONVERTORS[kind]
        position = m.end()
    pattern += re.escape(path[position:])
    template += path[position:]
    return re.compile(pattern), template, convertors


def _fill(template: str, convertors: Mapping[str, Convertor], params: Mapping[str, Any]) -> str:
    values = {}
    for name, convertor in convertors.items():
        text = convertor.to_string(params[name])
        # Values are percent-encoded so they cannot change the path's shape
        # (tools-digest 10, defect 9); a path parameter keeps its slashes.
        values[name] = quote(text, safe="/" if isinstance(convertor, PathConvertor) else "")
    return template.format(**values)


def _wrap(app: App, middleware: Sequence[MiddlewareFactory] | None) -> App:
    # The first middleware listed is the outermost, as it reads.
    for factory in reversed(middleware or ()):
        app = factory(app)
    return app


class BaseRoute:
    """What the router needs from a route."""

    name: str | None = None

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        """Return the match level and the keys the child scope gets."""
        raise NotImplementedError

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a scope this route fully matched."""
        raise NotImplementedError

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path (relative to the router) for ``name``; else :class:`NoMatchFound`."""
        raise NoMatchFound(name)

    def allowed_methods(self) -> set[str]:
        """Methods this route answers (for ``Allow`` on a 405)."""
        return set()


class _PathRoute(BaseRoute):
    scope_type = "http"
    #: The class name the "exactly one of endpoint and app=" error gives.
    _label: ClassVar[str] = "Route"

    def __init__(
        self,
        path: str,
        endpoint: Any,
        app: App | None,
        name: str | None,
        middleware: Sequence[MiddlewareFactory] | None,
        adapt: Callable[[Any], App],
    ) -> None:
        # Exactly one of a handler (``adapt`` turns it into an app; a class is
        # an app already) and a raw ``app=``; the name defaults to the handler's.
        if (endpoint is None) == (app is None):
            raise TypeError(f"{type(self)._label} needs exactly one of endpoint and app=")
        if app is None:
            app = endpoint if isinstance(endpoint, type) else adapt(endpoint)
        if name is None:
            name = getattr(endpoint, "__name__", None)
        self.path = path
        self.regex, self.template, self.convertors = compile_path(path)
        self.name = name
        self.app = _wrap(app, middleware)

    def _match_path(self, scope: Scope) -> dict[str, Any] | None:
        if scope.get("type") != self.scope_type:
            return None
        m = self.regex.fullmatch(str(scope.get("path", "/")))
        if m is None:
            return None
        params = dict(scope.get("path_params") or {})
        for key, text in m.groupdict().items():
            params[key] = self.convertors[key].convert(text)
        return {"path_params": params, "pagi.route": self.path}

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        child = self._match_path(scope)
        return (Match.NONE, {}) if child is None else (Match.FULL, child)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **params: Any) -> str:
        if name != self.name or set(params) != set(self.convertors):
            raise NoMatchFound(name)
        return _fill(self.template, self.convertors, params)


class Route(_PathRoute):
    """An HTTP route: ``Route("/users/{id:int}", handler, methods=["GET", "PUT"])``.

    ``endpoint`` is an async handler ``(request) -> response``, or a class
    (an :class:`~pagi.tools.endpoints.HTTPEndpoint`) used as an app. Pass
    ``app=`` for any other raw PAGI app. HEAD is served wherever GET is.
    """

    def __init__(
        self,
        path: str,
        endpoint: Handler | type | None = None,
        *,
        app: App | None = None,
        methods: Iterable[str] | None = None,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> None:
        super().__init__(path, endpoint, app, name, middleware, request_response)
        if methods is None:
            methods = _endpoint_methods(endpoint) or ["GET"]
        self.methods = {m.upper() for m in methods}
        if "GET" in self.methods:
            self.methods.add("HEAD")

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        child = self._match_path(scope)
        if child is None:
            return Match.NONE, {}
        if scope.get("method") in self.methods:
            return Match.FULL, child
        return Match.PARTIAL, child

    def allowed_methods(self) -> set[str]:
        return set(self.methods)


def _endpoint_methods(endpoint: Any) -> list[str] | None:
    # An endpoint class answers the methods it defines; let the route know so
    # that the router's 405 check does not stand in its way.
    if isinstance(endpoint, type):
        allowed = getattr(endpoint, "allowed_methods", None)
        if callable(allowed):
            return list(allowed())
    return None


class WebSocketRoute(_PathRoute):
    """A WebSocket route; ``endpoint`` is ``async (websocket) -> None`` or a class."""

    scope_type = "websocket"
    _label = "WebSocketRoute"

    def __init__(
        self,
        path: str,
        endpoint: WebSocketHandler | type | None = None,
        *,
        app: App | None = None,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> None:
        super().__init__(path, endpoint, app, name, middleware, websocket_session)


class SSERoute(_PathRoute):
    """An SSE route; ``endpoint`` is ``async (sse) -> None`` or a class. Any method matches."""

    scope_type = "sse"
    _label = "SSERoute"

    def __init__(
        self,
        path: str,
        endpoint: SSEHandler | type | None = None,
        *,
        app: App | None = None,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> None:
        super().__init__(path, endpoint, app, name, middleware, sse_session)


def mount_scope(scope: Scope, matched: str) -> dict[str, Any]:
    """The keys a mounted app's scope gets: shorter ``path``, longer ``root_path``."""
    rest = str(scope.get("path", "/"))[len(matched) :]
    return {"path": rest or "/", "root_path": str(scope.get("root_path", "")) + matched}


class Mount(BaseRoute):
    """Hand every scope under ``path`` to an app or to a sub-router built from ``routes``.

    ``/api`` matches ``/api`` and ``/api/...`` (not ``/apix``); parameters
    in the prefix (``/u/{uid:int}``) become ``path_params``. Names inside
    are reached as ``"<mount name>:<route name>"``.
    """

    def __init__(
        self,
        path: str,
        app: App | None = None,
        *,
        routes: Sequence[BaseRoute] | None = None,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> None:
        if (app is None) == (routes is None):
            raise TypeError("Mount needs exactly one of app and routes=")
        path = path.rstrip("/")
        if path and not path.startswith("/"):
            raise ValueError(f"mount path {path!r} must start with '/'")
        self.path = path
        regex, self.template, self.convertors = compile_path(path or "/")
        if not path:
            regex = re.compile("^")
        self.regex = re.compile(regex.pattern + "(?=/|$)")
        self.inner: App = app if app is not None else Router(routes)
        self.app = _wrap(self.inner, middleware)
        self.name = name

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        if scope.get("type") not in ("http", "websocket", "sse"):
            return Match.NONE, {}
        m = self.regex.match(str(scope.get("path", "/")))
        if m is None:
            return Match.NONE, {}
        params = dict(scope.get("path_params") or {})
        for key, text in m.groupdict().items():
            params[key] = self.convertors[key].convert(text)
        child = mount_scope(scope, m.group(0))
        child["path_params"] = params
        return Match.FULL, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **params: Any) -> str:
        if self.name is not None and name == self.name and set(params) == set(self.convertors):
            return _fill(self.template, self.convertors, params) if self.path else "/"
        prefix = f"{self.name}:" if self.name is not None else ""
        if not name.startswith(prefix) or not hasattr(self.inner, "url_path_for"):
            raise NoMatchFound(name)
        mine = {k: v for k, v in params.items() if k in self.convertors}
        if set(mine) != set(self.convertors):
            raise NoMatchFound(name)
        rest = {k: v for k, v in params.items() if k not in self.convertors}
        inner_path: str = self.inner.url_path_for(name[len(prefix) :], **rest)
        return _fill(self.template, self.convertors, mine) + inner_path if self.path else inner_path


class Host(BaseRoute):
    """Route by the ``Host`` header: ``Host("{tenant}.example.com", app)``.

    The port is ignored; parameters become ``path_params``.
    """

    def __init__(self, host: str, app: App, *, name: str | None = None) -> None:
        regex, self.template, self.convertors = compile_path("/" + host)
        self.regex = re.compile("^" + regex.pattern[2:])
        self.host = host
        self.app = app
        self.name = name

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        host = ""
        for key, value in scope.get("headers") or ():
            if bytes(key) == b"host":
                host = (
                    bytes(value).decode("latin-1").rsplit(":", 1)[0]
                    if not bytes(value).endswith(b"]")
                    else bytes(value).decode("latin-1")
                )
                break
        m = self.regex.fullmatch(host.lower())
        if m is None:
            return Match.NONE, {}
        params = dict(scope.get("path_params") or {})
        for key, text in m.groupdict().items():
            params[key] = self.convertors[key].convert(text)
        return Match.FULL, {"path_params": params}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **params: Any) -> str:
        prefix = f"{self.name}:" if self.name is not None else ""
        if not name.startswith(prefix) or not hasattr(self.app, "url_path_for"):
            raise NoMatchFound(name)
        rest = {k: v for k, v in params.items() if k not in self.convertors}
        path: str = self.app.url_path_for(name[len(prefix) :], **rest)
        return path


class Router:
    """An app that dispatches to routes; build it from a list or with decorators.

    ``not_found`` replaces the default miss answer (any app).
    ``redirect_slashes`` (on) redirects ``/x/`` to ``/x`` (and back) when
    only the other spelling has a route. ``middleware`` wraps the whole
    router. ``exception_handlers`` maps exception classes or statuses to
    ``handler(request, exc) -> Response`` (the registry ``ErrorHandler``
    uses); a status handler also answers the router's own 404 and 405.
    On a ``lifespan`` scope a bare router completes startup and shutdown
    (wrap it in :class:`~pagi.tools.lifespan.Lifespan` for hooks).
    """

    def __init__(
        self,
        routes: Sequence[BaseRoute] | None = None,
        *,
        not_found: App | None = None,
        redirect_slashes: bool = True,
        middleware: Sequence[MiddlewareFactory] | None = None,
        exception_handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
    ) -> None:
        self.routes: list[BaseRoute] = list(routes or [])
        self.not_found = not_found
        self.redirect_slashes = redirect_slashes
        self.exception_handlers = ExceptionHandlers(
            exception_handlers, owner="Router", option="exception_handlers"
        )
        inner: App = self._dispatch
        if self.exception_handlers:
            inner = HandlerLayer(inner, self.exception_handlers)
        self._app = _wrap(inner, middleware)

    # -- building --------------------------------------------------------------

    def add(self, route: BaseRoute) -> BaseRoute:
        """Append a route; returns it."""
        names = {r.name for r in self.routes if r.name is not None}
        if route.name is not None and route.name in names and not isinstance(route, (Mount, Host)):
            raise ValueError(f"route name {route.name!r} is already taken")
        self.routes.append(route)
        return route

    def route(
        self,
        path: str,
        *,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register an HTTP handler for ``path`` and ``methods``."""
        return self._registrar(
            lambda handler: Route(path, handler, methods=methods, name=name, middleware=middleware)
        )

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """``@router.get(path)``."""
        return self.route(path, methods=["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """``@router.post(path)``."""
        return self.route(path, methods=["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """``@router.put(path)``."""
        return self.route(path, methods=["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """``@router.patch(path)``."""
        return self.route(path, methods=["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """``@router.delete(path)``."""
        return self.route(path, methods=["DELETE"], **options)

    def websocket(
        self,
        path: str,
        *,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register a WebSocket handler."""
        return self._registrar(
            lambda handler: WebSocketRoute(path, handler, name=name, middleware=middleware)
        )

    def sse(
        self,
        path: str,
        *,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register an SSE handler."""
        return self._registrar(
            lambda handler: SSERoute(path, handler, name=name, middleware=middleware)
        )

    def _registrar(self, make_route: Callable[[Any], BaseRoute]) -> Callable[[F], F]:
        """A decorator that adds ``make_route(handler)`` and returns the handler unchanged."""

        def register(handler: F) -> F:
            self.add(make_route(handler))
            return handler

        return register

    def mount(
        self,
        path: str,
        app: App,
        *,
        name: str | None = None,
        middleware: Sequence[MiddlewareFactory] | None = None,
    ) -> None:
        """Mount ``app`` (any app, or another router) under ``path``."""
        self.add(Mount(path, app, name=name, middleware=middleware))

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of route ``name`` with ``params`` filled in (percent-encoded)."""
        for route in self.routes:
            try:
                return route.url_path_for(name, **params)
            except NoMatchFound:
                continue
        known = sorted(r.name for r in self.routes if r.name)
        raise NoMatchFound(
            f"no route named {name!r} takes parameters {sorted(params)}; named routes: {known}"
        )

    # -- serving -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _other_kind(self, kind: Any, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a miss that an HTTP route (for SSE) or an SSE route (for HTTP) explains.

        An SSE request to a path with only an HTTP route is served by that
        route: its response becomes the SSE decline. A plain HTTP request
        to a path with only an SSE route gets a 406 saying what to send.
        """
        if kind == "sse":
            as_http = {**scope, "type": "http"}
            for route in self.routes:
                if isinstance(route, Route):
                    match, child = route.matches(as_http)
                    if match is Match.FULL:
                        scope.update(child)
                        await route.handle(scope, receive, send)
                        return True
        elif kind == "http":
            as_sse = {**scope, "type": "sse"}
            if any(
                isinstance(r, SSERoute) and r.matches(as_sse)[0] is Match.FULL for r in self.routes
            ):
                text = "Not Acceptable: this is an event stream; ask with Accept: text/event-stream"
                await PlainTextResponse(text, 406)(scope, receive, send)
                return True
        return False

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            # Mounted apps and host apps get the lifespan too (their startup and
            # shutdown hooks run), sharing the router's state dict.
            children = [r.app for r in self.routes if isinstance(r, (Mount, Host))]
            state = scope.get("state")
            await serve_lifespan(
                {**scope, "state": {} if state is None else state}, receive, send, children
            )
            return
        scope = dict(scope)
        if "pagi.router" not in scope:
            scope["pagi.router"] = self
            scope["pagi.router.root_path"] = scope.get("root_path", "")
        allowed: set[str] = set()
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL:
                allowed |= route.allowed_methods()
        if allowed:
            header = {"allow": ", ".join(sorted(allowed | {"OPTIONS"}))}
            if scope.get("method") != "OPTIONS" and 405 in self.exception_handlers.by_status:
                raise HTTPException(405, headers=header)
            if scope.get("method") == "OPTIONS":
                await Response(status=204, headers=header)(scope, receive, send)
            else:
                await PlainTextResponse("Method Not Allowed", 405, headers=header)(
                    scope, receive, send
                )
            return
        if await self._other_kind(kind, scope, receive, send):
            return
        if kind == "http" and self.redirect_slashes and scope.get("method") in ("GET", "HEAD"):
            path = str(scope.get("path", "/"))
            other = path[:-1] if path.endswith("/") else path + "/"
            if path != "/" and any(r.matches({**scope, "path": other})[0] for r in self.routes):
                target = str(scope.get("root_path", "")) + other
                query = bytes(scope.get("query_string") or b"").decode("latin-1")
                await RedirectResponse(target + (f"?{query}" if query else ""), 307)(
                    scope, receive, send
                )
                return
        if self.not_found is not None:
            await self.not_found(scope, receive, send)
        elif 404 in self.exception_handlers.by_status:
            raise HTTPException(404)
        else:
            await PlainTextResponse("Not Found", 404)(scope, receive, send)
