"""Send-side state machines for every scope type.

Theory of operation
-------------------
An application's sends on one scope must come in an order the protocol
allows: ``http.response.start`` before any body, nothing after ``sse.close``
but another ``sse.close``, and so on. Each scope type has one transition
table below, keyed by ``(state, event type)``. A table entry is either the
next state or a function of the event that returns it (for example, a body
with ``more`` keeps an HTTP response streaming, one without ends it).

:class:`SendMachine` looks the pair up: a hit advances the state; a miss is an
:class:`~pagi.spec.EventOrderError` with a message that says what was
expected. Some pairs are in the table as :data:`IGNORE`: the specification
requires them to be dropped silently (R-WSDENY-6: denial events after
``websocket.accept``; R-SSE-53: a repeated ``sse.close``; R-WS-17 and
R-CORE-53 for WebSocket sends after the close).

The states and their meaning follow spec-digest sections 3.4 (HTTP), 4.3
(WebSocket), 5.9 (SSE) and 7.4 (lifespan). Decisions on the points the
specification leaves open (docs/spec/www.md, "Decisions"):

* HTTP out-of-order sends raise (A-9), like a second ``http.response.start``.
* ``websocket.send`` or ``websocket.keepalive`` before accept raise (A-30).
* ``sse.send``, ``sse.comment``, ``sse.keepalive`` and ``sse.close`` before
  ``sse.start`` raise (A-37), as do all sends after a finished decline.

The machine only judges order; whether the client is still there is the
server's business (a send after disconnect is a no-op, R-CORE-53, but an
out-of-order send is a bug in the app and raises either way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from pagi.spec.constants import EXT_FULLFLUSH, EXT_WEBSOCKET_HTTP_RESPONSE
from pagi.spec.errors import EventError, EventOrderError
from pagi.spec.validation import plainly_valid as _plainly_valid
from pagi.spec.validation import validate_send_event

__all__ = ["IGNORE", "SendMachine"]

#: Sentinel next-state: the event is legal but the server must drop it.
IGNORE: Final = "<ignore>"

_Next = str | Callable[["SendMachine", Mapping[str, Any]], str]


def _http_after_start(machine: SendMachine, event: Mapping[str, Any]) -> str:
    machine.trailers_expected = bool(event.get("trailers", 0))
    return "started"


def _http_after_body(machine: SendMachine, event: Mapping[str, Any]) -> str:
    final = event.get("file") is not None or event.get("fh") is not None or not event.get("more")
    if not final:
        return "streaming"
    return "awaiting_trailers" if machine.trailers_expected else "done"


def _http_trailers(machine: SendMachine, event: Mapping[str, Any]) -> str:
    return "done"


def _body_more(ongoing: str, finished: str) -> _Next:
    def after_body(machine: SendMachine, event: Mapping[str, Any]) -> str:
        return ongoing if event.get("more") else finished

    return after_body


_HTTP: dict[tuple[str, str], _Next] = {
    ("init", "http.response.start"): _http_after_start,
    ("started", "http.response.body"): _http_after_body,
    ("streaming", "http.response.body"): _http_after_body,
    ("started", "http.fullflush"): "started",
    ("streaming", "http.fullflush"): "streaming",
    ("awaiting_trailers", "http.response.trailers"): _http_trailers,
    ("awaiting_trailers", "http.fullflush"): "awaiting_trailers",
}

_WS_DENIAL = ("websocket.http.response.start", "websocket.http.response.body")
_WEBSOCKET: dict[tuple[str, str], _Next] = {
    ("handshake", "websocket.accept"): "open",
    ("handshake", "websocket.close"): "closed",
    ("handshake", "websocket.http.response.start"): "denying",
    ("denying", "websocket.http.response.body"): _body_more("denying", "closed"),
    ("open", "websocket.send"): "open",
    ("open", "websocket.keepalive"): "open",
    ("open", "websocket.close"): "closed",
    ("open", "websocket.http.response.start"): IGNORE,
    ("open", "websocket.http.response.body"): IGNORE,
    # After the close every send is a no-op (R-WS-17).
    **{
        ("closed", t): IGNORE
        for t in (
            "websocket.accept",
            "websocket.send",
            "websocket.close",
            "websocket.keepalive",
            *_WS_DENIAL,
        )
    },
}

_SSE: dict[tuple[str, str], _Next] = {
    ("pending", "sse.start"): "streaming",
    ("pending", "sse.http.response.start"): "declining",
    ("declining", "sse.http.response.body"): _body_more("declining", "declined"),
    ("streaming", "sse.send"): "streaming",
    ("streaming", "sse.comment"): "streaming",
    ("streaming", "sse.keepalive"): "streaming",
    ("streaming", "sse.close"): "closed",
    ("closed", "sse.close"): IGNORE,
}

_LIFESPAN: dict[tuple[str, str], _Next] = {
    ("startup", "lifespan.startup.complete"): "running",
    ("startup", "lifespan.startup.failed"): "done",
    ("running", "lifespan.shutdown.complete"): "done",
    ("running", "lifespan.shutdown.failed"): "done",
}

_TABLES: dict[str, tuple[str, dict[tuple[str, str], _Next]]] = {
    "http": ("init", _HTTP),
    "websocket": ("handshake", _WEBSOCKET),
    "sse": ("pending", _SSE),
    "lifespan": ("startup", _LIFESPAN),
}

# Hints for the mistakes people actually make; the generic message covers the rest.
_HINTS: dict[tuple[str, str], str] = {
    ("init", "http.response.body"): "was sent before http.response.start",
    ("init", "http.response.trailers"): "was sent before http.response.start",
    ("started", "http.response.start"): "was sent twice; the response has already started",
    ("streaming", "http.response.start"): "was sent twice; the response has already started",
    ("started", "http.response.trailers"): (
        "needs trailers=True on http.response.start and a final body first (R-HTTP-27)"
    ),
    ("streaming", "http.response.trailers"): (
        "needs trailers=True on http.response.start and a final body first (R-HTTP-27)"
    ),
    ("done", "http.response.body"): "was sent after the response was complete",
    ("done", "http.response.start"): "was sent twice; the response is already complete",
    ("awaiting_trailers", "http.response.start"): "was sent twice; the response has started",
    ("handshake", "websocket.send"): "was sent before websocket.accept",
    ("handshake", "websocket.keepalive"): "was sent before websocket.accept",
    ("open", "websocket.accept"): "was sent twice; the connection is already accepted",
    ("pending", "sse.send"): "was sent before sse.start (R-SSE-20)",
    ("pending", "sse.comment"): "was sent before sse.start (R-SSE-20)",
    ("pending", "sse.keepalive"): "was sent before sse.start (R-SSE-20)",
    ("pending", "sse.close"): "was sent before sse.start (R-SSE-20)",
    ("streaming", "sse.http.response.start"): (
        "cannot decline a stream that has started (first send wins, R-SSE-63)"
    ),
    ("streaming", "sse.http.response.body"): (
        "cannot decline a stream that has started (first send wins, R-SSE-63)"
    ),
    ("closed", "sse.send"): "was sent after sse.close (R-SSE-52)",
    ("closed", "sse.comment"): "was sent after sse.close (R-SSE-52)",
    ("closed", "sse.keepalive"): "was sent after sse.close (R-SSE-52)",
    ("declining", "sse.send"): "was sent after the stream was declined (R-SSE-63)",
    ("declined", "sse.send"): "was sent after the stream was declined (R-SSE-63)",
}


class SendMachine:
    """The send-side state of one scope: validates each event and advances.

    ``extensions`` is the scope's ``extensions`` dict; events of an extension
    that is not advertised there raise (R-EXT-4, R-EXT-12, R-WSDENY-2).

    >>> m = SendMachine("http")
    >>> m.send({"type": "http.response.start", "status": 200})
    True
    >>> m.state
    'started'
    """

    __slots__ = ("_table", "extensions", "scope_type", "state", "trailers_expected")

    def __init__(self, scope_type: str, extensions: Mapping[str, Any] | None = None) -> None:
        try:
            initial, table = _TABLES[scope_type]
        except KeyError:
            raise ValueError(f"unknown scope type {scope_type!r}") from None
        self.scope_type = scope_type
        self.extensions: Mapping[str, Any] = extensions or {}
        self.state: str = initial
        self.trailers_expected = False
        self._table = table

    def send(self, event: Mapping[str, Any]) -> bool:
        """Validate ``event`` and advance.

        Returns ``True`` when the server must act on the event and ``False``
        when the specification says to drop it silently. Raises
        :class:`~pagi.spec.EventError` for a malformed event and
        :class:`~pagi.spec.EventOrderError` for one that is illegal now.
        """
        if type(event) is dict and _plainly_valid(event):
            event_type: str = event["type"]
            step = self._table.get((self.state, event_type))
            if step is not None and step != IGNORE:
                self.state = step if isinstance(step, str) else step(self, event)
                return True
        # Everything else, and every event that is out of order: the full checks and messages.
        event_type = validate_send_event(self.scope_type, event)
        if event_type == "http.fullflush" and EXT_FULLFLUSH not in self.extensions:
            raise EventError(
                event_type, "type", "needs the 'fullflush' extension, which is not advertised"
            )
        if event_type in _WS_DENIAL and EXT_WEBSOCKET_HTTP_RESPONSE not in self.extensions:
            raise EventError(
                event_type,
                "type",
                "needs the 'websocket.http.response' extension, which is not advertised",
            )
        step = self._table.get((self.state, event_type))
        if step is None:
            hint = _HINTS.get((self.state, event_type))
            if hint is None:
                hint = f"is not allowed in state {self.state!r} of a {self.scope_type} scope"
            raise EventOrderError(event_type, self.state, hint)
        if step == IGNORE:
            return False
        self.state = step if isinstance(step, str) else step(self, event)
        return True

    @property
    def finished(self) -> bool:
        """True once no further event can change what the peer receives."""
        return self.state in ("done", "closed", "declined")
