"""The runner contract (docs/spec/server.md): load an app, build a server, run it.

:func:`run` is what ``pagi-server`` calls after parsing its arguments. It is
also usable from Python. The server class is swappable (``-s
module:Class``); any class that takes the common options plus its own
keywords and offers a blocking ``run()`` will do (R-RUN-1..9).
"""

from __future__ import annotations

import logging
import os
from typing import IO, Any

from pagi.server.app_loading import AppLoadError, load_object
from pagi.spec import App

__all__ = ["DEFAULT_SERVER", "default_app", "load_app", "run", "wrap_interface"]

DEFAULT_SERVER = "pagi.server.server:Server"

log = logging.getLogger("pagi.server")


def load_app(spec: str) -> App:
    """Load an application from ``module:attr`` or ``path/file.py[:attr]``."""
    app = load_object(spec)
    if not callable(app):
        raise AppLoadError(
            f"{spec!r} is not callable; a PAGI app is async def app(scope, receive, send)"
        )
    return app  # type: ignore[no-any-return]


def default_app(root: str = ".") -> App:
    """Serve ``root`` as static files when no app is named (needs pagi-tools)."""
    try:
        from pagi.tools.apps.directory import (  # type: ignore[import-untyped,import-not-found]
            Directory,
        )
    except ImportError:
        raise SystemExit(
            "pagi-server with no APP serves the current directory, which needs pagi-tools: "
            "pip install pagi-tools (or name an app: pagi-server module:app)"
        ) from None
    return Directory(root)  # type: ignore[no-any-return]


def wrap_interface(app: Any, interface: str) -> App:
    """Wrap an ASGI or WSGI app in its pagi-tools bridge (``--interface``)."""
    if interface == "pagi":
        return app  # type: ignore[no-any-return]
    try:
        if interface == "wsgi":
            from pagi.tools.wsgi import WSGIApp  # type: ignore[import-untyped,import-not-found]

            return WSGIApp(app)  # type: ignore[no-any-return]
        from pagi.tools.asgi import ASGIApp  # type: ignore[import-untyped,import-not-found]
    except ImportError:
        raise SystemExit(
            f"pagi-server --interface {interface} runs the app through a bridge from "
            "pagi-tools, which is not installed: pip install pagi-tools"
        ) from None
    return ASGIApp(  # type: ignore[no-any-return]
        app, asgi_version="2" if interface == "asgi2" else "auto"
    )


def wrap_for_env(app: App, env: str) -> App:
    """In development, check every event with the Lint middleware when pagi-tools is there."""
    if env != "development":
        return app
    try:
        from pagi.tools.middleware.lint import (  # type: ignore[import-untyped,import-not-found]
            Lint,
        )
    except ImportError:
        log.debug("pagi-tools not installed: running without the Lint middleware")
        return app
    return Lint(app)  # type: ignore[no-any-return]


def run(
    app: App | str | None = None,
    *,
    server: str | type = DEFAULT_SERVER,
    env: str = "production",
    host: str = "127.0.0.1",
    port: int = 5000,
    quiet: bool = False,
    access_log: IO[str] | object | None = ...,
    loop_type: str = "asyncio",
    **server_options: Any,
) -> None:
    """Load ``app``, construct the server class with the common options, run it."""
    if app is None:
        app_obj = default_app()
    elif isinstance(app, str):
        app_obj = load_app(app)
    else:
        app_obj = app
    os.environ["PAGI_ENV"] = env
    # The runner applies the bridge, so every server class (-s) gets a PAGI app.
    app_obj = wrap_interface(app_obj, server_options.pop("interface", "pagi"))
    app_obj = wrap_for_env(app_obj, env)
    cls = load_object(server, default_attr="Server") if isinstance(server, str) else server
    options: dict[str, Any] = dict(
        app=app_obj, host=host, port=port, quiet=quiet, loop_type=loop_type, **server_options
    )
    if access_log is not ...:
        options["access_log"] = access_log
    cls(**options).run()
