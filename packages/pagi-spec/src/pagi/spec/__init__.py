"""PAGI, the asynchronous gateway interface: the specification as code.

This package has no dependencies. It gives applications, servers and
middleware the same vocabulary:

* :mod:`pagi.spec.types`: ``App``, ``Receive``, ``Send`` and the
  ``pagi.connection`` / ``pagi.transport`` protocols;
* :mod:`pagi.spec.scopes` and :mod:`pagi.spec.events`: a TypedDict for every
  scope and event;
* :mod:`pagi.spec.constants`: versions, disconnect reasons, extension names;
* :func:`validate_send_event` / :func:`validate_receive_event` and
  :class:`SendMachine`: the one implementation of the event rules, used by
  the server, the Lint middleware and the test client alike.

The prose specification is in ``docs/spec/`` of the source repository.
"""

from __future__ import annotations

from pagi.spec.constants import (
    CORE_VERSION,
    EXT_FULLFLUSH,
    EXT_TLS,
    EXT_WEBSOCKET_HTTP_RESPONSE,
    LIFESPAN_SPEC_VERSION,
    RUNNER_SPEC_VERSION,
    STANDARD_DISCONNECT_REASONS,
    WWW_SPEC_VERSION,
    DisconnectReason,
    ScopeType,
)
from pagi.spec.errors import EventError, EventOrderError
from pagi.spec.events import IncomingEvent, OutgoingEvent
from pagi.spec.scopes import (
    AnyScope,
    Headers,
    HTTPScope,
    LifespanScope,
    SSEScope,
    TLSInfo,
    WebSocketScope,
)
from pagi.spec.states import IGNORE, SendMachine
from pagi.spec.types import App, ConnectionState, Event, Receive, Scope, Send, Transport
from pagi.spec.validation import (
    ASGI_EVENT_TYPES,
    ASGI_RENAMED_KEYS,
    receive_event_types,
    send_event_types,
    validate_header_name,
    validate_header_value,
    validate_headers,
    validate_receive_event,
    validate_send_event,
)

__all__ = [
    "ASGI_EVENT_TYPES",
    "ASGI_RENAMED_KEYS",
    "CORE_VERSION",
    "EXT_FULLFLUSH",
    "EXT_TLS",
    "EXT_WEBSOCKET_HTTP_RESPONSE",
    "IGNORE",
    "LIFESPAN_SPEC_VERSION",
    "RUNNER_SPEC_VERSION",
    "STANDARD_DISCONNECT_REASONS",
    "WWW_SPEC_VERSION",
    "AnyScope",
    "App",
    "ConnectionState",
    "DisconnectReason",
    "Event",
    "EventError",
    "EventOrderError",
    "HTTPScope",
    "Headers",
    "IncomingEvent",
    "LifespanScope",
    "OutgoingEvent",
    "Receive",
    "SSEScope",
    "Scope",
    "ScopeType",
    "Send",
    "SendMachine",
    "TLSInfo",
    "Transport",
    "WebSocketScope",
    "receive_event_types",
    "send_event_types",
    "validate_header_name",
    "validate_header_value",
    "validate_headers",
    "validate_receive_event",
    "validate_send_event",
]

__version__ = "0.1.0"
