"""Lifespan: startup and shutdown hooks, context-manager lifespans, shared state.

:class:`Lifespan` wraps an app. On the ``lifespan`` scope it runs the hooks
itself and answers the server (the wrapped app never sees that scope); on
every other scope it passes through, making sure ``scope["state"]`` holds
the lifespan state even under a server that does not support state.

Hooks receive the state dict and may fill it (a database pool, a config
object...); the server copies it shallowly into every request (R-LIFE-30),
where handlers read it as ``request.state``. Startup hooks run in order and
the first failure reports ``lifespan.startup.failed`` with its message;
context managers are entered after the hooks and exited in reverse at
shutdown, before the shutdown hooks; every shutdown step runs even if an
earlier one fails, and the errors are reported together.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

from pagi.spec import App, Receive, Scope, Send

__all__ = ["Hook", "Lifespan", "LifespanContext"]

#: A startup or shutdown hook: ``(state) -> None``, sync or async.
Hook = Callable[[dict[str, Any]], Awaitable[None] | None]
#: A lifespan context: ``(state) -> async context manager``; what it yields
#: (a mapping, or ``None``) is merged into the state.
LifespanContext = Callable[[dict[str, Any]], AbstractAsyncContextManager[Mapping[str, Any] | None]]
H = TypeVar("H", bound=Hook)


class Lifespan:
    """Wrap ``app`` with lifespan handling.

    >>> app = Lifespan(router, startup=[open_pool], shutdown=[close_pool])
    """

    def __init__(
        self,
        app: App,
        *,
        startup: Sequence[Hook] = (),
        shutdown: Sequence[Hook] = (),
        context: Sequence[LifespanContext] = (),
    ) -> None:
        self.app = app
        self.startup_hooks: list[Hook] = list(startup)
        self.shutdown_hooks: list[Hook] = list(shutdown)
        self.contexts: list[LifespanContext] = list(context)
        #: The state of the running lifespan (the server's dict when it has one).
        self.state: dict[str, Any] = {}

    def on_startup(self, hook: H) -> H:
        """Decorator: add a startup hook."""
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: H) -> H:
        """Decorator: add a shutdown hook."""
        self.shutdown_hooks.append(hook)
        return hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            await self._run(scope, receive, send)
            return
        if "state" not in scope:
            scope = dict(scope)
            scope["state"] = dict(self.state)
        await self.app(scope, receive, send)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        if state is None:
            state = {}
        self.state = state
        stack = AsyncExitStack()
        event = await receive()
        if event["type"] != "lifespan.startup":
            raise RuntimeError(f"expected lifespan.startup, got {event['type']!r}")
        try:
            for hook in self.startup_hooks:
                await _call(hook, state)
            for factory in self.contexts:
                extra = await stack.enter_async_context(factory(state))
                if extra:
                    state.update(extra)
        except Exception as exc:
            await stack.aclose()
            await send({"type": "lifespan.startup.failed", "message": _describe(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        event = await receive()
        errors: list[str] = []
        try:
            await stack.aclose()
        except Exception as exc:
            errors.append(_describe(exc))
        for hook in reversed(self.shutdown_hooks):
            try:
                await _call(hook, state)
            except Exception as exc:
                errors.append(_describe(exc))
        if errors:
            await send({"type": "lifespan.shutdown.failed", "message": "; ".join(errors)})
        else:
            await send({"type": "lifespan.shutdown.complete"})


async def _call(hook: Hook, state: dict[str, Any]) -> None:
    result = hook(state)
    if inspect.isawaitable(result):
        await result


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
