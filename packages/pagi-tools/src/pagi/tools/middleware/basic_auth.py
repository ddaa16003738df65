"""``BasicAuth``: HTTP Basic authentication (RFC 7617) in front of an app.

``authenticate(username, password)`` -- sync or async -- returns the user
(any value) or ``None``. Instead of a function, a mapping of usernames to
passwords may be given; it is checked with :func:`hmac.compare_digest`
against *every* entry, so the time taken says nothing about which names
exist or how much of a password was right. A function should compare
secrets the same way (or check a password hash, which does).

Requests without valid credentials get 401 with ``WWW-Authenticate: Basic
realm="..."`` (a WebSocket is denied, an SSE stream declined, with the
same answer). On success ``scope["pagi.auth"]`` is ``{"type": "basic",
"user": ..., "username": ..., "scopes": ...}``. ``paths`` limits the check
to some prefixes or patterns (see :mod:`pagi.tools.pathmatch`); other
paths pass unauthenticated.

Basic credentials travel in clear text: serve them over HTTPS only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.auth import auth_info
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.pathmatch import PathMatcher
from pagi.tools.response import PlainTextResponse

__all__ = ["BasicAuth", "parse_basic"]

Authenticator = Callable[[str, str], Any] | Callable[[str, str], Awaitable[Any]]


def parse_basic(scope: Scope) -> tuple[str, str] | None:
    """``(username, password)`` from ``Authorization: Basic``, or ``None``."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, data = value.partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                decoded = base64.b64decode(data.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            return (username, password) if sep else None
    return None


def _table_checker(table: Mapping[str, str]) -> Callable[[str, str], str | None]:
    entries = [(u.encode("utf-8"), p.encode("utf-8")) for u, p in table.items()]

    def check(username: str, password: str) -> str | None:
        given_user, given_password = username.encode("utf-8"), password.encode("utf-8")
        found = False
        for user, secret in entries:  # every entry, always: no early exit to time
            same_user = hmac.compare_digest(user, given_user)
            same_password = hmac.compare_digest(secret, given_password)
            found |= same_user & same_password
        return username if found else None

    return check


class BasicAuth(Middleware):
    """``BasicAuth(app, authenticate, realm="Restricted", paths=None)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        authenticate: Authenticator | Mapping[str, str],
        realm: str = "Restricted",
        paths: Iterable[str | re.Pattern[str]] | None = None,
    ) -> None:
        super().__init__(app)
        if isinstance(authenticate, Mapping):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in authenticate.items()):
                raise OptionError("BasicAuth", "authenticate", "a mapping must be str -> str")
            self.authenticate: Callable[[str, str], Any] = _table_checker(authenticate)
        elif callable(authenticate):
            self.authenticate = authenticate
        else:
            raise OptionError(
                "BasicAuth", "authenticate", "must be a function (user, password) or a mapping"
            )
        if not isinstance(realm, str) or '"' in realm or "\\" in realm or not realm.isprintable():
            raise OptionError("BasicAuth", "realm", "must be printable text without quotes")
        self.realm = realm
        self.paths = PathMatcher("BasicAuth", "paths", paths)
        self.challenge = PlainTextResponse(
            "Unauthorized",
            401,
            headers={"www-authenticate": f'Basic realm="{realm}", charset="UTF-8"'},
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.paths.matches(scope):
            await self.app(scope, receive, send)
            return
        credentials = parse_basic(scope)
        user = None
        if credentials is not None:
            user = self.authenticate(*credentials)
            if inspect.isawaitable(user):
                user = await user
        if user is None or user is False:
            await self.challenge(scope, receive, send)
            return
        child = dict(scope)
        child["pagi.auth"] = auth_info(
            "basic", user, username=credentials[0] if credentials else ""
        )
        await self.app(child, receive, send)
