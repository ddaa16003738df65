"""TLS: the server's SSL context and the ``tls`` scope extension (docs/spec/tls.md).

Python's ``ssl`` reports the protocol as a name ("TLSv1.3") and the cipher
as an OpenSSL name; the extension wants the wire numbers (R-TLS-11), so the
two tables below translate. A cipher missing from the table is reported as
``None``, which the extension allows ("unknown").
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

import anyio.abc
from anyio.streams.tls import TLSAttribute

from pagi.server.config import ConfigError, ServerConfig

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
    """One server context for all connections, with ALPN offering HTTP/1.1.

    A file that is missing, unreadable or not what it should be raises
    :class:`ConfigError` naming the option, the file and the problem.
    """
    assert config.ssl_certfile is not None
    for option, path in (
        ("--ssl-certfile", config.ssl_certfile),
        ("--ssl-keyfile", config.ssl_keyfile),
        ("--ssl-ca-certs", config.ssl_ca_certs),
    ):
        if path is None:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"{option} {path}: no such file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{option} {path}: not readable by this user")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.ssl_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    try:
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, password=config.ssl_keyfile_password
        )
    except ssl.SSLError as exc:
        raise ConfigError(
            f"--ssl-certfile {config.ssl_certfile} with --ssl-keyfile {config.ssl_keyfile}:"
            f" {_ssl_problem(exc)}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--ssl-keyfile {config.ssl_keyfile}: {exc}") from None
    reqs = config.ssl_cert_reqs or ("optional" if config.ssl_ca_certs else "none")
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except ssl.SSLError as exc:
            problem = _ssl_problem(exc)
            raise ConfigError(f"--ssl-ca-certs {config.ssl_ca_certs}: {problem}") from None
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[reqs]
    if config.ssl_ciphers:
        try:
            context.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"--ssl-ciphers {config.ssl_ciphers!r}: no cipher OpenSSL knows matches"
            ) from None
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    with open(config.ssl_certfile, encoding="ascii", errors="replace") as f:
        match = _PEM_BLOCK.search(f.read())
    _server_pem[id(context)] = match.group(0).strip() + "\n" if match else None
    context.post_handshake_auth = False
    return context


def _ssl_problem(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or ""
    known = {
        "PEM_LIB": "not a PEM certificate/key, or a wrong password",
        "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
        "NO_START_LINE": "no PEM block found",
        "BAD_DECRYPT": "wrong password for the key",
        "BAD_PASSWORD_READ": "the key is encrypted: give --ssl-keyfile-password",
    }
    text = known.get(reason)
    return f"{text} ({exc.reason})" if text else str(exc)


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
