"""``ProxyHeaders``: take the client address, scheme and host from trusted proxies.

Only when the connection's own peer is in ``trusted`` does the middleware
read ``Forwarded`` (RFC 7239) or ``X-Forwarded-For``/``-Proto``/``-Host``,
walking the hops from the right and skipping trusted proxies (see
:mod:`pagi.tools.forwarded`). The app then sees the real client in
``scope["client"]``, the scheme the client used in ``scope["scheme"]``
(``ws``/``wss`` on WebSocket scopes) and the host it asked for in the
``host`` header. What the connection itself said is kept in
``pagi.original_client``, ``pagi.original_scheme`` and
``pagi.original_host``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.forwarded import TrustedProxies, resolve_forwarded
from pagi.tools.middleware.base import Middleware, OptionError

__all__ = ["ProxyHeaders"]

_FOR_WEBSOCKET = {"http": "ws", "https": "wss"}
_FOR_HTTP = {"ws": "http", "wss": "https"}


class ProxyHeaders(Middleware):
    """``ProxyHeaders(app, trusted=("127.0.0.1", "::1"))``; ``trusted`` takes CIDRs or ``"*"``.

    Never use ``"*"`` when clients can reach the app directly: any of them
    could then claim any address.
    """

    scope_types = ("http", "websocket", "sse")

    def __init__(self, app: App, trusted: Iterable[str] | str = ("127.0.0.1", "::1")) -> None:
        super().__init__(app)
        try:
            self.trusted = TrustedProxies(trusted)
        except ValueError as exc:
            raise OptionError("ProxyHeaders", "trusted", str(exc)) from None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if not client or not self.trusted.trusts(client[0]):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        info = resolve_forwarded(headers, self.trusted)
        if info.client is None and info.scheme is None and info.host is None:
            await self.app(scope, receive, send)
            return
        child = dict(scope)
        original_host = None
        for name, value in headers:
            if name == b"host":
                original_host = value.decode("latin-1")
                break
        child["pagi.original_client"] = client
        child["pagi.original_scheme"] = scope.get("scheme")
        child["pagi.original_host"] = original_host
        if info.client is not None:
            child["client"] = info.client
        if info.scheme is not None:
            table = _FOR_WEBSOCKET if scope["type"] == "websocket" else _FOR_HTTP
            child["scheme"] = table.get(info.scheme, info.scheme)
        if info.host is not None:
            host = info.host.encode("latin-1", "replace")
            child["headers"] = [(n, v) for n, v in headers if n != b"host"] + [(b"host", host)]
        await self.app(child, receive, send)
