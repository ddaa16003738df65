"""The PAGI reference server.

Run an app from the shell with ``pagi-server module:app``, or from Python::

    from pagi.server import Server
    Server(app, host="127.0.0.1", port=8000).run()

For tests and embedding, ``await Server(app, port=0).serve(task_status=...)``
runs inside an existing anyio event loop and reports the bound addresses.

``pagi.server.compiled`` is true when the hot modules run compiled with mypyc
(a platform wheel built with ``PAGI_COMPILE=1``, or an in-place build), false
when everything runs as pure Python; see ``pagi.server.implementation``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pagi.server.config import ConfigError, ServerConfig
from pagi.server.implementation import check_in_place_build, is_compiled
from pagi.server.lifespan import LifespanFailure
from pagi.server.runner import run
from pagi.server.server import Server

# After the imports above: the hot modules are loaded, compiled or not.
check_in_place_build()
compiled: bool = is_compiled()

__all__ = [
    "ConfigError",
    "LifespanFailure",
    "Server",
    "ServerConfig",
    "__version__",
    "compiled",
    "run",
]
