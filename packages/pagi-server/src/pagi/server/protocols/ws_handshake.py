"""The WebSocket opening handshake, without I/O: validation and negotiation.

Theory of operation
-------------------
A WebSocket starts as a request: an HTTP/1.1 ``GET`` with ``Upgrade``
(RFC 6455 4.2.1) or an HTTP/2 Extended CONNECT with ``:protocol websocket``
(RFC 8441 4). Everything decided before the first frame lives here, as
plain functions of the request's scope and the server's configuration, so
both carriers share it:

* :func:`check_handshake` validates the request (version 13 on both; on
  HTTP/1.1 also the ``Upgrade``/``Connection`` tokens and a 16-byte base64
  ``Sec-WebSocket-Key``) and raises :class:`HandshakeError` with the status
  the client gets (400, or 426 with ``Sec-WebSocket-Version: 13``); the
  application is never called for a bad handshake.
* :func:`negotiate_deflate` picks the first usable permessage-deflate offer
  (RFC 7692) within the server's window-bit limit and returns the extension
  parameters and the reply value.
* :func:`accept_fields` builds the response fields of an accepted
  handshake: subprotocol, extension reply, the application's own headers
  minus those the server owns. The carrier adds what its protocol needs
  (``101`` + ``Sec-WebSocket-Accept`` on HTTP/1.1, ``:status 200`` on
  HTTP/2).

* :func:`accept_token` computes ``Sec-WebSocket-Accept`` from the key.

The frames themselves, size limits and inflation bounds included, are
``ws_frames``'s business; this module only hands it the negotiated
:class:`~pagi.server.protocols.ws_frames.DeflateParams`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Any, Literal

from pagi.server.protocols.ws_frames import DeflateParams
from pagi.server.streams.dispatch import split_tokens

if TYPE_CHECKING:
    from pagi.server.config import ServerConfig

__all__ = [
    "HandshakeError",
    "accept_fields",
    "accept_token",
    "check_handshake",
    "negotiate_deflate",
]

#: RFC 6455 1.3: the GUID appended to the client's key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Response fields the server writes itself; the application's copies are dropped.
SERVER_OWNED = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
    }
)


class HandshakeError(Exception):
    """The upgrade request is not a valid RFC 6455 handshake."""

    def __init__(self, status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def _tokens(values: list[bytes]) -> set[bytes]:
    return {token for value in values for token in split_tokens(value)}


def check_handshake(
    scope: dict[str, Any], carrier: Literal["http/1.1", "h2"] = "http/1.1"
) -> bytes:
    """Validate a WebSocket request's head; return its ``Sec-WebSocket-Key``.

    Over HTTP/2 (RFC 8441 5) there is no key, no ``Upgrade`` and no
    ``Connection`` field: only the version is checked and ``b""`` returned.
    """
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    if carrier == "http/1.1":
        if scope.get("http_version") != "1.1":
            raise HandshakeError(400, "WebSocket upgrades need HTTP/1.1")
        if b"websocket" not in _tokens(_values(headers, b"upgrade")):
            raise HandshakeError(400, "Upgrade header does not name websocket")
        if b"upgrade" not in _tokens(_values(headers, b"connection")):
            raise HandshakeError(400, "Connection header does not name upgrade")
    versions = _values(headers, b"sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != b"13":
        raise HandshakeError(
            426,
            "Unsupported WebSocket version; this server speaks version 13",
            ((b"sec-websocket-version", b"13"),),
        )
    if carrier == "h2":
        return b""
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "Exactly one Sec-WebSocket-Key header is required")
    key = keys[0].strip()
    try:
        nonce = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not a base64-encoded 16-byte value")
    return key


def _parse_offer(offer: str) -> dict[str, str | None] | None:
    """The parameters of one permessage-deflate offer, or ``None`` if it is invalid."""
    parts = [p.strip() for p in offer.split(";")]
    if parts[0].lower() != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if name in params:
            return None  # RFC 7692 5: duplicate parameters make the offer invalid
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if eq:
                return None
            params[name] = None
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            value = value.strip().strip('"')
            if not eq:
                if name == "server_max_window_bits":
                    return None
                params[name] = None
                continue
            if not value.isdigit() or not 8 <= int(value) <= 15:
                return None
            params[name] = value
        else:
            return None
    return params


def accept_token(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + _ACCEPT_GUID).digest())


def negotiate_deflate(
    headers: list[tuple[bytes, bytes]], config: ServerConfig
) -> tuple[DeflateParams, str] | None:
    """Accept the first usable permessage-deflate offer: its parameters and the reply."""
    if not config.ws_per_message_deflate:
        return None
    ours = config.ws_deflate_window_bits
    for value in _values(headers, b"sec-websocket-extensions"):
        for offer in value.decode("latin-1").split(","):
            params = _parse_offer(offer)
            if params is None:
                continue
            requested = params.get("server_max_window_bits")
            server_bits = min(int(requested) if requested else 15, ours)
            if server_bits < 9:
                continue  # zlib cannot compress with an 8-bit raw window
            reply = ["permessage-deflate"]
            server_nct = "server_no_context_takeover" in params
            client_nct = "client_no_context_takeover" in params
            if server_nct:
                reply.append("server_no_context_takeover")
            if client_nct:
                reply.append("client_no_context_takeover")
            if server_bits < 15 or requested is not None:
                reply.append(f"server_max_window_bits={server_bits}")
            client_bits = 15
            if "client_max_window_bits" in params:
                offered = params["client_max_window_bits"]
                client_bits = min(int(offered) if offered else 15, ours)
                reply.append(f"client_max_window_bits={client_bits}")
            negotiated = DeflateParams(
                server_window_bits=server_bits,
                # zlib inflates a raw stream with a 9-bit window at least.
                client_window_bits=max(9, client_bits),
                server_no_context_takeover=server_nct,
                client_no_context_takeover=client_nct,
                # A memory level to match the window: ~32 KiB at 12 bits, not 256 KiB.
                mem_level=max(1, min(9, server_bits - 7)),
            )
            return negotiated, "; ".join(reply)
    return None


def accept_fields(
    subprotocol: str | None,
    extension_reply: str | None,
    headers: list[tuple[bytes, bytes]],
) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
    """The fields of an accepted handshake, and whether the app set ``date``/``server``.

    The application's headers keep their order, lower-cased, minus the ones
    the server owns (and its own ``sec-websocket-protocol`` when a
    subprotocol was chosen in the event).
    """
    fields: list[tuple[bytes, bytes]] = []
    if subprotocol is not None:
        fields.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    if extension_reply is not None:
        fields.append((b"sec-websocket-extensions", extension_reply.encode("ascii")))
    has_date = has_server = False
    for name, value in headers:
        name = bytes(name).lower()
        if name in SERVER_OWNED or (name == b"sec-websocket-protocol" and subprotocol):
            continue
        has_date = has_date or name == b"date"
        has_server = has_server or name == b"server"
        fields.append((name, bytes(value)))
    return fields, has_date, has_server
