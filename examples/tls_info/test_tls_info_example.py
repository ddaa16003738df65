import datetime
import ssl
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from example_harness import serve


def _issue(
    name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_tls_details_and_the_client_certificate(tmp_path: Path) -> None:
    ca_cert, ca_key = _issue("Example CA", None, ca=True)
    server_cert, server_key = _issue("localhost", (ca_cert.subject, ca_key))
    client_cert, client_key = _issue("alice", (ca_cert.subject, ca_key))
    _write(tmp_path / "ca", ca_cert, ca_key)
    _write(tmp_path / "server", server_cert, server_key)
    _write(tmp_path / "client", client_cert, client_key)
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with serve(
        "tls_info/app.py",
        tmp_path,
        "--ssl-certfile",
        str(tmp_path / "server.pem"),
        "--ssl-keyfile",
        str(tmp_path / "server.key"),
        "--ssl-ca-certs",
        str(tmp_path / "ca.pem"),
        scheme="https",
    ) as server:
        url = server.url.replace("127.0.0.1", "localhost") + "/"
        anonymous = httpx.get(url, verify=trust).json()
        assert anonymous["scheme"] == "https"
        assert anonymous["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
        assert anonymous["tls"]["server_cert_sent"] is True
        assert anonymous["tls"]["client_cert_name"] is None
        assert anonymous["tls"]["client_cert_chain_length"] == 0

        mutual = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        mutual.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        signed = httpx.get(url, verify=mutual).json()["tls"]
        assert signed["client_cert_name"] == "CN=alice"
        assert signed["client_cert_chain_length"] >= 1
        assert signed["client_cert_error"] is None
