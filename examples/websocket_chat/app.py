"""Chat on the WebSocket helper: ``WebSocketChat`` rooms over an in-memory channels hub.

The whole app is the ready-made ``pagi.tools.apps.WebSocketChat``: clients
send JSON (``{"type": "message", "text": ...}``, ``join``, ``leave``,
``nick``, ``list``) and receive ``welcome``, ``message``, ``joined``,
``left`` and ``error`` objects. The hub is in memory; give it a
``RedisBackend`` to share rooms between workers.
"""

from pagi.tools.apps import WebSocketChat
from pagi.tools.channels import Channels

app = WebSocketChat(Channels(), default_room="lobby")
