"""The PAGI reference server.

Run an app from the shell with ``pagi-server module:app``, or from Python::

    from pagi.server import Server
    Server(app, host="127.0.0.1", port=8000).run()

For tests and embedding, ``await Server(app, port=0).serve(task_status=...)``
runs inside an existing anyio event loop and reports the bound addresses.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pagi.server.config import ConfigError, ServerConfig
from pagi.server.lifespan import LifespanFailure
from pagi.server.runner import run
from pagi.server.server import Server

__all__ = ["ConfigError", "LifespanFailure", "Server", "ServerConfig", "__version__", "run"]
