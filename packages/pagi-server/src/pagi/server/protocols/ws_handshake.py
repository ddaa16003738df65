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
  object and the reply value.
* :func:`accept_fields` builds the response fields of an accepted
  handshake: subprotocol, extension reply, the application's own headers
  minus those the server owns. The carrier adds what its protocol needs
  (``101`` + ``Sec-WebSocket-Accept`` on HTTP/1.1, ``:status 200`` on
  HTTP/2).

The size limits travel as a ``wsproto`` extension (:class:`SizeLimits`)
placed after permessage-deflate, so they count decompressed bytes, and
:class:`BoundedDeflate` never inflates past the message limit, so a small
compressed bomb closes with 1009 instead of filling memory.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING, Any, Literal

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from pagi.server.streams.dispatch import split_tokens

if TYPE_CHECKING:
    from pagi.server.config import ServerConfig

__all__ = [
    "BoundedDeflate",
    "HandshakeError",
    "SizeLimits",
    "accept_fields",
    "check_handshake",
    "negotiate_deflate",
]

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY)
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


class SizeLimits(Extension):
    """Frame and message size caps, checked as bytes arrive (always active).

    Placed after permessage-deflate, so it counts decompressed bytes.
    """

    name = "x-pagi-limits"  # never negotiated

    def __init__(self, max_frame: int, max_message: int) -> None:
        self._max_frame = max_frame
        self._max_message = max_message
        self._data_frame = False
        self._size = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if payload_length > self._max_frame:
            return CloseReason.MESSAGE_TOO_BIG
        self._data_frame = not opcode.iscontrol()
        if opcode in _DATA_OPCODES:
            self._size = 0
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if self._data_frame:
            self._size += len(data)
            if self._size > self._max_message:
                return CloseReason.MESSAGE_TOO_BIG
        return data


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate with bounded inflation and a memory-conscious compressor.

    Differences from ``wsproto``'s class: decompression never produces more
    than the message limit (a compression bomb closes with 1009 instead of
    filling memory), a control frame between the fragments of a compressed
    message does not reset the message's state, and the compressor uses a
    memory level sized to the window instead of zlib's default.
    """

    def __init__(self, *, max_message: int, mem_level: int, **options: Any) -> None:
        super().__init__(**options)
        self._max_message = max_message
        self._mem_level = mem_level
        self._inflated = 0
        self._control = False

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if opcode in _DATA_OPCODES:
            self._inflated = 0
        result: CloseReason | RsvBits = super().frame_inbound_header(
            proto, opcode, rsv, payload_length
        )
        return result

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        room = self._max_message - self._inflated
        try:
            out: bytes = self._decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self._inflated += len(out)
        return out

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if self._control or not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if self._control or not fin:
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        out = self._inflate(b"\x00\x00\xff\xff")
        if self.client_no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return out

    def frame_outbound(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        if self._compressor is None and opcode in _DATA_OPCODES:
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION,
                zlib.DEFLATED,
                -self.server_max_window_bits,
                self._mem_level,
            )
        result: tuple[RsvBits, bytes] = super().frame_outbound(proto, opcode, rsv, data, fin)
        return result


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


def negotiate_deflate(
    headers: list[tuple[bytes, bytes]], config: ServerConfig
) -> tuple[BoundedDeflate, str] | None:
    """Accept the first usable permessage-deflate offer: the extension and the reply."""
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
            ext = BoundedDeflate(
                max_message=config.max_ws_message_size,
                mem_level=max(1, min(9, server_bits - 7)),
                client_no_context_takeover=client_nct,
                server_no_context_takeover=server_nct,
                client_max_window_bits=max(9, client_bits),
                server_max_window_bits=server_bits,
            )
            ext.finalize("permessage-deflate")
            return ext, "; ".join(reply)
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
