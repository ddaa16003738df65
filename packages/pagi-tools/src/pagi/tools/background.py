"""Background tasks: work that runs after the response has been sent.

``JSONResponse(data, background=BackgroundTask(send_email, to))`` or, for
several, a :class:`BackgroundTasks` filled with :meth:`~BackgroundTasks.add_task`.
When the response value is sent, it waits for ``pagi.connection`` to say
the response went out whole (``on_complete``), then runs the tasks in
order, still inside the app's own task, so they finish before the app
returns and before the server considers the request done. If the client
disconnected first (``on_disconnect``), the tasks are skipped unless
built with ``always=True``. Without ``pagi.connection`` (another server) the
tasks run as soon as the final body was sent. Plain functions run in a
worker thread; an error is logged on ``pagi.tools.background`` and does not
stop the next task.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from pagi.spec import Scope

__all__ = ["BackgroundTask", "BackgroundTasks", "run_after_response"]

logger = logging.getLogger("pagi.tools.background")


class BackgroundTask:
    """``BackgroundTask(func, *args, always=False, **kwargs)``: one call to make later."""

    def __init__(self, func: Callable[..., Any], *args: Any, always: bool = False, **kwargs: Any):
        if not callable(func):
            raise TypeError(f"BackgroundTask needs a callable, got {func!r}")
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.always = always

    async def __call__(self) -> None:
        """Run the call (a plain function in a worker thread); errors are logged, not raised."""
        try:
            if inspect.iscoroutinefunction(self.func):
                await self.func(*self.args, **self.kwargs)
            else:
                call = functools.partial(self.func, *self.args, **self.kwargs)
                result = await anyio.to_thread.run_sync(call)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception("background task %r failed", self.func)

    def runs_after_disconnect(self) -> bool:
        """Whether the task runs when the client left before the response ended."""
        return self.always


class BackgroundTasks(BackgroundTask):
    """Several background tasks, run in the order they were added."""

    def __init__(self, tasks: list[BackgroundTask] | None = None) -> None:
        self.tasks: list[BackgroundTask] = list(tasks or [])
        self.always = False

    def add_task(
        self, func: Callable[..., Any], *args: Any, always: bool = False, **kwargs: Any
    ) -> None:
        """Add ``func(*args, **kwargs)``; ``always`` runs it even after a disconnect."""
        self.tasks.append(BackgroundTask(func, *args, always=always, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()

    async def run(self, disconnected: bool) -> None:
        """Run the tasks allowed after this ending (all, or only ``always`` ones)."""
        for task in self.tasks:
            if not disconnected or task.always:
                await task()

    def runs_after_disconnect(self) -> bool:
        return any(task.always for task in self.tasks)


async def run_after_response(scope: Scope, task: BackgroundTask) -> None:
    """Wait until the response is complete (or the client gone), then run ``task``."""
    connection = scope.get("pagi.connection")
    disconnected = False
    if connection is not None and not connection.response_complete():
        ended = anyio.Event()

        def on_disconnect(reason: str) -> None:
            nonlocal disconnected
            disconnected = True
            ended.set()

        connection.on_complete(ended.set)
        connection.on_disconnect(on_disconnect)
        await ended.wait()
    if isinstance(task, BackgroundTasks):
        await task.run(disconnected)
    elif not disconnected or task.always:
        await task()
