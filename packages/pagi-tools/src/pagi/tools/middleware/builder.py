"""Builder and build(): compose a middleware stack into one app.

``Builder().add(GZip).add_if(pred, DebugPanel).mount("/static", files).build(app)``
returns a plain PAGI app, so any server runs it. The first middleware added
is the outermost, as the list reads. ``add_if`` wraps only the scopes for
which ``predicate(scope)`` is true (both stacks are built once, up front).
Mounts sit inside every middleware: the longest matching prefix wins, its
app gets the rest of the path and ``root_path`` extended by the prefix
(as :class:`~pagi.tools.routing.Mount` does); other paths reach ``app``.
Lifespan scopes go to ``app`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.middleware.base import OptionError, copy_scope

__all__ = ["Builder", "build"]

Factory = Callable[..., App]
Predicate = Callable[[Mapping[str, Any]], bool]


class _Conditional:
    """Run ``wrapped`` when ``predicate(scope)`` holds, else ``plain``."""

    def __init__(self, predicate: Predicate, wrapped: App, plain: App) -> None:
        self.predicate = predicate
        self.wrapped = wrapped
        self.plain = plain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan" and self.predicate(scope):
            await self.wrapped(scope, receive, send)
        else:
            await self.plain(scope, receive, send)


class _Mounted:
    """Dispatch to mounted apps by path prefix, else to ``app``."""

    def __init__(self, app: App, mounts: list[tuple[str, App]]) -> None:
        self.app = app
        self.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") in ("http", "websocket", "sse"):
            path = str(scope.get("path", "/"))
            for prefix, app in self.mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    rest = path[len(prefix) :] or "/"
                    root = str(scope.get("root_path", "")) + prefix
                    await app(copy_scope(scope, path=rest, root_path=root), receive, send)
                    return
        await self.app(scope, receive, send)


def _check_factory(factory: Any, option: str) -> None:
    if not callable(factory):
        raise OptionError(
            "Builder", option, f"must be a middleware class or callable, got {factory!r}"
        )


class Builder:
    """Collect middleware and mounts, then :meth:`build` them around an app."""

    def __init__(self) -> None:
        self._layers: list[tuple[Predicate | None, Factory, dict[str, Any]]] = []
        self._mounts: list[tuple[str, App]] = []

    def add(self, factory: Factory, /, **options: Any) -> Builder:
        """Add ``factory(app, **options)`` (a middleware class); returns the builder."""
        _check_factory(factory, "factory")
        self._layers.append((None, factory, options))
        return self

    def add_if(self, predicate: Predicate, factory: Factory, /, **options: Any) -> Builder:
        """Add a middleware that only wraps scopes for which ``predicate(scope)`` is true."""
        if not callable(predicate):
            raise OptionError("Builder", "predicate", f"must be callable, got {predicate!r}")
        _check_factory(factory, "factory")
        self._layers.append((predicate, factory, options))
        return self

    def mount(self, prefix: str, app: App) -> Builder:
        """Send paths under ``prefix`` (``/static`` -> ``/static/...``) to ``app``."""
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise OptionError(
                "Builder", "prefix", f"must be a path starting with '/', got {prefix!r}"
            )
        if not callable(app):
            raise OptionError("Builder", "app", f"must be a PAGI app, got {app!r}")
        prefix = prefix.rstrip("/")
        if not prefix:
            raise OptionError("Builder", "prefix", "'/' would hide the app: mount under a path")
        self._mounts.append((prefix, app))
        return self

    def build(self, app: App) -> App:
        """One app: every middleware (first added outermost) around the mounts and ``app``."""
        if not callable(app):
            raise OptionError("Builder", "app", f"must be a PAGI app, got {app!r}")
        built: App = _Mounted(app, self._mounts) if self._mounts else app
        for predicate, factory, options in reversed(self._layers):
            wrapped = factory(built, **options)
            built = wrapped if predicate is None else _Conditional(predicate, wrapped, built)
        return built


def build(app: App, *middleware: Factory) -> App:
    """``build(app, GZip, Middleware(ETag, weak=True))``: the first listed is the outermost.

    Each item is called with the app built so far: a middleware class, a
    :class:`~pagi.tools.middleware.Middleware` (a class with options) or
    any ``callable(app) -> app``.
    """
    builder = Builder()
    for factory in middleware:
        builder.add(factory)
    return builder.build(app)
