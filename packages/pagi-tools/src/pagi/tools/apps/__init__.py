"""Ready-made apps: files and directories, redirects, 404s, URL maps, cascades,
pub/sub over SSE and WebSocket, echo, throttle, healthcheck and a file loader."""

from __future__ import annotations

from pagi.tools.apps.cascade import Cascade
from pagi.tools.apps.directory import Directory
from pagi.tools.apps.file import File
from pagi.tools.apps.healthcheck import HealthcheckApp
from pagi.tools.apps.loader import Loader
from pagi.tools.apps.not_found import NotFound
from pagi.tools.apps.redirect import Redirect
from pagi.tools.apps.sse_pubsub import SSEPubSub
from pagi.tools.apps.throttle import Throttle
from pagi.tools.apps.urlmap import URLMap
from pagi.tools.apps.websocket_broadcast import WebSocketBroadcast
from pagi.tools.apps.websocket_chat import WebSocketChat
from pagi.tools.apps.websocket_echo import WebSocketEcho

__all__ = [
    "Cascade",
    "Directory",
    "File",
    "HealthcheckApp",
    "Loader",
    "NotFound",
    "Redirect",
    "SSEPubSub",
    "Throttle",
    "URLMap",
    "WebSocketBroadcast",
    "WebSocketChat",
    "WebSocketEcho",
]
