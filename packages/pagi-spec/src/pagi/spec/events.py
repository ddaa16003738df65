"""TypedDicts for every event of every scope type, in both directions.

Naming: each class is its ``type`` in CamelCase plus ``Event``, so
``websocket.http.response.start`` is :class:`WebSocketHTTPResponseStartEvent`.
The unions per scope are named after the direction seen from the
application: ``...IncomingEvent`` is what ``receive()`` returns,
``...OutgoingEvent`` what ``send()`` takes (``HTTPIncomingEvent``,
``SSEOutgoingEvent``, ...); ``IncomingEvent`` and ``OutgoingEvent`` cover
every scope.

Conventions (docs/spec/spec.md, "Data types"):

* ``type`` is a ``Literal``; every other key is optional unless a class
  docstring says it is required. Required keys sit in a ``total=True`` base
  class, because Python 3.10 has no ``NotRequired`` and this package uses no
  backports.
* Flags (``more``, ``trailers``) are typed ``bool``. The validator also
  accepts the integers ``0`` and ``1`` (R-DATA-5, decision on A-40);
  servers always emit ``True``/``False``.
* A key set to ``None`` counts as absent.
* Extra keys are allowed and ignored (R-ERR-5); a TypedDict only lists the
  keys the specification defines.

These classes are for type checkers. The run-time rules, which also cover
value ranges and header bytes, are in :mod:`pagi.spec.validation`.
"""

from __future__ import annotations

import os
from typing import IO, Literal, TypeAlias, TypedDict

from pagi.spec.scopes import Headers

__all__ = [
    "HTTPDisconnectEvent",
    "HTTPFullFlushEvent",
    "HTTPIncomingEvent",
    "HTTPOutgoingEvent",
    "HTTPRequestEvent",
    "HTTPResponseBodyEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseTrailersEvent",
    "IncomingEvent",
    "LifespanIncomingEvent",
    "LifespanOutgoingEvent",
    "LifespanShutdownCompleteEvent",
    "LifespanShutdownEvent",
    "LifespanShutdownFailedEvent",
    "LifespanStartupCompleteEvent",
    "LifespanStartupEvent",
    "LifespanStartupFailedEvent",
    "OutgoingEvent",
    "SSECloseEvent",
    "SSECommentEvent",
    "SSEDisconnectEvent",
    "SSEHTTPResponseBodyEvent",
    "SSEHTTPResponseStartEvent",
    "SSEIncomingEvent",
    "SSEKeepaliveEvent",
    "SSEOutgoingEvent",
    "SSERequestEvent",
    "SSESendEvent",
    "SSEStartEvent",
    "WebSocketAcceptEvent",
    "WebSocketCloseEvent",
    "WebSocketConnectEvent",
    "WebSocketDisconnectEvent",
    "WebSocketHTTPResponseBodyEvent",
    "WebSocketHTTPResponseStartEvent",
    "WebSocketIncomingEvent",
    "WebSocketKeepaliveEvent",
    "WebSocketOutgoingEvent",
    "WebSocketReceiveEvent",
    "WebSocketSendEvent",
]


# ---------------------------------------------------------------------------
# http: receive
# ---------------------------------------------------------------------------


class _HTTPRequestType(TypedDict):
    type: Literal["http.request"]


class HTTPRequestEvent(_HTTPRequestType, total=False):
    """``http.request``: one piece of the request body (R-HTTP-10..12).

    ``body`` (bytes, default ``b""``) is de-chunked; ``more`` is true while
    further pieces follow. A request yields one or more of these, the last
    with ``more`` false; a request without a body yields exactly one, empty.
    """

    body: bytes
    more: bool


class HTTPDisconnectEvent(TypedDict):
    """``http.disconnect``: the request is over (R-HTTP-13, R-HTTP-15, R-CONN-40).

    Returned when the client went away and by every ``receive`` after the
    response was complete.
    """

    type: Literal["http.disconnect"]


# ---------------------------------------------------------------------------
# http: send
# ---------------------------------------------------------------------------


class _HTTPResponseStartRequired(TypedDict):
    type: Literal["http.response.start"]
    status: int


class HTTPResponseStartEvent(_HTTPResponseStartRequired, total=False):
    """``http.response.start``: status and headers (R-HTTP-20..23, R-HTTP-30..34).

    Required: ``status``, a final status code 200-599. ``headers`` defaults
    to ``[]``; ``trailers`` true announces an ``http.response.trailers``
    event after the last body (R-HTTP-27, R-HTTP-50).
    """

    headers: Headers
    trailers: bool


class _HTTPResponseBodyType(TypedDict):
    type: Literal["http.response.body"]


class HTTPResponseBodyEvent(_HTTPResponseBodyType, total=False):
    """``http.response.body``: body bytes, a file path or an open file (R-HTTP-24..25, R-HFILE-*).

    At most one of ``body`` (bytes), ``file`` (a path, ``str`` or
    ``os.PathLike``; the server opens, streams and closes it) and ``fh`` (an
    open binary file object the application keeps owning and closes after
    ``send`` returns). None of them means an empty body. ``offset`` and
    ``length`` (non-negative ints) select a range of a ``file``/``fh``.
    ``more`` true means more body follows; a ``file``/``fh`` body is always
    the last one, whatever ``more`` says (R-HFILE-12).
    """

    body: bytes
    file: str | os.PathLike[str]
    fh: IO[bytes]
    offset: int
    length: int | None
    more: bool


class _HTTPResponseTrailersType(TypedDict):
    type: Literal["http.response.trailers"]


class HTTPResponseTrailersEvent(_HTTPResponseTrailersType, total=False):
    """``http.response.trailers``: trailer fields after the body (R-HTTP-27, R-HTTP-28, R-HTTP-50).

    Only allowed when ``http.response.start`` had ``trailers`` true; it
    completes the response. ``headers`` follow the response-header rules.
    """

    headers: Headers


class HTTPFullFlushEvent(TypedDict):
    """``http.fullflush``: push buffered bytes to the client now (R-EXT-10..12).

    Only when ``scope["extensions"]`` has ``fullflush``; otherwise ``send``
    raises.
    """

    type: Literal["http.fullflush"]


# ---------------------------------------------------------------------------
# websocket: receive
# ---------------------------------------------------------------------------


class WebSocketConnectEvent(TypedDict):
    """``websocket.connect``: the first event of a session; answer it (R-WS-10, R-WS-11)."""

    type: Literal["websocket.connect"]


class _WebSocketReceiveType(TypedDict):
    type: Literal["websocket.receive"]


class WebSocketReceiveEvent(_WebSocketReceiveType, total=False):
    """``websocket.receive``: one whole message (R-WS-3, R-WS-13).

    Exactly one of ``bytes`` (a binary message) and ``text`` (a text
    message, already UTF-8-decoded) is set; the other is absent or ``None``.
    """

    bytes: bytes | None
    text: str | None


class _WebSocketDisconnectRequired(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int


class WebSocketDisconnectEvent(_WebSocketDisconnectRequired, total=False):
    """``websocket.disconnect``: the session is over (R-WS-30..35).

    Required: ``code``, an RFC 6455 close code: the peer's code, 1005 when
    its Close frame had none, 1006 when the connection ended without a
    closing handshake. ``reason`` (default ``""``) is the peer's close
    reason, or a standard reason token when the server ended the session.
    """

    reason: str


# ---------------------------------------------------------------------------
# websocket: send
# ---------------------------------------------------------------------------


class _WebSocketAcceptType(TypedDict):
    type: Literal["websocket.accept"]


class WebSocketAcceptEvent(_WebSocketAcceptType, total=False):
    """``websocket.accept``: complete the handshake (R-WS-11, R-WS-16).

    ``subprotocol`` (a token) becomes ``Sec-WebSocket-Protocol``; ``headers``
    are added to the handshake response.
    """

    subprotocol: str | None
    headers: Headers


class _WebSocketSendType(TypedDict):
    type: Literal["websocket.send"]


class WebSocketSendEvent(_WebSocketSendType, total=False):
    """``websocket.send``: one message (R-WS-14).

    Exactly one of ``bytes`` (sent as a binary frame) and ``text`` (sent
    UTF-8-encoded as a text frame).
    """

    bytes: bytes | None
    text: str | None


class _WebSocketCloseType(TypedDict):
    type: Literal["websocket.close"]


class WebSocketCloseEvent(_WebSocketCloseType, total=False):
    """``websocket.close``: refuse the handshake (403) or close the session (R-WS-12, R-WS-18).

    ``code`` (default 1000) must be one an endpoint may send: 1000-1003,
    1007-1014 or 3000-4999. ``reason`` (default ``""``) must fit in 123
    UTF-8 bytes.
    """

    code: int
    reason: str


class _WebSocketKeepaliveRequired(TypedDict):
    type: Literal["websocket.keepalive"]
    interval: float


class WebSocketKeepaliveEvent(_WebSocketKeepaliveRequired, total=False):
    """``websocket.keepalive``: ping every ``interval`` seconds (R-WS-40..44).

    Required: ``interval`` (``0`` stops the pings). With ``timeout``, a
    missing pong after that many seconds aborts the connection
    (``websocket.disconnect`` code 1006, reason ``keepalive_timeout``).
    The latest event replaces earlier settings.
    """

    timeout: float | None


class _WebSocketHTTPResponseStartRequired(TypedDict):
    type: Literal["websocket.http.response.start"]
    status: int


class WebSocketHTTPResponseStartEvent(_WebSocketHTTPResponseStartRequired, total=False):
    """``websocket.http.response.start``: deny the handshake with a real response (R-WSDENY-1..7).

    Extension ``websocket.http.response`` only. Required: ``status``
    (200-599). Ignored after ``websocket.accept`` (R-WSDENY-6).
    """

    headers: Headers


class _WebSocketHTTPResponseBodyType(TypedDict):
    type: Literal["websocket.http.response.body"]


class WebSocketHTTPResponseBodyEvent(_WebSocketHTTPResponseBodyType, total=False):
    """``websocket.http.response.body``: body of a denial response (R-WSDENY-3).

    ``body`` bytes (default ``b""``); ``more`` true while more follows.
    """

    body: bytes
    more: bool


# ---------------------------------------------------------------------------
# sse: receive
# ---------------------------------------------------------------------------


class _SSERequestType(TypedDict):
    type: Literal["sse.request"]


class SSERequestEvent(_SSERequestType, total=False):
    """``sse.request``: the request body, as ``http.request`` (R-SSE-10)."""

    body: bytes
    more: bool


class SSEDisconnectEvent(TypedDict):
    """``sse.disconnect``: the stream is over (R-SSE-11).

    ``reason`` is required and is a standard disconnect reason
    (:class:`~pagi.spec.DisconnectReason`) or an ``x-`` reason.
    """

    type: Literal["sse.disconnect"]
    reason: str


# ---------------------------------------------------------------------------
# sse: send
# ---------------------------------------------------------------------------


class _SSEStartType(TypedDict):
    type: Literal["sse.start"]


class SSEStartEvent(_SSEStartType, total=False):
    """``sse.start``: begin the event stream (R-SSE-20..23).

    ``status`` defaults to 200; ``headers`` to ``[]``. The server adds
    ``content-type: text/event-stream`` when absent, plus ``cache-control``
    and ``date``.
    """

    status: int
    headers: Headers


class _SSESendRequired(TypedDict):
    type: Literal["sse.send"]
    data: str


class SSESendEvent(_SSESendRequired, total=False):
    """``sse.send``: one event (R-SSE-30..35).

    Required: ``data`` (text; each line becomes a ``data:`` line). ``event``
    and ``id`` must not contain CR, LF or NUL; ``retry`` is a non-negative
    number of milliseconds.
    """

    event: str | None
    id: str | None
    retry: int | None


class _SSECommentType(TypedDict):
    type: Literal["sse.comment"]


class SSECommentEvent(_SSECommentType, total=False):
    """``sse.comment``: a comment line the browser ignores (R-SSE-40, R-SSE-41).

    ``comment`` defaults to ``""``; every line of it is sent prefixed with
    ``:``.
    """

    comment: str


class _SSEKeepaliveRequired(TypedDict):
    type: Literal["sse.keepalive"]
    interval: float


class SSEKeepaliveEvent(_SSEKeepaliveRequired, total=False):
    """``sse.keepalive``: send a comment every ``interval`` seconds (R-SSE-42, R-SSE-43).

    Required: ``interval`` (``0`` stops it). ``comment`` (default ``""``)
    follows the ``sse.comment`` rules.
    """

    comment: str


class _SSECloseType(TypedDict):
    type: Literal["sse.close"]


class SSECloseEvent(_SSECloseType, total=False):
    """``sse.close``: end the stream now (R-SSE-51..56).

    ``reason`` is for the server's logs only and never reaches the client.
    A repeated ``sse.close`` is ignored; any other event after it raises.
    """

    reason: str | None


class _SSEHTTPResponseStartRequired(TypedDict):
    type: Literal["sse.http.response.start"]
    status: int


class SSEHTTPResponseStartEvent(_SSEHTTPResponseStartRequired, total=False):
    """``sse.http.response.start``: decline the stream with a plain response (R-SSE-60..64).

    Required: ``status`` (200-599). Only before ``sse.start``; the first of
    the two wins (R-SSE-63).
    """

    headers: Headers


class _SSEHTTPResponseBodyType(TypedDict):
    type: Literal["sse.http.response.body"]


class SSEHTTPResponseBodyEvent(_SSEHTTPResponseBodyType, total=False):
    """``sse.http.response.body``: body of a decline response (R-SSE-61)."""

    body: bytes
    more: bool


# ---------------------------------------------------------------------------
# lifespan
# ---------------------------------------------------------------------------


class LifespanStartupEvent(TypedDict):
    """``lifespan.startup``: the server is about to accept connections (R-LIFE-10)."""

    type: Literal["lifespan.startup"]


class LifespanShutdownEvent(TypedDict):
    """``lifespan.shutdown``: the server has stopped serving (R-LIFE-13)."""

    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteEvent(TypedDict):
    """``lifespan.startup.complete``: startup went well; serve (R-LIFE-10)."""

    type: Literal["lifespan.startup.complete"]


class _LifespanStartupFailedType(TypedDict):
    type: Literal["lifespan.startup.failed"]


class LifespanStartupFailedEvent(_LifespanStartupFailedType, total=False):
    """``lifespan.startup.failed``: do not serve; ``message`` is logged (R-LIFE-11, R-LIFE-12)."""

    message: str


class LifespanShutdownCompleteEvent(TypedDict):
    """``lifespan.shutdown.complete``: cleanup is done (R-LIFE-14)."""

    type: Literal["lifespan.shutdown.complete"]


class _LifespanShutdownFailedType(TypedDict):
    type: Literal["lifespan.shutdown.failed"]


class LifespanShutdownFailedEvent(_LifespanShutdownFailedType, total=False):
    """``lifespan.shutdown.failed``: cleanup went wrong; ``message`` is logged (R-LIFE-15)."""

    message: str


# ---------------------------------------------------------------------------
# unions
# ---------------------------------------------------------------------------

#: What ``receive()`` returns in an ``http`` scope.
HTTPIncomingEvent: TypeAlias = HTTPRequestEvent | HTTPDisconnectEvent
#: What ``send()`` takes in an ``http`` scope.
HTTPOutgoingEvent: TypeAlias = (
    HTTPResponseStartEvent | HTTPResponseBodyEvent | HTTPResponseTrailersEvent | HTTPFullFlushEvent
)
#: What ``receive()`` returns in a ``websocket`` scope.
WebSocketIncomingEvent: TypeAlias = (
    WebSocketConnectEvent | WebSocketReceiveEvent | WebSocketDisconnectEvent
)
#: What ``send()`` takes in a ``websocket`` scope.
WebSocketOutgoingEvent: TypeAlias = (
    WebSocketAcceptEvent
    | WebSocketSendEvent
    | WebSocketCloseEvent
    | WebSocketKeepaliveEvent
    | WebSocketHTTPResponseStartEvent
    | WebSocketHTTPResponseBodyEvent
)
#: What ``receive()`` returns in an ``sse`` scope.
SSEIncomingEvent: TypeAlias = SSERequestEvent | SSEDisconnectEvent
#: What ``send()`` takes in an ``sse`` scope.
SSEOutgoingEvent: TypeAlias = (
    SSEStartEvent
    | SSESendEvent
    | SSECommentEvent
    | SSEKeepaliveEvent
    | SSECloseEvent
    | SSEHTTPResponseStartEvent
    | SSEHTTPResponseBodyEvent
)
#: What ``receive()`` returns in a ``lifespan`` scope.
LifespanIncomingEvent: TypeAlias = LifespanStartupEvent | LifespanShutdownEvent
#: What ``send()`` takes in a ``lifespan`` scope.
LifespanOutgoingEvent: TypeAlias = (
    LifespanStartupCompleteEvent
    | LifespanStartupFailedEvent
    | LifespanShutdownCompleteEvent
    | LifespanShutdownFailedEvent
)
#: Any event a server hands to an application.
IncomingEvent: TypeAlias = (
    HTTPIncomingEvent | WebSocketIncomingEvent | SSEIncomingEvent | LifespanIncomingEvent
)
#: Any event an application sends.
OutgoingEvent: TypeAlias = (
    HTTPOutgoingEvent | WebSocketOutgoingEvent | SSEOutgoingEvent | LifespanOutgoingEvent
)
