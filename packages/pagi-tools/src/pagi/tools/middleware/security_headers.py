"""``SecurityHeaders``: the response headers every site should send, in one place.

Defaults: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy: strict-origin-when-cross-origin`` and
``Cross-Origin-Opener-Policy: same-origin``. ``Content-Security-Policy``
and ``Permissions-Policy`` are sent when given. Pass ``None`` to leave a
header out. A header the app set itself is never replaced, so one route
can relax a policy.

A policy containing ``{nonce}`` gets a fresh random nonce per request:
``content_security_policy="script-src 'self' 'nonce-{nonce}'"``. The nonce
is in ``scope["pagi.csp_nonce"]`` for templates (``<script nonce="...">``).
"""

from __future__ import annotations

import secrets
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.headers import encode_header
from pagi.tools.middleware.base import Middleware, OptionError, add_headers

__all__ = ["SecurityHeaders"]

_START_TYPES = ("http.response.start", "sse.start", "sse.http.response.start")
# Never override a header the app set: one route may relax a policy.
_ADD: dict[str, Any] = {"types": _START_TYPES, "mode": "missing"}


class SecurityHeaders(Middleware):
    """``SecurityHeaders(app, x_frame_options="DENY", content_security_policy=None, ...)``."""

    scope_types = ("http", "sse")

    def __init__(
        self,
        app: App,
        x_content_type_options: str | None = "nosniff",
        x_frame_options: str | None = "DENY",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        cross_origin_opener_policy: str | None = "same-origin",
        content_security_policy: str | None = None,
        permissions_policy: str | None = None,
    ) -> None:
        super().__init__(app)
        options = {
            "x_content_type_options": x_content_type_options,
            "x_frame_options": x_frame_options,
            "referrer_policy": referrer_policy,
            "cross_origin_opener_policy": cross_origin_opener_policy,
            "content_security_policy": content_security_policy,
            "permissions_policy": permissions_policy,
        }
        fixed: list[tuple[bytes, bytes]] = []
        self.csp_template: str | None = None
        for option, value in options.items():
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise OptionError("SecurityHeaders", option, "must be a non-empty str or None")
            name = option.replace("_", "-")
            try:
                pair = encode_header(name, value.replace("{nonce}", "n"))
            except ValueError as exc:
                raise OptionError("SecurityHeaders", option, str(exc)) from None
            if option == "content_security_policy" and "{nonce}" in value:
                self.csp_template = value
                continue
            fixed.append((pair[0], value.encode("latin-1")))
        self.fixed = fixed
        self.names = frozenset(name for name, _ in fixed)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.csp_template is None:
            await self.app(scope, receive, add_headers(send, self.fixed, **_ADD))
            return
        nonce = secrets.token_urlsafe(16)
        csp = (b"content-security-policy", self.csp_template.replace("{nonce}", nonce).encode())
        child = dict(scope)
        child["pagi.csp_nonce"] = nonce
        await self.app(child, receive, add_headers(send, [*self.fixed, csp], **_ADD))
