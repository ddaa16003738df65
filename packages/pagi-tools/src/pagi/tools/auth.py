"""Who is calling, and what they may do: ``scope["pagi.auth"]`` and :func:`requires`.

The ``BasicAuth`` and ``BearerAuth`` middleware put a dict in
``scope["pagi.auth"]``::

    {"type": "basic" | "bearer", "user": ..., "scopes": frozenset(...), "claims": {...}}

(``claims`` for bearer tokens only). ``request.user`` and ``request.auth``
read it. :func:`requires` guards a handler, an endpoint method or a whole
app: a caller whose scopes lack one of the names gets 403 (a WebSocket is
denied with 403, an SSE stream declined with 403).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.exceptions import HTTPException
from pagi.tools.request import HTTPConnection
from pagi.tools.response import PlainTextResponse

__all__ = ["auth_info", "requires", "scopes_of"]

F = TypeVar("F", bound=Callable[..., Any])


def scopes_of(user: Any, claims: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The permission names of a user or a token.

    From the claims: ``scope`` (OAuth 2, space-separated) and/or ``scopes``
    (a list). From a user: its ``scopes`` attribute or key.
    """
    found: set[str] = set()
    sources: list[Any] = []
    if claims:
        sources += [claims.get("scope"), claims.get("scopes")]
    if isinstance(user, Mapping):
        sources.append(user.get("scopes"))
    elif user is not None:
        sources.append(getattr(user, "scopes", None))
    for source in sources:
        if isinstance(source, str):
            found.update(source.split())
        elif isinstance(source, Iterable):
            found.update(str(item) for item in source)
    return frozenset(found)


def auth_info(
    kind: str, user: Any, claims: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """The ``scope["pagi.auth"]`` dict for an authenticated caller."""
    info: dict[str, Any] = {"type": kind, "user": user, "scopes": scopes_of(user, claims)}
    if claims is not None:
        info["claims"] = dict(claims)
    info.update(extra)
    return info


def _missing(scope: Mapping[str, Any], needed: frozenset[str]) -> bool:
    auth = scope.get("pagi.auth")
    have: frozenset[str] = auth.get("scopes", frozenset()) if auth else frozenset()
    return not needed <= have


def _positional_count(func: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def requires(*scopes: str, status: int = 403) -> Callable[[F], F]:
    """Guard a handler or an app: callers without every scope in ``scopes`` get ``status``.

    * on a handler, ``@requires("admin")`` under the route decorator (or on
      an endpoint method) raises ``HTTPException(403)`` before the handler
      runs, which the route turns into a 403, a WebSocket denial or an SSE
      decline;
    * on an app (3 positional parameters, or a class such as an endpoint),
      or as route middleware (``Route(..., middleware=[requires("admin")])``),
      it answers 403 itself.
    """
    needed = frozenset(scopes)
    if not all(isinstance(s, str) and s for s in scopes):
        raise TypeError("requires() takes scope names (non-empty strings)")

    def decorate(target: F) -> F:
        if isinstance(target, type) or _positional_count(target) == 3:
            app: App = target

            async def guarded_app(scope: Scope, receive: Receive, send: Send) -> None:
                if scope.get("type") in ("http", "websocket", "sse") and _missing(scope, needed):
                    await PlainTextResponse("Forbidden", status)(scope, receive, send)
                    return
                await app(scope, receive, send)

            return guarded_app  # type: ignore[return-value]

        @functools.wraps(target)
        async def guarded_handler(*args: Any, **kwargs: Any) -> Any:
            connection = next((a for a in reversed(args) if isinstance(a, HTTPConnection)), None)
            if connection is None:
                raise TypeError(f"@requires: {target!r} got no request, websocket or sse argument")
            if _missing(connection.scope, needed):
                raise HTTPException(status)
            return await target(*args, **kwargs)

        return guarded_handler  # type: ignore[return-value]

    return decorate
