"""Versions, scope types, disconnect reasons and extension names."""

from __future__ import annotations

import re

from pagi.spec import constants
from pagi.spec.constants import (
    CORE_VERSION,
    EXT_FULLFLUSH,
    EXT_TLS,
    EXT_WEBSOCKET_HTTP_RESPONSE,
    LIFESPAN_SPEC_VERSION,
    MAX_INT64,
    MIN_INT64,
    RUNNER_SPEC_VERSION,
    SCOPE_TYPES,
    STANDARD_DISCONNECT_REASONS,
    WWW_SPEC_VERSION,
    DisconnectReason,
    ScopeType,
)


def test_versions_are_strings() -> None:
    """R-CORE-1: ``"0.3"``, never the float 0.3."""
    assert CORE_VERSION == "0.3"
    assert WWW_SPEC_VERSION == "0.3"
    assert LIFESPAN_SPEC_VERSION == "0.3"
    assert RUNNER_SPEC_VERSION == "0.1"
    for version in (CORE_VERSION, WWW_SPEC_VERSION, LIFESPAN_SPEC_VERSION, RUNNER_SPEC_VERSION):
        assert type(version) is str
        assert re.fullmatch(r"\d+\.\d+", version)


def test_scope_types() -> None:
    """R-CORE-20."""
    assert SCOPE_TYPES == {"http", "websocket", "sse", "lifespan"}
    assert {ScopeType.HTTP, ScopeType.WEBSOCKET, ScopeType.SSE, ScopeType.LIFESPAN} == SCOPE_TYPES


def test_standard_disconnect_reasons() -> None:
    """R-CONN-31: the twelve standard reason tokens, shared by all scope types."""
    assert STANDARD_DISCONNECT_REASONS == {
        "client_closed",
        "client_timeout",
        "idle_timeout",
        "keepalive_timeout",
        "write_timeout",
        "write_error",
        "read_error",
        "protocol_error",
        "server_shutdown",
        "server_error",
        "body_too_large",
        "queue_overflow",
    }
    assert DisconnectReason.CLIENT_CLOSED == "client_closed"
    assert DisconnectReason.QUEUE_OVERFLOW == "queue_overflow"


def test_standard_reasons_never_use_the_private_prefix() -> None:
    """R-CONN-50: ``x-`` is for server-specific reasons only."""
    for reason in STANDARD_DISCONNECT_REASONS:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", reason)
        assert not reason.startswith("x-")


def test_extension_names() -> None:
    """R-EXT-2: lower-case identifiers; dots allowed."""
    assert EXT_FULLFLUSH == "fullflush"
    assert EXT_TLS == "tls"
    assert EXT_WEBSOCKET_HTTP_RESPONSE == "websocket.http.response"
    for name in (EXT_FULLFLUSH, EXT_TLS, EXT_WEBSOCKET_HTTP_RESPONSE):
        assert name == name.lower()


def test_int64_bounds() -> None:
    """R-DATA-4."""
    assert MIN_INT64 == -9223372036854775808
    assert MAX_INT64 == 9223372036854775807


def test_constants_all_is_complete() -> None:
    for name in constants.__all__:
        assert hasattr(constants, name), name
