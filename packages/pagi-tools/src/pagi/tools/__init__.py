"""The PAGI toolkit: requests, responses, WebSocket and SSE helpers, routing, testing.

Everything here works on the PAGI interface alone (``async def app(scope,
receive, send)``), never on a particular server. The names most programs
need are re-exported here; the modules hold the rest:

* :mod:`pagi.tools.request`, :mod:`pagi.tools.response`,
  :mod:`pagi.tools.fileresponse`, :mod:`pagi.tools.websocket`,
  :mod:`pagi.tools.sse`: views over a scope and response values;
* :mod:`pagi.tools.routing`, :mod:`pagi.tools.endpoints`,
  :mod:`pagi.tools.lifespan`: structure for an application;
* :mod:`pagi.tools.headers`, :mod:`pagi.tools.datastructures`,
  :mod:`pagi.tools.cookies`, :mod:`pagi.tools.negotiation`,
  :mod:`pagi.tools.conditional`, :mod:`pagi.tools.forms`: building blocks;
* :mod:`pagi.tools.middleware` (``Lint``), :mod:`pagi.tools.apps`
  (``Directory``, ``File``, ``URLMap``...), :mod:`pagi.tools.testing`.
"""

from __future__ import annotations

from pagi.tools.datastructures import URL, Address, FormData, QueryParams, UploadFile
from pagi.tools.endpoints import HTTPEndpoint, SSEEndpoint, WebSocketEndpoint
from pagi.tools.exceptions import (
    BodyConsumedError,
    BodyTooLarge,
    ClientDisconnected,
    FormError,
    HTTPException,
    MalformedBody,
    WebSocketDisconnect,
)
from pagi.tools.fileresponse import FileResponse
from pagi.tools.forms import FormLimits
from pagi.tools.headers import Headers, MutableHeaders
from pagi.tools.lifespan import Lifespan
from pagi.tools.middleware import Middleware
from pagi.tools.request import HTTPConnection, Request
from pagi.tools.response import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pagi.tools.routing import Host, Mount, NoMatchFound, Route, Router, SSERoute, WebSocketRoute
from pagi.tools.sse import SSE, ServerSentEvent, SSEState
from pagi.tools.testing import AsyncTestClient, TestClient
from pagi.tools.websocket import WebSocket, WebSocketState

__all__ = [
    "SSE",
    "URL",
    "Address",
    "AsyncTestClient",
    "BodyConsumedError",
    "BodyTooLarge",
    "ClientDisconnected",
    "FileResponse",
    "FormData",
    "FormError",
    "FormLimits",
    "HTMLResponse",
    "HTTPConnection",
    "HTTPEndpoint",
    "HTTPException",
    "Headers",
    "Host",
    "JSONResponse",
    "Lifespan",
    "MalformedBody",
    "Middleware",
    "Mount",
    "MutableHeaders",
    "NoMatchFound",
    "PlainTextResponse",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "Route",
    "Router",
    "SSEEndpoint",
    "SSERoute",
    "SSEState",
    "ServerSentEvent",
    "StreamingResponse",
    "TestClient",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketEndpoint",
    "WebSocketRoute",
    "WebSocketState",
]

__version__ = "0.1.0"
