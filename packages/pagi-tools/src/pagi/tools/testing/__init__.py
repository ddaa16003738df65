"""In-process testing for PAGI apps: no sockets, every event checked against the spec.

``AsyncTestClient`` for async tests, ``TestClient`` for plain ones; both
cover HTTP (buffered and streamed), WebSocket sessions, SSE sessions and
lifespan. ``FakeConnection`` and ``FakeTransport`` are the
``pagi.connection`` and ``pagi.transport`` doubles they put in each scope.
"""

from __future__ import annotations

from pagi.tools.testing.client import AsyncTestClient, encode_multipart
from pagi.tools.testing.connection import FakeConnection, FakeTransport
from pagi.tools.testing.cookies import CookieJar
from pagi.tools.testing.http import AppProtocolError, StreamingTestResponse
from pagi.tools.testing.lifespan import LifespanFailed
from pagi.tools.testing.response import TestResponse
from pagi.tools.testing.sse import SSEDeclined, SSESession, SSEStreamEnded
from pagi.tools.testing.sync import TestClient
from pagi.tools.testing.websocket import WebSocketDenied, WebSocketSession

__all__ = [
    "AppProtocolError",
    "AsyncTestClient",
    "CookieJar",
    "FakeConnection",
    "FakeTransport",
    "LifespanFailed",
    "SSEDeclined",
    "SSESession",
    "SSEStreamEnded",
    "StreamingTestResponse",
    "TestClient",
    "TestResponse",
    "WebSocketDenied",
    "WebSocketSession",
    "encode_multipart",
]
