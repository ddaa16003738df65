"""Dispatch by path prefix: ``URLMap({"/api": api, "/": site})``."""

from __future__ import annotations

from collections.abc import Mapping

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.response import PlainTextResponse

__all__ = ["URLMap"]


class URLMap:
    """Send each scope to the app of the longest matching prefix.

    ``/api`` matches ``/api`` and ``/api/...`` but not ``/apis``. The app
    sees ``path`` without the prefix and ``root_path`` extended by it. No
    match: ``default`` if given, else a 404 in the scope's terms. Lifespan
    scopes are ignored here (put :class:`~pagi.tools.lifespan.Lifespan`
    outside).
    """

    def __init__(
        self, mapping: Mapping[str, App] | None = None, *, default: App | None = None
    ) -> None:
        self.mounts: list[tuple[str, App]] = []
        self.default = default
        for prefix, app in (mapping or {}).items():
            self.mount(prefix, app)

    def mount(self, prefix: str, app: App) -> None:
        """Add ``app`` under ``prefix``."""
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.mounts.append((prefix, app))
        self.mounts.sort(key=lambda item: len(item[0]), reverse=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            raise TypeError("URLMap does not handle lifespan; wrap it in Lifespan")
        path = str(scope.get("path", "/"))
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                child = dict(scope)
                child["path"] = path[len(prefix) :] or "/"
                child["root_path"] = str(scope.get("root_path", "")) + prefix
                await app(child, receive, send)
                return
        if self.default is not None:
            await self.default(scope, receive, send)
        else:
            await PlainTextResponse("Not Found", 404)(scope, receive, send)
