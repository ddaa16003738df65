"""``TrustedHost``: answer only for the host names the app is meant to serve.

A forged ``Host`` header can poison caches and password-reset links that
are built from it. Patterns are exact names (``example.com``), a
sub-domain wildcard (``*.example.com`` matches ``a.example.com`` and
``a.b.example.com``, not ``example.com`` itself) or ``*`` for any host.
Matching ignores the port and case. Other hosts get 400 on http, a denial
on websocket and a decline on sse. With ``www_redirect`` (on), a request
for ``example.com`` when only ``www.example.com`` is allowed is redirected
there.
"""

from __future__ import annotations

from collections.abc import Iterable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.datastructures import URL
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.response import PlainTextResponse, RedirectResponse

__all__ = ["TrustedHost", "host_without_port"]


def host_without_port(value: str) -> str:
    """``"Example.COM:8000"`` -> ``"example.com"``; ``"[::1]:80"`` -> ``"[::1]"``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    return value.rsplit(":", 1)[0] if ":" in value else value


class TrustedHost(Middleware):
    """``TrustedHost(app, allowed_hosts=("*",), www_redirect=True)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self, app: App, allowed_hosts: Iterable[str] = ("*",), www_redirect: bool = True
    ) -> None:
        super().__init__(app)
        if isinstance(allowed_hosts, str):
            raise OptionError("TrustedHost", "allowed_hosts", "must be a list of host patterns")
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        self.any = False
        for pattern in allowed_hosts:
            text = str(pattern).strip().lower()
            if text == "*":
                self.any = True
            elif text.startswith("*.") and "*" not in text[2:] and len(text) > 2:
                self.suffixes.append(text[1:])
            elif text and "*" not in text and "/" not in text:
                if text.count(":") > 1 and not text.startswith("["):
                    text = f"[{text}]"  # an IPv6 literal: Host headers bracket it
                self.exact.add(host_without_port(text))
            else:
                raise OptionError(
                    "TrustedHost",
                    "allowed_hosts",
                    f"has {pattern!r}; use a host name, '*.example.com' or '*'",
                )
        if not (self.any or self.exact or self.suffixes):
            raise OptionError("TrustedHost", "allowed_hosts", "is empty: nothing would be served")
        self.www_redirect = bool(www_redirect)

    def allows(self, host: str) -> bool:
        """True if ``host`` (without port, lower-case) matches a pattern."""
        return (
            self.any or host in self.exact or any(host.endswith(suffix) for suffix in self.suffixes)
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any:
            await self.app(scope, receive, send)
            return
        raw = ""
        for name, value in scope.get("headers") or ():
            if name == b"host":
                raw = value.decode("latin-1")
                break
        host = host_without_port(raw)
        if host and self.allows(host):
            await self.app(scope, receive, send)
            return
        if (
            self.www_redirect
            and scope["type"] == "http"
            and host
            and not host.startswith("www.")
            and self.allows("www." + host)
        ):
            url = URL.from_scope(scope)
            netloc = "www." + raw.strip().lower()
            await RedirectResponse(str(url.replace(netloc=netloc)), 301)(scope, receive, send)
            return
        await PlainTextResponse("Invalid host header", 400)(scope, receive, send)
