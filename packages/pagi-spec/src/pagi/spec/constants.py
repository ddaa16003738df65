"""Names and numbers the PAGI specification fixes.

Everything here is plain data: version strings, scope and event type names,
the standard disconnect reasons and the names of the defined extensions.
Servers, middleware and applications import these instead of spelling the
strings again, so a typo becomes an ``AttributeError`` rather than a silent
mismatch.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CORE_VERSION",
    "EXT_FULLFLUSH",
    "EXT_TLS",
    "EXT_WEBSOCKET_HTTP_RESPONSE",
    "LIFESPAN_SPEC_VERSION",
    "MAX_INT64",
    "MIN_INT64",
    "RUNNER_SPEC_VERSION",
    "SCOPE_TYPES",
    "STANDARD_DISCONNECT_REASONS",
    "WWW_SPEC_VERSION",
    "DisconnectReason",
    "ScopeType",
]

#: Core specification version, carried as ``scope["pagi"]["version"]`` (R-CORE-1).
CORE_VERSION: Final = "0.3"
#: Version of the HTTP/WebSocket/SSE sub-specification (``pagi.spec_version``).
WWW_SPEC_VERSION: Final = "0.3"
#: Version of the lifespan sub-specification.
LIFESPAN_SPEC_VERSION: Final = "0.3"
#: Version of the swappable-server runner contract (docs/spec/server.md).
RUNNER_SPEC_VERSION: Final = "0.1"

#: Bounds of the integers an event may carry (R-DATA-4: signed 64-bit).
MIN_INT64: Final = -(2**63)
MAX_INT64: Final = 2**63 - 1


class ScopeType:
    """The scope types the specification defines (R-CORE-20)."""

    HTTP: Final = "http"
    WEBSOCKET: Final = "websocket"
    SSE: Final = "sse"
    LIFESPAN: Final = "lifespan"


SCOPE_TYPES: Final = frozenset(
    {ScopeType.HTTP, ScopeType.WEBSOCKET, ScopeType.SSE, ScopeType.LIFESPAN}
)


class DisconnectReason:
    """Standard reason strings for an abnormal end (Www, R-CONN-31).

    They are shared by ``pagi.connection.disconnect_reason()``, the
    ``reason`` of ``websocket.disconnect`` (for aborted sessions) and the
    ``reason`` of ``sse.disconnect``. A server may add its own reasons, which
    must start with ``x-`` (R-CONN-50).
    """

    CLIENT_CLOSED: Final = "client_closed"
    CLIENT_TIMEOUT: Final = "client_timeout"
    IDLE_TIMEOUT: Final = "idle_timeout"
    KEEPALIVE_TIMEOUT: Final = "keepalive_timeout"
    WRITE_TIMEOUT: Final = "write_timeout"
    WRITE_ERROR: Final = "write_error"
    READ_ERROR: Final = "read_error"
    PROTOCOL_ERROR: Final = "protocol_error"
    SERVER_SHUTDOWN: Final = "server_shutdown"
    SERVER_ERROR: Final = "server_error"
    BODY_TOO_LARGE: Final = "body_too_large"
    QUEUE_OVERFLOW: Final = "queue_overflow"


STANDARD_DISCONNECT_REASONS: Final = frozenset(
    value
    for name, value in vars(DisconnectReason).items()
    if name.isupper() and isinstance(value, str)
)

#: ``scope["extensions"]["fullflush"]``: the app may send ``http.fullflush``.
EXT_FULLFLUSH: Final = "fullflush"
#: ``scope["extensions"]["tls"]``: present only on TLS connections.
EXT_TLS: Final = "tls"
#: ``scope["extensions"]["websocket.http.response"]``: WebSocket denial responses.
EXT_WEBSOCKET_HTTP_RESPONSE: Final = "websocket.http.response"
