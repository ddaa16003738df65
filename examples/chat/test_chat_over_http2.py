"""The chat example over TLS with HTTP/2, in headless Chromium: WebSockets on HTTP/2 streams.

The server offers ``h2`` by ALPN and advertises Extended CONNECT (RFC 8441),
so Chromium loads the page over HTTP/2 and opens the chat WebSocket as a
stream of that same connection instead of a second TCP connection with an
HTTP/1.1 upgrade. The server's access log proves which protocol each
WebSocket session used (``WEBSOCKET /ws ... HTTP/2``); a message sent from
one page must reach the other through those sessions.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from example_harness import Page, chromium, serve, wait

STATE = "document.body?.dataset.state"
MESSAGES = "[...document.querySelectorAll('#messages li')].map(li => li.textContent)"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the browser runs with --ignore-certificate-errors)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_websockets_ride_http2_streams_in_chromium(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--access-log", "-")
    with (
        serve("chat/app.py", tmp_path, *tls, scheme="https") as server,
        chromium(tmp_path) as devtools,
        Page.open(devtools, server.url + "/?name=alice") as alice,
    ):
        wait("alice's WebSocket to open", lambda: alice.eval(STATE) == "open", 15)
        assert alice.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
        with Page.open(devtools, server.url + "/?name=bob") as bob:
            wait("bob's WebSocket to open", lambda: bob.eval(STATE) == "open", 15)
            bob.eval(
                "document.getElementById('text').value = 'over h2';"
                "document.getElementById('say').requestSubmit();"
            )
            wait("alice to see it", lambda: "bob: over h2" in (alice.eval(MESSAGES) or []))
        wait("bob's session to be logged", lambda: "WEBSOCKET /ws" in server.log())
    sessions = re.findall(r'"WEBSOCKET /ws\S* (HTTP/[0-9.]+)"', server.log())
    assert sessions, server.log()
    assert set(sessions) == {"HTTP/2"}, sessions  # every WebSocket rode an HTTP/2 stream
