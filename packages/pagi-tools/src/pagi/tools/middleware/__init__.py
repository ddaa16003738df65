"""Middleware: plain PAGI apps that wrap another app.

Each middleware is a class taking the app (plus keyword options) and
exposing one ``async __call__(scope, receive, send)``. :class:`Middleware`
holds a class and its options until a router or a route applies it, so
lists of middleware read top (outermost) to bottom.

:mod:`pagi.tools.middleware.base` holds the helpers for writing one (its
``Middleware`` base class is re-exported here as ``BaseMiddleware``, since
``Middleware`` is the deferred wrapper).
"""

from __future__ import annotations

from typing import Any

from pagi.spec import App
from pagi.tools.auth import requires
from pagi.tools.middleware.base import Middleware as BaseMiddleware
from pagi.tools.middleware.base import OptionError, ResponseStart
from pagi.tools.middleware.basic_auth import BasicAuth
from pagi.tools.middleware.bearer_auth import BearerAuth
from pagi.tools.middleware.body_parsers import FormBody, JSONBody
from pagi.tools.middleware.builder import Builder, build
from pagi.tools.middleware.compress import Compress, GZip
from pagi.tools.middleware.conditional_get import ConditionalGet
from pagi.tools.middleware.content_length import ContentLength
from pagi.tools.middleware.content_negotiation import ContentNegotiation
from pagi.tools.middleware.cors import CORS
from pagi.tools.middleware.csrf import CSRF
from pagi.tools.middleware.debug_panel import DebugPanel
from pagi.tools.middleware.error_handler import ErrorHandler
from pagi.tools.middleware.etag import ETag
from pagi.tools.middleware.head import Head
from pagi.tools.middleware.healthcheck import Healthcheck
from pagi.tools.middleware.https_redirect import HTTPSRedirect
from pagi.tools.middleware.maintenance import Maintenance
from pagi.tools.middleware.method_override import MethodOverride
from pagi.tools.middleware.proxy_headers import ProxyHeaders
from pagi.tools.middleware.rate_limit import RateLimit
from pagi.tools.middleware.request_id import RequestId, RequestIdFilter
from pagi.tools.middleware.rewrite import Rewrite
from pagi.tools.middleware.security_headers import SecurityHeaders
from pagi.tools.middleware.session import Session
from pagi.tools.middleware.sse_retry import SSERetry
from pagi.tools.middleware.static_files import StaticFiles
from pagi.tools.middleware.timing import AccessLog, ServerTiming, Timing
from pagi.tools.middleware.trusted_host import TrustedHost
from pagi.tools.middleware.websocket_rate_limit import WebSocketRateLimit
from pagi.tools.middleware.xsendfile import XSendfile
from pagi.tools.ratelimit_backends import MemoryBackend, RedisBackend
from pagi.tools.session_stores import MemoryStore, RedisStore

__all__ = [
    "CORS",
    "CSRF",
    "AccessLog",
    "BaseMiddleware",
    "BasicAuth",
    "BearerAuth",
    "Builder",
    "Compress",
    "ConditionalGet",
    "ContentLength",
    "ContentNegotiation",
    "DebugPanel",
    "ETag",
    "ErrorHandler",
    "FormBody",
    "GZip",
    "HTTPSRedirect",
    "Head",
    "Healthcheck",
    "JSONBody",
    "Maintenance",
    "MemoryBackend",
    "MemoryStore",
    "MethodOverride",
    "Middleware",
    "OptionError",
    "ProxyHeaders",
    "RateLimit",
    "RedisBackend",
    "RedisStore",
    "RequestId",
    "RequestIdFilter",
    "ResponseStart",
    "Rewrite",
    "SSERetry",
    "SecurityHeaders",
    "ServerTiming",
    "Session",
    "StaticFiles",
    "Timing",
    "TrustedHost",
    "WebSocketRateLimit",
    "XSendfile",
    "build",
    "requires",
]


class Middleware:
    """``Middleware(Lint)`` or ``Middleware(MyMiddleware, option=1)``: a deferred wrapper."""

    def __init__(self, factory: Any, /, *args: Any, **options: Any) -> None:
        self.factory = factory
        self.args = args
        self.options = options

    def __call__(self, app: App) -> App:
        wrapped: App = self.factory(app, *self.args, **self.options)
        return wrapped

    def __repr__(self) -> str:
        return f"Middleware({getattr(self.factory, '__name__', self.factory)!r})"
