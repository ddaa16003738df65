"""Lifespan: startup and shutdown hooks, context-manager lifespans, shared state.

:class:`Lifespan` wraps an app. On the ``lifespan`` scope it runs the hooks,
then passes the lifespan on to the wrapped app (a router passes it on to
its mounted apps), sharing one state dict, and answers the server once
for all of them (:func:`serve_lifespan`); on every other scope it passes
through, making sure ``scope["state"]`` holds the lifespan state even under
a server that does not support state.

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

import anyio

from pagi.spec import App, Receive, Scope, Send

__all__ = ["Hook", "Lifespan", "LifespanContext", "serve_lifespan"]

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

        async def startup() -> None:
            try:
                for hook in self.startup_hooks:
                    await _call(hook, state)
                for factory in self.contexts:
                    extra = await stack.enter_async_context(factory(state))
                    if extra:
                        state.update(extra)
            except BaseException:
                await stack.aclose()
                raise

        async def shutdown() -> list[str]:
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
            return errors

        # The wrapped app (a router, say) gets the lifespan too, after our
        # startup and before our shutdown, sharing the same state dict.
        await serve_lifespan(
            {**scope, "state": state}, receive, send, [self.app], startup, shutdown
        )


class _ChildLifespan:
    """One app's lifespan, driven through memory streams from inside ours."""

    def __init__(self, app: App, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.supported = True
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](1)
        self._app_outbox, self._from_app = anyio.create_memory_object_stream[dict[str, Any]](1)

    async def run(self) -> None:
        try:
            await self.app(self.scope, self._app_inbox.receive, self._send)
        except Exception:
            # An app without lifespan support raises on the scope; servers treat
            # that as "no lifespan", and so do we.
            pass
        finally:
            self._app_outbox.close()

    async def _send(self, event: Mapping[str, Any]) -> None:
        await self._app_outbox.send(dict(event))

    def close(self) -> None:
        """Close the four stream ends (once the app's task is over)."""
        for end in (self._to_app, self._app_inbox, self._app_outbox, self._from_app):
            end.close()

    async def step(self, phase: str) -> str | None:
        """Send ``lifespan.<phase>``; ``None`` if it completed or is unsupported, else why not."""
        if not self.supported:
            return None
        await self._to_app.send({"type": f"lifespan.{phase}"})
        try:
            reply = await self._from_app.receive()
        except anyio.EndOfStream:
            self.supported = False
            return None
        kind = reply.get("type")
        if kind == f"lifespan.{phase}.complete":
            return None
        if kind == f"lifespan.{phase}.failed":
            return str(reply.get("message") or f"{phase} failed")
        return f"{self.app!r} answered lifespan.{phase} with {kind!r}"


async def serve_lifespan(
    scope: Scope,
    receive: Receive,
    send: Send,
    children: Sequence[App],
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[list[str]]] | None = None,
) -> None:
    """Answer a lifespan scope for ``startup``/``shutdown`` and every app in ``children``.

    Each child runs its own lifespan with a scope sharing ``scope["state"]``
    (so what each puts there is merged). Startup: ours, then the children in
    order; the first failure is reported (and what started is shut down).
    Shutdown: the children in reverse, then ours; every step runs and the
    errors are reported together. A child that does not support lifespan
    (it raises or returns on the scope) is left out.
    """
    event = await receive()
    if event["type"] != "lifespan.startup":
        raise RuntimeError(f"expected lifespan.startup, got {event['type']!r}")
    failure: str | None = None
    unexpected: str | None = None
    errors: list[str] = []
    created: list[_ChildLifespan] = []
    try:
        # Every send to the server happens outside the cancelled task group.
        async with anyio.create_task_group() as group:
            started: list[_ChildLifespan] = []
            ours_started = False
            try:
                if startup is not None:
                    await startup()
                ours_started = True
            except Exception as exc:
                failure = _describe(exc)
            if failure is None:
                for app in children:
                    child = _ChildLifespan(app, scope)
                    created.append(child)
                    group.start_soon(child.run)
                    failure = await child.step("startup")
                    if failure is not None:
                        break
                    started.append(child)
            if failure is not None:
                for child in reversed(started):
                    await child.step("shutdown")
                if ours_started and shutdown is not None:
                    await shutdown()
            else:
                await send({"type": "lifespan.startup.complete"})
                event = await receive()
                if event["type"] != "lifespan.shutdown":
                    unexpected = str(event["type"])
                else:
                    for child in reversed(started):
                        if error := await child.step("shutdown"):
                            errors.append(error)
                    if shutdown is not None:
                        errors += await shutdown()
            group.cancel_scope.cancel()
    finally:
        for child in created:
            child.close()  # also when startup fails or we are cancelled
    if failure is not None:
        await send({"type": "lifespan.startup.failed", "message": failure})
    elif unexpected is not None:
        raise RuntimeError(f"expected lifespan.shutdown, got {unexpected!r}")
    elif errors:
        await send({"type": "lifespan.shutdown.failed", "message": "; ".join(errors)})
    else:
        await send({"type": "lifespan.shutdown.complete"})


async def _call(hook: Hook, state: dict[str, Any]) -> None:
    result = hook(state)
    if inspect.isawaitable(result):
        await result


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
