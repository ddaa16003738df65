"""``Session``: a per-client dict that survives between requests.

Theory of operation
-------------------
On each request the middleware finds the client's session token (a cookie
by default, or a request header, or ``Authorization: Bearer``), turns it
into a dict, and puts that dict in ``scope["pagi.session"]``, where
``request.session`` finds it. When the app starts its response, the
middleware compares the dict with what it loaded and writes it back only
if something changed:

* without a store (``store=None``) the whole dict travels in the cookie,
  JSON signed and timestamped with itsdangerous: a tampered, foreign or
  expired cookie reads as an empty session, never as an error (a cookie
  that passed the signature check is remembered, so the one a browser
  resends on every request is not verified again; its age always is);
* with a store (:mod:`pagi.tools.session_stores`) the token is a random id
  and the dict is saved in the store.

``Set-Cookie`` goes out only when the session was created, changed,
regenerated or cleared (an emptied session deletes the cookie and the
stored copy). After a login call ``request.session.regenerate()``: the
session gets a new id and the old one is deleted, so an id planted before
login is worth nothing after it. WebSocket and SSE scopes see the session
read-only (they have no response headers to carry a new cookie).

Changes made after the response has started (while streaming) are not
saved: the cookie has already gone out.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal, NoReturn, cast

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.cookies import SameSite, format_set_cookie, parse_cookie_header
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.session_stores import MemoryStore, RedisStore, SessionStore

__all__ = [
    "MemoryStore",
    "ReadOnlySession",
    "RedisStore",
    "Session",
    "SessionData",
    "SessionStore",
]

_ID = re.compile(r"[A-Za-z0-9_-]{20,128}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SALT = "pagi.session"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _new_id() -> str:
    return secrets.token_urlsafe(32)


def _snapshot(data: Mapping[str, Any]) -> str:
    # Key order counts here: a reordered but equal session is re-sent, which is harmless.
    return json.dumps(data, separators=(",", ":"), default=repr)


class SessionData(dict[str, Any]):
    """``request.session``: a plain dict plus :attr:`id` and :meth:`regenerate`.

    Writes through the dict's own methods set :attr:`modified`, so an
    untouched session costs nothing to check at the end of the request.
    """

    def __init__(self, data: Mapping[str, Any], session_id: str | None = None) -> None:
        super().__init__(data)
        #: The server-side id (``None`` for cookie-stored sessions).
        self.id = session_id
        #: The ids this request retired with :meth:`regenerate`.
        self.retired: list[str] = []
        self.regenerated = False
        #: True once a top-level write happened (nested changes are found by comparison).
        self.modified = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        self.modified = True
        super().clear()

    def pop(self, *args: Any) -> Any:
        self.modified = True
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self.modified = True
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.modified = True
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> SessionData:  # type: ignore[override,misc]
        self.modified = True
        super().update(other)
        return self

    def regenerate(self) -> None:
        """Give the session a new id, keeping its data; the old id is deleted.

        Call it when the privilege level changes (login, sudo mode) so a
        session id an attacker planted or saw earlier stops working.
        """
        self.regenerated = True
        if self.id is not None:
            self.retired.append(self.id)
            self.id = _new_id()


def _read_only(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise TypeError(
        "the session is read-only here (websocket and sse scopes cannot set cookies); "
        "change it in an http request"
    )


class ReadOnlySession(SessionData):
    """The session as WebSocket and SSE handlers see it: reading works, writing raises."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]
    __ior__ = regenerate = _read_only  # type: ignore[assignment]


Transport = Literal["cookie", "header", "bearer"]


class Session(Middleware):
    """``Session(app, secret_key, cookie_name="session", max_age=1209600, ..., store=None)``.

    ``transport="header"`` reads the id from ``header_name`` (and sends a
    new one back in that header); ``transport="bearer"`` reads
    ``Authorization: Bearer <id>`` (hand the id to the client yourself,
    from ``request.session.id``). Both need a ``store``.
    """

    scope_types = ("http", "websocket", "sse")
    #: How many verified session cookies one instance remembers.
    VERIFIED_MEMORY = 1024

    def __init__(
        self,
        app: App,
        secret_key: str | bytes | list[str | bytes],
        cookie_name: str = "session",
        max_age: int | None = 1209600,
        path: str = "/",
        same_site: SameSite | None = "lax",
        https_only: bool = False,
        domain: str | None = None,
        store: SessionStore | None = None,
        transport: Transport = "cookie",
        header_name: str = "x-session-id",
    ) -> None:
        super().__init__(app)
        if not secret_key:
            raise OptionError("Session", "secret_key", "must be a non-empty str or bytes")
        if not isinstance(cookie_name, str) or not _TOKEN.fullmatch(cookie_name):
            raise OptionError("Session", "cookie_name", "must be a cookie name (a token)")
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1
        ):
            raise OptionError("Session", "max_age", "must be seconds (an int >= 1) or None")
        if same_site is not None and str(same_site).lower() not in ("lax", "strict", "none"):
            raise OptionError("Session", "same_site", "must be 'lax', 'strict', 'none' or None")
        if same_site is not None and str(same_site).lower() == "none" and not https_only:
            raise OptionError(
                "Session", "same_site", "'none' needs https_only=True (browsers require Secure)"
            )
        if store is not None and not all(
            callable(getattr(store, name, None)) for name in ("load", "save", "delete")
        ):
            raise OptionError("Session", "store", "must have async load(), save() and delete()")
        if transport not in ("cookie", "header", "bearer"):
            raise OptionError("Session", "transport", "must be 'cookie', 'header' or 'bearer'")
        if transport != "cookie" and store is None:
            raise OptionError(
                "Session", "transport", f"{transport!r} needs a store (the token is an id)"
            )
        if not isinstance(header_name, str) or not _TOKEN.fullmatch(header_name):
            raise OptionError("Session", "header_name", "must be a header name")
        keys: Any = secret_key  # a list rotates keys: sign with the last, accept any
        # itsdangerous's default HMAC-SHA1, given as hashlib's own constructor so
        # that hmac takes its OpenSSL fast path (same signatures, same cookies).
        self.serializer = URLSafeTimedSerializer(
            keys, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha1}
        )
        # One signer for every request (loads() would build one per call).
        self.signer = cast(TimestampSigner, self.serializer.make_signer(_SALT))
        self._verified: dict[str, tuple[float, bytes]] = {}
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.store = store
        self.transport = transport
        self.header_name = header_name.lower()
        self._header_key = self.header_name.encode("latin-1")
        cookie_options: dict[str, Any] = dict(
            path=path, domain=domain, secure=bool(https_only), httponly=True, samesite=same_site
        )
        try:
            format_set_cookie(cookie_name, "x", max_age=max_age, **cookie_options)
        except ValueError as exc:
            option = "path" if "Path" in str(exc) else "domain"
            raise OptionError("Session", option, str(exc)) from None
        self.cookie_options = cookie_options

    # -- reading the token ----------------------------------------------------

    def _token(self, scope: Scope) -> str | None:
        if self.transport == "cookie":
            cookies = [v.decode("latin-1") for n, v in scope.get("headers") or () if n == b"cookie"]
            return (
                parse_cookie_header("; ".join(cookies)).get(self.cookie_name) if cookies else None
            )
        key = b"authorization" if self.transport == "bearer" else self._header_key
        for name, value in scope.get("headers") or ():
            if name == key:
                text = value.decode("latin-1").strip()
                if self.transport == "bearer":
                    scheme, _, text = text.partition(" ")
                    if scheme.lower() != "bearer":
                        return None
                return text.strip() or None
        return None

    def _verified_payload(self, token: str) -> bytes | None:
        """The payload of a cookie signed by us and not expired, else ``None``.

        A browser sends the same cookie with every request until the session
        changes, so the outcome of checking its signature is remembered
        (per instance, at most ``VERIFIED_MEMORY`` cookies); the age is
        checked on every request all the same.
        """
        seen = self._verified.get(token)
        if seen is None:
            try:
                payload, signed_at = self.signer.unsign(
                    token, max_age=self.max_age, return_timestamp=True
                )
            except BadSignature:  # tampered, foreign key, or expired
                return None
            seen = (signed_at.timestamp(), payload)
            if len(self._verified) >= self.VERIFIED_MEMORY:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = seen
        elif self.max_age is not None:
            age = time.time() - seen[0]
            if not 0 <= age <= self.max_age + 1:  # itsdangerous counts whole seconds
                del self._verified[token]
                return None
        return seen[1]

    async def _load(self, scope: Scope) -> tuple[dict[str, Any], str | None, bool]:
        """``(data, id, existed)`` for the request's token."""
        token = self._token(scope)
        if self.store is None:
            if token:
                payload = self._verified_payload(token)
                data = self.serializer.load_payload(payload) if payload is not None else None
                if isinstance(data, dict):
                    return data, None, True
            return {}, None, False
        if token and _ID.fullmatch(token):
            stored = await self.store.load(token)
            if stored is not None:
                return stored, token, True
        return {}, _new_id(), False

    # -- serving ------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "pagi.session" in scope:  # an outer Session already did the work
            await self.app(scope, receive, send)
            return
        data, session_id, existed = await self._load(scope)
        child = dict(scope)
        if scope["type"] != "http":
            child["pagi.session"] = ReadOnlySession(data, session_id)
            await self.app(child, receive, send)
            return
        session = SessionData(data, session_id)
        child["pagi.session"] = session
        # Containers inside can change without a top-level write: compare JSON
        # for those; a flat session is compared only if it was written to.
        nested = existed and any(isinstance(v, (dict, list)) for v in data.values())
        loaded: Any = _snapshot(data) if nested else dict(data)

        async def session_send(event: Event) -> None:
            if event.get("type") == "http.response.start":
                # The last moment the session can be written: headers go out now.
                token = await self._write_back(session, existed, loaded)
                if token is not None:
                    headers = list(event.get("headers") or ())
                    event = {**event, "headers": self._with_token(headers, token)}
            await send(event)

        await self.app(child, receive, session_send)

    async def _write_back(
        self, session: SessionData, existed: bool, loaded: str | dict[str, Any]
    ) -> str | None:
        """Save what changed; the token to send (``""``: delete it), or ``None``: nothing."""
        store = self.store
        if store is not None:
            for old in session.retired:
                await store.delete(old)
        if not session:
            if existed or session.regenerated:
                if store is not None and session.id is not None:
                    await store.delete(session.id)
                if existed:
                    return ""
            return None
        if isinstance(loaded, str):
            changed = _snapshot(session) != loaded
        else:
            changed = session.modified and dict(session) != loaded
        if not (session.regenerated or not existed or changed):
            return None
        if store is None:
            return str(self.serializer.dumps(dict(session)))
        if session.id is None:
            session.id = _new_id()
        await store.save(session.id, dict(session), self.max_age)
        return session.id if session.regenerated or not existed else None

    def _with_token(
        self, headers: list[tuple[bytes, bytes]], token: str
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` plus what gives the client ``token`` (``""``: forget the old one)."""
        if self.transport == "header":
            if not token:
                return headers
            kept = [(n, v) for n, v in headers if bytes(n).lower() != self._header_key]
            return [*kept, (self._header_key, token.encode("ascii"))]
        if self.transport == "bearer":
            return headers
        if not token:
            cookie = format_set_cookie(
                self.cookie_name, "", max_age=0, expires=_EPOCH, **self.cookie_options
            )
        else:
            cookie = format_set_cookie(
                self.cookie_name, token, max_age=self.max_age, **self.cookie_options
            )
        return [*headers, (b"set-cookie", cookie.encode("latin-1"))]
