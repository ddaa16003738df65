"""``Loader``: serve the app defined in a Python file, optionally reloading it on change.

``Loader("site/app.py")`` imports the file under a name private to this
instance and serves its ``app`` attribute (``"site/app.py:application"``
picks another). With ``reload=True`` the file's modification time and size
are checked on each request, at most every ``check_interval`` seconds, and
the module is imported afresh when they change. When the file fails to
load (syntax error, exception at import, no such attribute) the error is
logged with its traceback and every request is answered 500 until a
later version loads; the previous good app is not kept, so what is served
always matches the file. Lifespan scopes go to the app loaded at startup.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.response import PlainTextResponse

__all__ = ["LoadError", "Loader"]

logger = logging.getLogger("pagi.tools.apps")


class LoadError(Exception):
    """The file could not be loaded as an app."""


class Loader:
    """``Loader(path, reload=False)``: ``path`` is ``file.py`` or ``file.py:attribute``."""

    _serial = itertools.count()

    def __init__(
        self, path: str | os.PathLike[str], reload: bool = False, *, check_interval: float = 0.5
    ) -> None:
        text = os.fspath(path)
        file, sep, attribute = text.rpartition(":")
        if not sep or not file or not attribute.isidentifier():
            file, attribute = text, "app"  # no attribute given (or a Windows drive)
        self.path = Path(file).resolve()
        self.attribute = attribute
        self.reload = reload
        self.check_interval = check_interval
        self._module_name = f"_pagi_loaded_{next(self._serial)}_{self.path.stem}"
        self._app: App | None = None
        self._error: str | None = None
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._load()

    @property
    def error(self) -> str | None:
        """The last load error, or ``None`` when the app loaded."""
        return self._error

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def _load(self) -> None:
        self._stamp = self._file_stamp()
        sys.modules.pop(self._module_name, None)
        try:
            spec = importlib.util.spec_from_file_location(self._module_name, self.path)
            if spec is None or spec.loader is None:
                raise LoadError(f"cannot import {self.path}")
            module: ModuleType = importlib.util.module_from_spec(spec)
            sys.modules[self._module_name] = module  # dataclasses and pickling look it up
            spec.loader.exec_module(module)
            app: Any = getattr(module, self.attribute, None)
            if not callable(app):
                raise LoadError(f"{self.path} has no callable {self.attribute!r}")
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            sys.modules.pop(self._module_name, None)
            self._app = None
            self._error = f"{type(exc).__name__}: {exc}"
            logger.error("could not load %s", self.path, exc_info=True)
            return
        self._app = app
        self._error = None
        logger.info("loaded %s:%s", self.path, self.attribute)

    def current(self) -> App | None:
        """The app to serve now, reloading first when the file changed."""
        if self.reload:
            now = time.monotonic()
            if now - self._checked >= self.check_interval:
                self._checked = now
                if self._file_stamp() != self._stamp:
                    self._load()
        return self._app

    async def _lifespan_without_app(self, receive: Receive, send: Send) -> None:
        # Without reload a broken file stops the server at startup; with
        # reload the server stays up, answering 500 until the file is fixed.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.reload:
                    failed = f"could not load {self.path}: {self._error}"
                    await send({"type": "lifespan.startup.failed", "message": failed})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.current() if scope["type"] != "lifespan" else self._app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan_without_app(receive, send)
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1011})
            return
        await PlainTextResponse("App failed to load\n", 500)(scope, receive, send)
