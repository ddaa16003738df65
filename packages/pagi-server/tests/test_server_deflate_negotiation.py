"""permessage-deflate negotiation (``protocols/ws_handshake.negotiate_deflate``), no sockets.

The spec digest has no requirement of its own for compression (it is an
RFC 6455 extension the server chooses to offer), so the cases cite RFC 7692:
section 5 (an offer with an unknown, duplicate or malformed parameter is
declined), 7.1.1 (context takeover), 7.1.2 (window bits: the reply may
lower ``server_max_window_bits``; ``client_max_window_bits`` is answered
only when the client offered it) and the server's own limit,
``ws_deflate_window_bits``, which bounds both windows for memory.
"""

from __future__ import annotations

from typing import Any

import pytest

from pagi.server.config import ServerConfig
from pagi.server.protocols.ws_handshake import negotiate_deflate


def negotiate(*offers: str, bits: int = 12, enabled: bool = True) -> tuple[Any, str] | None:
    """Negotiate over one ``Sec-WebSocket-Extensions`` line per argument."""
    config = ServerConfig(ws_deflate_window_bits=bits, ws_per_message_deflate=enabled)
    headers = [(b"sec-websocket-extensions", offer.encode("latin-1")) for offer in offers]
    headers.insert(0, (b"host", b"x"))
    return negotiate_deflate(headers, config)


def reply_of(*offers: str, bits: int = 12) -> str | None:
    result = negotiate(*offers, bits=bits)
    return None if result is None else result[1]


def test_no_offer_no_extension() -> None:
    assert negotiate() is None
    assert negotiate("x-webkit-deflate-frame") is None


def test_disabled_by_config_ignores_offers() -> None:
    assert negotiate("permessage-deflate", enabled=False) is None


def test_plain_offer_gets_our_window_and_no_client_bits_RFC7692_7_1_2() -> None:
    result = negotiate("permessage-deflate", bits=12)
    assert result is not None
    params, reply = result
    # Our limit is below 15, so the reply says so; client_max_window_bits was
    # not offered, so the reply must not carry it (RFC 7692 7.1.2.2).
    assert reply == "permessage-deflate; server_max_window_bits=12"
    assert params.server_window_bits == 12
    assert params.client_window_bits == 15
    assert not params.server_no_context_takeover and not params.client_no_context_takeover


def test_plain_offer_at_full_window_replies_bare() -> None:
    result = negotiate("permessage-deflate", bits=15)
    assert result is not None
    params, reply = result
    assert reply == "permessage-deflate"
    assert (params.server_window_bits, params.client_window_bits) == (15, 15)


def test_client_max_window_bits_without_value_is_answered_with_our_limit() -> None:
    result = negotiate("permessage-deflate; client_max_window_bits", bits=12)
    assert result is not None
    params, reply = result
    assert reply == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    assert params.client_window_bits == 12


@pytest.mark.parametrize(
    ("offered", "bits", "answered", "decompressor"),
    [
        (10, 12, 10, 10),  # the client's smaller window is kept
        (15, 12, 12, 12),  # clamped to the configured limit
        (14, 15, 14, 14),
        (8, 12, 8, 9),  # answered as offered; zlib inflates with 9 bits at least
    ],
)
def test_client_max_window_bits_value_is_clamped_to_config(
    offered: int, bits: int, answered: int, decompressor: int
) -> None:
    result = negotiate(f"permessage-deflate; client_max_window_bits={offered}", bits=bits)
    assert result is not None
    params, reply = result
    assert f"client_max_window_bits={answered}" in reply.split("; ")
    assert params.client_window_bits == decompressor


def test_quoted_window_bits_are_accepted_RFC7692_5() -> None:
    assert reply_of('permessage-deflate; client_max_window_bits="10"', bits=15) == (
        "permessage-deflate; client_max_window_bits=10"
    )


@pytest.mark.parametrize(
    ("requested", "bits", "answered"),
    [(10, 12, 10), (14, 12, 12), (15, 15, 15), (9, 15, 9)],
)
def test_server_max_window_bits_is_honoured_within_config(
    requested: int, bits: int, answered: int
) -> None:
    result = negotiate(f"permessage-deflate; server_max_window_bits={requested}", bits=bits)
    assert result is not None
    params, reply = result
    # Once the client asked, the reply always states the window it gets.
    assert reply == f"permessage-deflate; server_max_window_bits={answered}"
    assert params.server_window_bits == answered
    assert params.mem_level == max(1, min(9, answered - 7))  # memory follows the window


def test_server_window_of_8_bits_is_declined_and_the_next_offer_taken() -> None:
    """zlib cannot compress a raw stream with an 8-bit window: that offer is unusable."""
    assert negotiate("permessage-deflate; server_max_window_bits=8") is None
    reply = reply_of("permessage-deflate; server_max_window_bits=8, permessage-deflate", bits=15)
    assert reply == "permessage-deflate"


def test_no_context_takeover_flags_are_echoed_and_applied_RFC7692_7_1_1() -> None:
    result = negotiate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover", bits=15
    )
    assert result is not None
    params, reply = result
    assert reply == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert params.server_no_context_takeover and params.client_no_context_takeover
    only_server = negotiate("permessage-deflate; server_no_context_takeover", bits=15)
    assert only_server is not None
    assert only_server[0].server_no_context_takeover
    assert not only_server[0].client_no_context_takeover


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; foo",  # unknown parameter
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  # twice
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11",
        "permessage-deflate; server_no_context_takeover=1",  # a flag with a value
        "permessage-deflate; client_no_context_takeover=yes",
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; server_max_window_bits=16",  # out of 8..15
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; client_max_window_bits=0x0f",
    ],
)
def test_bad_parameters_decline_the_offer_RFC7692_5(offer: str) -> None:
    assert negotiate(offer) is None
    # ...and only that offer: a valid one after it is still taken.
    assert reply_of(f"{offer}, permessage-deflate", bits=15) == "permessage-deflate"


def test_first_usable_offer_wins_across_header_lines() -> None:
    reply = reply_of(
        "x-webkit-deflate-frame, permessage-deflate; bogus",
        "PerMessage-Deflate; client_no_context_takeover, permessage-deflate",
        bits=15,
    )
    assert reply == "permessage-deflate; client_no_context_takeover"


def test_parameter_names_are_case_insensitive_and_spaces_ignored() -> None:
    reply = reply_of("permessage-deflate ;  Client_Max_Window_Bits = 11 ", bits=15)
    assert reply == "permessage-deflate; client_max_window_bits=11"
