"""``CORS``: let pages from other origins call the app, and only those.

Theory of operation
-------------------
A browser adds ``Origin`` to cross-origin requests. Before a request that
is not "simple" (a ``PUT``, a JSON body, a custom header) it first sends a
*preflight*: ``OPTIONS`` with ``Access-Control-Request-Method`` (and
``-Headers``). This middleware answers preflights itself -- 200 with the
allow headers when origin, method and headers are all allowed, 400 when
not -- and adds ``Access-Control-Allow-Origin`` (plus credentials and
exposed headers) to the other responses of allowed origins.

When the answer depends on the origin (a list or a pattern rather than a
bare ``*``, or credentials), every response carries ``Vary: Origin``, even
to requests without one, so that a shared cache never hands one origin's
answer to another. With ``allow_origins=["*"]`` and no credentials every
response says ``Access-Control-Allow-Origin: *``, which needs no ``Vary``.

WebSocket handshakes are not covered by CORS in browsers, so a page from
any site could open one with the user's cookies. Here a handshake whose
``Origin`` is not allowed is denied with 403; one without ``Origin`` (not a
browser) passes. SSE responses get the same headers as http ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.headers import encode_header
from pagi.tools.middleware.base import Middleware, OptionError, add_headers
from pagi.tools.response import PlainTextResponse, Response

__all__ = ["CORS"]

#: Request headers a browser sends cross-origin without asking (the CORS safelist).
_SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
_ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")
_START_TYPES = ("http.response.start", "sse.start", "sse.http.response.start")


def _names(value: Iterable[str] | str, option: str) -> list[str]:
    if isinstance(value, str):
        raise OptionError("CORS", option, f"must be a list, not the string {value!r}")
    return [str(item).strip() for item in value if str(item).strip()]


class CORS(Middleware):
    """``CORS(app, allow_origins=("https://app.example",), allow_methods=("GET", "POST"), ...)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        allow_origins: Iterable[str] = (),
        allow_origin_regex: str | None = None,
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
    ) -> None:
        super().__init__(app)
        origins = _names(allow_origins, "allow_origins")
        self.any_origin = "*" in origins
        if self.any_origin and allow_credentials:
            raise OptionError(
                "CORS",
                "allow_origins",
                "cannot be ['*'] with allow_credentials=True: browsers refuse that pair; "
                "list the origins",
            )
        self.origins: set[str] = set()
        for origin in origins:
            if origin == "*":
                continue
            normal = origin.lower().rstrip("/")
            if normal != "null" and not _ORIGIN.fullmatch(normal):
                raise OptionError(
                    "CORS", "allow_origins", f"has {origin!r}; an origin is scheme://host[:port]"
                )
            self.origins.add(normal)
        try:
            self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        except re.error as exc:
            raise OptionError(
                "CORS", "allow_origin_regex", f"is not a valid pattern: {exc}"
            ) from None
        methods = [m.upper() for m in _names(allow_methods, "allow_methods")]
        self.methods = frozenset(_ALL_METHODS if "*" in methods else methods)
        headers = [h.lower() for h in _names(allow_headers, "allow_headers")]
        self.any_header = "*" in headers
        self.headers = frozenset(headers) - {"*"}
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise OptionError("CORS", "max_age", "must be seconds (an int >= 0)")
        self.credentials = bool(allow_credentials)
        exposed = _names(expose_headers, "expose_headers")
        # Fixed parts of every answer, built once.
        self.varies = not self.any_origin or self.credentials
        self.preflight_base: list[tuple[str, str]] = [
            ("access-control-allow-methods", ", ".join(sorted(self.methods))),
            ("access-control-max-age", str(max_age)),
        ]
        self.simple_extra: list[tuple[str, str]] = []
        if self.credentials:
            self.preflight_base.append(("access-control-allow-credentials", "true"))
            self.simple_extra.append(("access-control-allow-credentials", "true"))
        if exposed:
            self.simple_extra.append(("access-control-expose-headers", ", ".join(exposed)))
        try:
            self.extra_raw = [encode_header(name, value) for name, value in self.simple_extra]
        except ValueError as exc:
            raise OptionError("CORS", "expose_headers", str(exc)) from None
        self.wildcard_pairs = [(b"access-control-allow-origin", b"*"), *self.extra_raw]

    def origin_allowed(self, origin: str) -> bool:
        """True if a request from ``origin`` may read the response."""
        if self.any_origin:
            return True
        normal = origin.lower()
        if normal in self.origins:
            return True
        return self.origin_regex is not None and self.origin_regex.fullmatch(origin) is not None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = None
        request_method = None
        for name, value in scope.get("headers") or ():
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                request_method = value.decode("latin-1")
        kind = scope["type"]
        if kind == "websocket":
            if origin is not None and not self.origin_allowed(origin):
                await PlainTextResponse("Origin not allowed", 403)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if (
            kind == "http"
            and origin is not None
            and request_method is not None
            and scope.get("method") == "OPTIONS"
        ):
            await self._preflight(scope, origin, request_method)(scope, receive, send)
            return
        if self.any_origin:
            pairs = self.wildcard_pairs
        elif origin is not None and self.origin_allowed(origin):
            pairs = [(b"access-control-allow-origin", origin.encode("latin-1")), *self.extra_raw]
        else:
            pairs = []
        vary = b"Origin" if self.varies else None
        cors_send = add_headers(send, pairs, types=_START_TYPES, mode="replace", vary=vary)
        await self.app(scope, receive, cors_send)

    def _preflight(self, scope: Scope, origin: str, method: str) -> Response:
        requested = [
            h.strip().lower()
            for name, value in scope.get("headers") or ()
            if name == b"access-control-request-headers"
            for h in value.decode("latin-1").split(",")
            if h.strip()
        ]
        problems = []
        if not self.origin_allowed(origin):
            problems.append("origin")
        if method.strip().upper() not in self.methods:
            problems.append("method")
        if not self.any_header and any(
            h not in self.headers and h not in _SAFELISTED_HEADERS for h in requested
        ):
            problems.append("headers")
        vary = [("vary", "Origin")] if self.varies else []
        if problems:
            return PlainTextResponse(f"Disallowed CORS {', '.join(problems)}", 400, headers=vary)
        allow_origin = "*" if self.any_origin else origin
        headers = [("access-control-allow-origin", allow_origin), *self.preflight_base, *vary]
        if requested:
            # Echo what was asked: it was all checked above ("*" allows anything).
            headers.append(("access-control-allow-headers", ", ".join(requested)))
        elif self.headers:
            headers.append(("access-control-allow-headers", ", ".join(sorted(self.headers))))
        return PlainTextResponse("OK", 200, headers=headers)
