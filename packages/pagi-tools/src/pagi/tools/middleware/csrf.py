"""``CSRF``: refuse state-changing requests that another site made the browser send.

Theory of operation (double-submit, signed)
-------------------------------------------
Every client gets a random token in a cookie (``csrftoken``), signed with
``secret_key`` so that nobody can plant a token of their own making. The
token is also in ``scope["pagi.csrf_token"]`` for templates. A request
with an unsafe method (anything but ``safe_methods``) must send the same
token back, in the ``X-CSRFToken`` header (what a single-page app does,
reading the cookie from JavaScript) or in the ``csrftoken`` field of a
form (what an HTML form does, with a hidden input). A page on another
site can make the browser send the cookie but cannot read it, so it cannot
echo it: such requests get 403. Tokens are compared with
:func:`hmac.compare_digest`.

To find a form field the middleware reads the body (up to
``max_body_size``, else 413) and hands the app a ``receive`` that replays
it, so the app reads the body as usual. Requests that send the header are
not buffered. Paths in ``exempt`` (prefixes or patterns) are not checked:
webhooks from other servers, which carry no browser cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Iterable

from itsdangerous import BadSignature, URLSafeSerializer

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.cookies import SameSite, format_set_cookie, parse_cookie_header
from pagi.tools.datastructures import QueryParams
from pagi.tools.exceptions import ClientDisconnected, HTTPException
from pagi.tools.forms import FormLimits, parse_form
from pagi.tools.middleware.base import (
    Middleware,
    OptionError,
    add_headers,
    read_body,
    replay_receive,
)
from pagi.tools.pathmatch import PathMatcher
from pagi.tools.request import DEFAULT_MAX_BODY_SIZE
from pagi.tools.response import PlainTextResponse

__all__ = ["CSRF"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class CSRF(Middleware):
    """``CSRF(app, secret_key, cookie_name="csrftoken", header_name="x-csrftoken", ...)``."""

    def __init__(
        self,
        app: App,
        secret_key: str | bytes,
        cookie_name: str = "csrftoken",
        header_name: str = "x-csrftoken",
        safe_methods: Iterable[str] = ("GET", "HEAD", "OPTIONS", "TRACE"),
        form_field: str = "csrftoken",
        cookie_path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        exempt: Iterable[str | re.Pattern[str]] = (),
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        super().__init__(app)
        if not secret_key:
            raise OptionError("CSRF", "secret_key", "must be a non-empty str or bytes")
        for option, value in (("cookie_name", cookie_name), ("header_name", header_name)):
            if not isinstance(value, str) or not _TOKEN.fullmatch(value):
                raise OptionError("CSRF", option, f"must be a token, got {value!r}")
        if not isinstance(form_field, str) or not form_field:
            raise OptionError("CSRF", "form_field", "must be a non-empty str")
        if isinstance(safe_methods, str):
            raise OptionError("CSRF", "safe_methods", "must be a list of methods")
        self.safe_methods = frozenset(m.upper() for m in safe_methods)
        if self.safe_methods & {"POST", "PUT", "PATCH", "DELETE"}:
            raise OptionError("CSRF", "safe_methods", "must not list POST, PUT, PATCH or DELETE")
        try:
            format_set_cookie(cookie_name, "x", path=cookie_path, samesite=same_site, secure=True)
        except ValueError as exc:
            option = "cookie_path" if "Path" in str(exc) else "same_site"
            raise OptionError("CSRF", option, str(exc)) from None
        if str(same_site).lower() == "none" and not https_only:
            raise OptionError("CSRF", "same_site", "'none' needs https_only=True")
        if (
            isinstance(max_body_size, bool)
            or not isinstance(max_body_size, int)
            or max_body_size < 0
        ):
            raise OptionError("CSRF", "max_body_size", "must be an int >= 0")
        self.signer = URLSafeSerializer(
            secret_key, salt="pagi.csrf", signer_kwargs={"digest_method": hashlib.sha1}
        )
        self.cookie_name = cookie_name
        self.header_key = header_name.lower().encode("latin-1")
        self.form_field = form_field
        self.cookie_path = cookie_path
        self.same_site = same_site
        self.https_only = bool(https_only)
        self.exempt = PathMatcher("CSRF", "exempt", exempt)
        self.max_body_size = max_body_size

    def _valid(self, token: str | None) -> bool:
        if not token:
            return False
        try:
            self.signer.loads(token)
        except BadSignature:
            return False
        return True

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        cookie_header = None
        submitted = None
        content_type = ""
        for name, value in scope.get("headers") or ():
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie_header = text if cookie_header is None else f"{cookie_header}; {text}"
            elif name == self.header_key:
                submitted = value.decode("latin-1").strip()
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        cookie = parse_cookie_header(cookie_header).get(self.cookie_name) if cookie_header else None
        known = self._valid(cookie)
        method = str(scope.get("method", "GET")).upper()
        if method not in self.safe_methods and not self.exempt.matches(scope):
            if submitted is None and content_type.split(";")[0].strip().lower() in _FORM_TYPES:
                try:
                    body = await read_body(receive, self.max_body_size)
                    submitted = await self._form_token(content_type, body)
                except HTTPException as exc:
                    await PlainTextResponse(exc.detail, exc.status)(scope, receive, send)
                    return
                except ClientDisconnected:
                    return
                receive = replay_receive(body, receive)
            if not (
                known
                and submitted
                and cookie is not None
                and hmac.compare_digest(submitted.encode("latin-1", "replace"), cookie.encode())
            ):
                await PlainTextResponse("CSRF token missing or incorrect", 403)(
                    scope, receive, send
                )
                return
        child = dict(scope)
        if known and cookie is not None:
            child["pagi.csrf_token"] = cookie
            await self.app(child, receive, send)
            return
        token = self.signer.dumps(secrets.token_hex(16))
        child["pagi.csrf_token"] = token
        secure = self.https_only or scope.get("scheme") == "https"
        set_cookie = format_set_cookie(
            self.cookie_name, token, path=self.cookie_path, samesite=self.same_site, secure=secure
        )
        cookie_send = add_headers(send, [(b"set-cookie", set_cookie.encode("latin-1"))])
        await self.app(child, receive, cookie_send)

    async def _form_token(self, content_type: str, body: bytes) -> str | None:
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            form = await parse_form(content_type, _once(body), FormLimits())
            try:
                value = form.get(self.form_field)
            finally:
                await form.close()
            return value if isinstance(value, str) else None
        return QueryParams(body.decode("latin-1")).get(self.form_field)
