"""Maintenance: answer 503 while the site is down, except for chosen clients and paths.

``enabled`` is a bool or a callable ``enabled(scope) -> bool`` (plain or
async) checked on every request, so a flag file or a setting can switch
maintenance on and off without a restart. The answer is the scope type's
own: a 503 response (with ``Retry-After`` when ``retry_after`` is set), a
503 WebSocket denial, a 503 SSE decline. ``bypass_ips`` holds addresses or
networks (``"10.0.0.0/8"``); ``bypass_paths`` holds paths (a path and what
lies under it) or compiled regexes matched against the start of the path.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.response import PlainTextResponse

__all__ = ["Maintenance"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Maintenance(Middleware):
    """``Maintenance(app, enabled=False, retry_after=None, bypass_ips=(), bypass_paths=())``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        enabled: bool | Callable[[Scope], Any] = False,
        retry_after: int | None = None,
        bypass_ips: Iterable[str] = (),
        bypass_paths: Iterable[str | re.Pattern[str]] = (),
        *,
        message: str = "Service Unavailable: down for maintenance",
    ) -> None:
        super().__init__(app)
        if not isinstance(enabled, bool) and not callable(enabled):
            raise OptionError(
                "Maintenance", "enabled", f"must be a bool or callable, got {enabled!r}"
            )
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise OptionError(
                "Maintenance", "retry_after", f"must be seconds (int >= 0), got {retry_after!r}"
            )
        if isinstance(bypass_ips, str):
            raise OptionError("Maintenance", "bypass_ips", "must be a list, not one string")
        networks: list[Network] = []
        for ip in bypass_ips:
            try:
                networks.append(ipaddress.ip_network(str(ip), strict=False))
            except ValueError:
                raise OptionError(
                    "Maintenance", "bypass_ips", f"has {ip!r}, not an address or network"
                ) from None
        if isinstance(bypass_paths, str):
            raise OptionError("Maintenance", "bypass_paths", "must be a list, not one string")
        paths = list(bypass_paths)
        for path in paths:
            if not isinstance(path, re.Pattern) and not (
                isinstance(path, str) and path.startswith("/")
            ):
                raise OptionError(
                    "Maintenance", "bypass_paths", f"has {path!r}: use '/path' or re.compile(...)"
                )
        self.enabled = enabled
        self.retry_after = retry_after
        self.networks = networks
        self.paths = paths
        self.message = message

    async def is_enabled(self, scope: Scope) -> bool:
        """Whether maintenance is on for this scope (before the bypass lists)."""
        if isinstance(self.enabled, bool):
            return self.enabled
        result = self.enabled(scope)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def bypassed(self, scope: Scope) -> bool:
        """True when the client address or the path is on a bypass list."""
        path = str(scope.get("path", "/"))
        for rule in self.paths:
            if isinstance(rule, re.Pattern):
                if rule.match(path):
                    return True
            elif path == rule or path.startswith(rule.rstrip("/") + "/"):
                return True
        client = scope.get("client")
        if client and self.networks:
            try:
                address = ipaddress.ip_address(client[0])
            except ValueError:
                return False
            return any(address in network for network in self.networks)
        return False

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.is_enabled(scope) or self.bypassed(scope):
            await self.app(scope, receive, send)
            return
        headers = {"cache-control": "no-store"}
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        await PlainTextResponse(self.message, 503, headers=headers)(scope, receive, send)
