"""TLS: the server's SSL context and the ``tls`` scope extension (docs/spec/tls.md).

Python's ``ssl`` reports the protocol as a name ("TLSv1.3") and the cipher
as an OpenSSL name; the extension wants the wire numbers (R-TLS-11), so the
two tables below translate. A cipher missing from the table is reported as
``None``, which the extension allows ("unknown").
"""

from __future__ import annotations

import re
import ssl
from typing import Any

import anyio.abc
from anyio.streams.tls import TLSAttribute

from pagi.server.config import ServerConfig

__all__ = ["build_ssl_context", "tls_scope_info"]

_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CIPHERS = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E,
    "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "DHE-RSA-CHACHA20-POLY1305": 0xCCAA,
}
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)
_DN_KEYS = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "userId": "UID",
}

_server_pem: dict[int, str | None] = {}


def build_ssl_context(config: ServerConfig) -> ssl.SSLContext:
    """One server context for all connections, with ALPN offering HTTP/1.1."""
    assert config.ssl_certfile is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    if config.ssl_ca_certs:
        context.load_verify_locations(config.ssl_ca_certs)
        context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    with open(config.ssl_certfile, encoding="ascii", errors="replace") as f:
        match = _PEM_BLOCK.search(f.read())
    _server_pem[id(context)] = match.group(0).strip() + "\n" if match else None
    context.post_handshake_auth = False
    return context


def _rfc4514(subject: Any) -> str | None:
    if not subject:
        return None
    parts = []
    for rdn in reversed(subject):
        parts.append(
            "+".join(f"{_DN_KEYS.get(key, key)}={_escape_dn(value)}" for key, value in rdn)
        )
    return ",".join(parts)


def _escape_dn(value: str) -> str:
    escaped = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def tls_scope_info(stream: anyio.abc.ByteStream) -> dict[str, Any]:
    """The ``extensions["tls"]`` dict for a TLS connection (R-TLS-10)."""
    ssl_object: ssl.SSLObject = stream.extra(TLSAttribute.ssl_object)
    cipher = ssl_object.cipher()
    chain: list[str] = []
    name: str | None = None
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        verified = getattr(ssl_object, "get_verified_chain", None)
        if verified is not None:
            try:
                chain = [ssl.DER_cert_to_PEM_cert(bytes(c)) for c in verified()]
            except Exception:
                chain = []
        if not chain:
            chain = [ssl.DER_cert_to_PEM_cert(der)]
        decoded = ssl_object.getpeercert()
        name = _rfc4514(decoded.get("subject")) if decoded else None
    version = ssl_object.version()
    return {
        "server_cert": _server_pem.get(id(ssl_object.context)),
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(version) if version else None,
        "cipher_suite": _CIPHERS.get(cipher[0]) if cipher else None,
    }
