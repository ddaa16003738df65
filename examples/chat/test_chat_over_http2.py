"""The chat example over TLS with HTTP/2, in headless Chromium: WebSockets on HTTP/2 streams.

The server offers ``h2`` by ALPN and advertises Extended CONNECT (RFC 8441),
so Chromium loads the page over HTTP/2 and opens the chat WebSocket as a
stream of that same connection instead of a second TCP connection with an
HTTP/1.1 upgrade. The server's access log proves which protocol each
WebSocket session used (``WEBSOCKET /ws ... HTTP/2``); a message sent from
one page must reach the other through those sessions.
"""

from __future__ import annotations

import re
from pathlib import Path

import trustme
from example_harness import Page, chromium, serve, wait

STATE = "document.body?.dataset.state"
MESSAGES = "[...document.querySelectorAll('#messages li')].map(li => li.textContent)"


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the browser runs with --ignore-certificate-errors)."""
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def test_websockets_ride_http2_streams_in_chromium(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
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
