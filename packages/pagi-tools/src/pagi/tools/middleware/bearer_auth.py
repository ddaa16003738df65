"""``BearerAuth``: ``Authorization: Bearer <token>`` checked as a JWT, or by your function.

With ``secret``, the token is decoded with PyJWT: signature with one of
``algorithms`` (HS256 by default; RS/ES/PS/EdDSA need the ``crypto`` extra,
``pip install 'pagi-tools[crypto]'``, and ``secret`` is then the public
key), ``exp`` and ``nbf`` when present (``leeway`` seconds of clock skew),
``aud`` when ``audience`` is set and ``iss`` when ``issuer`` is set. With
``validate(token)`` instead (sync or async), the function decides: it
returns the claims (a mapping), a user object, or ``None`` to refuse.

A missing token gets 401 with ``WWW-Authenticate: Bearer realm="..."``; a
bad one 401 with ``Bearer error="invalid_token"`` (RFC 6750). WebSocket
handshakes are denied and SSE streams declined with the same answer. On
success ``scope["pagi.auth"]`` is ``{"type": "bearer", "user": <sub claim
or the validator's user>, "claims": {...}, "scopes": ..., "token": ...}``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import jwt
from jwt.algorithms import has_crypto, requires_cryptography

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.auth import auth_info
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.pathmatch import PathMatcher
from pagi.tools.response import PlainTextResponse

__all__ = ["BearerAuth", "bearer_token"]

Validator = Callable[[str], Any] | Callable[[str], Awaitable[Any]]


def bearer_token(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or ``None``."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def _family(algorithm: str) -> str:
    return "hmac" if algorithm.startswith("HS") else "public-key"


class BearerAuth(Middleware):
    """``BearerAuth(app, secret=None, algorithms=("HS256",), validate=None, ...)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        secret: Any = None,
        algorithms: Iterable[str] = ("HS256",),
        validate: Validator | None = None,
        audience: str | Iterable[str] | None = None,
        issuer: str | Iterable[str] | None = None,
        leeway: float = 0,
        paths: Iterable[str | re.Pattern[str]] | None = None,
        realm: str = "api",
    ) -> None:
        super().__init__(app)
        if (secret is None) == (validate is None):
            raise OptionError("BearerAuth", "secret", "give exactly one of secret and validate")
        if validate is not None and not callable(validate):
            raise OptionError("BearerAuth", "validate", "must be a function (token) -> claims")
        if isinstance(algorithms, str):
            raise OptionError("BearerAuth", "algorithms", f"must be a list, e.g. [{algorithms!r}]")
        self.algorithms = [str(a) for a in algorithms]
        if not self.algorithms:
            raise OptionError("BearerAuth", "algorithms", "is empty")
        known = jwt.algorithms.get_default_algorithms()
        for name in self.algorithms:
            if name.lower() == "none":
                raise OptionError("BearerAuth", "algorithms", "must not allow unsigned tokens")
            if name in requires_cryptography and not has_crypto:
                raise OptionError(
                    "BearerAuth",
                    "algorithms",
                    f"{name} needs the cryptography package: pip install 'pagi-tools[crypto]'",
                )
            if name not in known:
                raise OptionError("BearerAuth", "algorithms", f"has unknown algorithm {name!r}")
        if len({_family(a) for a in self.algorithms}) > 1:
            # One key for an HMAC and a public-key algorithm is the classic
            # algorithm-confusion hole (a public key used as an HMAC secret).
            raise OptionError(
                "BearerAuth", "algorithms", "must not mix HS* with public-key algorithms"
            )
        self.key: Any = None
        if secret is not None:
            if not secret:
                raise OptionError("BearerAuth", "secret", "is empty")
            try:
                self.key = jwt.get_algorithm_by_name(self.algorithms[0]).prepare_key(secret)
            except (ValueError, TypeError, jwt.InvalidKeyError) as exc:
                raise OptionError(
                    "BearerAuth", "secret", f"is not a key for {self.algorithms[0]}: {exc}"
                ) from None
        self.validate = validate
        self.audience = (
            audience if audience is None or isinstance(audience, str) else list(audience)
        )
        self.issuer = issuer if issuer is None or isinstance(issuer, str) else list(issuer)
        if isinstance(leeway, bool) or not isinstance(leeway, (int, float)) or leeway < 0:
            raise OptionError("BearerAuth", "leeway", "must be seconds (a number >= 0)")
        self.leeway = leeway
        if not isinstance(realm, str) or '"' in realm or "\\" in realm:
            raise OptionError("BearerAuth", "realm", "must be text without quotes")
        self.realm = realm
        self.paths = PathMatcher("BearerAuth", "paths", paths)
        self.missing = PlainTextResponse(
            "Unauthorized", 401, headers={"www-authenticate": f'Bearer realm="{realm}"'}
        )

    def _invalid(self, why: str) -> PlainTextResponse:
        description = why.replace('"', "'").replace("\\", "/")
        description = "".join(c if c.isprintable() else " " for c in description)[:200]
        challenge = (
            f'Bearer realm="{self.realm}", error="invalid_token", error_description="{description}"'
        )
        return PlainTextResponse("Invalid token", 401, headers={"www-authenticate": challenge})

    async def check(self, token: str) -> tuple[Any, Mapping[str, Any]]:
        """``(user, claims)`` for a good token; ``jwt.InvalidTokenError`` otherwise."""
        if self.validate is not None:
            result = self.validate(token)
            if inspect.isawaitable(result):
                result = await result
            if result is None or result is False:
                raise jwt.InvalidTokenError("the token was refused")
            if isinstance(result, Mapping):
                return result.get("sub"), result
            return result, {}
        claims = jwt.decode(
            token,
            self.key,
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway,
        )
        return claims.get("sub"), claims

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.paths.matches(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is None:
            await self.missing(scope, receive, send)
            return
        try:
            user, claims = await self.check(token)
        except (jwt.InvalidTokenError, ValueError) as exc:
            await self._invalid(str(exc))(scope, receive, send)
            return
        child = dict(scope)
        child["pagi.auth"] = auth_info("bearer", user, claims, token=token)
        await self.app(child, receive, send)
