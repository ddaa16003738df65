"""HTTPS and the ``tls`` scope extension (spec-digest 8.3, R-TLS-*)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import echo_scope

from pagi.server import Server
from pagi.server.config import ConfigError

pytestmark = pytest.mark.anyio


def _self_signed(directory: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A self-signed EC certificate and key, made with the cryptography package or openssl."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    try:
        _with_cryptography(cert, key, cn)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs the cryptography package or the openssl command")
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                f"/CN={cn}",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


def _with_cryptography(cert_path: Path, key_path: Path, cn: str) -> None:
    import datetime
    import ipaddress

    from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found,unused-ignore]
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    server_cert, server_key = _self_signed(directory, "server", "localhost")
    client_cert, client_key = _self_signed(directory, "client", "pagi test client")
    return {
        "cert": server_cert,
        "key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


def _client_context(certs: dict[str, Path], **kwargs: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs["cert"]))
    for name, value in kwargs.items():
        setattr(context, name, value)
    return context


async def _get_scope(running: Any, context: ssl.SSLContext) -> dict[str, Any]:
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.get(f"https://127.0.0.1:{running.port}/tls?x=1")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_https_scope_and_tls_extension_R_TLS_1_10(serve: Any, certs: dict[str, Path]) -> None:
    async with serve(
        echo_scope, ssl_certfile=str(certs["cert"]), ssl_keyfile=str(certs["key"])
    ) as running:
        scope = await _get_scope(running, _client_context(certs))
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert set(tls) == {
        "server_cert",
        "client_cert_chain",
        "client_cert_name",
        "client_cert_error",
        "tls_version",
        "cipher_suite",
    }
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["cipher_suite"] is None or (
        isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] <= 0xFFFF
    )
    assert tls["server_cert"].strip() == certs["cert"].read_text().strip()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


async def test_tls13_cipher_is_a_wire_number_R_TLS_11(serve: Any, certs: dict[str, Path]) -> None:
    context = _client_context(certs, minimum_version=ssl.TLSVersion.TLSv1_3)
    async with serve(
        echo_scope, ssl_certfile=str(certs["cert"]), ssl_keyfile=str(certs["key"])
    ) as running:
        tls = (await _get_scope(running, context))["extensions"]["tls"]
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)


async def test_tls12_is_reported_as_0x0303(serve: Any, certs: dict[str, Path]) -> None:
    context = _client_context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    async with serve(
        echo_scope, ssl_certfile=str(certs["cert"]), ssl_keyfile=str(certs["key"])
    ) as running:
        tls = (await _get_scope(running, context))["extensions"]["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] in (0xC02B, 0xC02C, 0xCCA9)  # ECDHE-ECDSA suites


async def test_client_certificate_is_reported_R_TLS_10(serve: Any, certs: dict[str, Path]) -> None:
    context = _client_context(certs)
    context.load_cert_chain(str(certs["client_cert"]), str(certs["client_key"]))
    async with serve(
        echo_scope,
        ssl_certfile=str(certs["cert"]),
        ssl_keyfile=str(certs["key"]),
        ssl_ca_certs=str(certs["client_cert"]),
    ) as running:
        tls = (await _get_scope(running, context))["extensions"]["tls"]
    assert tls["client_cert_name"] == "CN=pagi test client"
    assert len(tls["client_cert_chain"]) >= 1
    assert tls["client_cert_chain"][0].strip() == certs["client_cert"].read_text().strip()
    assert tls["client_cert_error"] is None


async def test_cleartext_has_no_tls_key_R_TLS_1(serve: Any) -> None:
    async with serve(echo_scope) as running, httpx.AsyncClient() as client:
        scope = (await client.get(running.url + "/")).json()
    assert scope["scheme"] == "http"
    assert "tls" not in scope.get("extensions", {})


async def test_failed_handshake_does_not_hurt_the_server(
    serve: Any, certs: dict[str, Path]
) -> None:
    async with serve(
        echo_scope, ssl_certfile=str(certs["cert"]), ssl_keyfile=str(certs["key"])
    ) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # cleartext to a TLS port
        with anyio.fail_after(5):
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
        await stream.aclose()
        scope = await _get_scope(running, _client_context(certs))
    assert scope["scheme"] == "https"


async def test_missing_certificate_file_fails_before_serving(tmp_path: Path) -> None:
    server = Server(
        echo_scope,
        port=0,
        ssl_certfile=str(tmp_path / "nope.pem"),
        ssl_keyfile=str(tmp_path / "nope.key"),
        access_log=None,
        quiet=True,
        lifespan="off",
    )
    with pytest.raises(ConfigError, match=r"--ssl-certfile .*nope\.pem: no such file"):
        await server.serve()
