"""UTF-8 through every input of a real pagi-server, and a clear 400 for bytes that are not UTF-8."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import quote

import httpx
from example_harness import serve
from websockets.sync.client import connect

TEXT = "héllo wörld ✓ 日本語 🙂 Ωmega"


def test_text_comes_back_unchanged_from_every_http_input(tmp_path: Path) -> None:
    with serve("utf8_roundtrip/app.py", tmp_path) as server:
        url = f"{server.url}/echo/{quote(TEXT)}"
        headers = {"x-text": TEXT.encode("utf-8")}  # raw UTF-8 bytes in a header value
        form = httpx.post(url, params={"q": TEXT}, data={"f": TEXT}, headers=headers)
        assert form.headers["content-type"] == "application/json; charset=utf-8"
        assert form.json() == {
            "method": "POST",
            "path": TEXT,
            "query": {"q": [TEXT]},
            "header": TEXT,
            "form": {"f": [TEXT]},
        }
        as_json = httpx.put(url, json={"j": TEXT, TEXT: [TEXT]}).json()
        assert as_json["json"] == {"j": TEXT, TEXT: [TEXT]}
        plain = httpx.post(
            url, content=TEXT.encode("utf-8"), headers={"content-type": "text/plain"}
        )
        assert plain.json()["text"] == TEXT
        # Unescaped UTF-8 bytes in the request target are not HTTP (RFC 9112 3.2: the
        # target is ASCII); the server refuses them before the app is called.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall("GET /echo/ключ HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")


def test_websocket_and_sse_round_trips(tmp_path: Path) -> None:
    with serve("utf8_roundtrip/app.py", tmp_path) as server:
        with connect(server.ws_url + "/ws", proxy=None) as ws:
            ws.send(TEXT)
            assert json.loads(ws.recv(timeout=5)) == {
                "text": TEXT,
                "code_points": len(TEXT),
                "utf8_bytes": len(TEXT.encode()),
            }
            ws.send(TEXT.encode("utf-8"))  # a binary frame holding UTF-8
            assert json.loads(ws.recv(timeout=5))["text"] == TEXT
            ws.send(b"\xff\xfe")  # a binary frame that is not: answered, socket stays open
            assert json.loads(ws.recv(timeout=5)) == {
                "error": "the binary message is not valid UTF-8 (byte 0)"
            }
            ws.send("still here ✓")
            assert json.loads(ws.recv(timeout=5))["text"] == "still here ✓"

        two_lines = TEXT + "\nzweite Zeile ✓"
        response = httpx.get(
            server.url + "/sse",
            params={"text": two_lines},
            headers={"accept": "text/event-stream"},
        )
        lines = response.content.decode("utf-8").split("\n")
        data = [line[6:] for line in lines if line.startswith("data: ")]
        assert "\n".join(data[:2]) == two_lines  # one event, two data lines
        assert json.loads(data[2]) == {
            "code_points": len(two_lines),
            "utf8_bytes": len(two_lines.encode()),
        }


def test_bytes_that_are_not_utf8_get_a_400_naming_the_input(tmp_path: Path) -> None:
    with serve("utf8_roundtrip/app.py", tmp_path) as server:
        echo = server.url + "/echo/x"
        cases = [
            (httpx.get(server.url + "/echo/%FF%FE"), "the path is not valid UTF-8"),
            (httpx.get(echo + "?q=%C3"), "the query string has percent-escapes that are not UTF-8"),
            (httpx.get(echo, headers={"x-text": b"\xe9t\xe9"}), "the x-text header is not valid"),
            (
                httpx.post(
                    echo,
                    content=b"f=\xff",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                "the form body is not valid UTF-8",
            ),
            (
                httpx.post(echo, content=b'{"a": 1', headers={"content-type": "application/json"}),
                "the JSON body is not JSON",
            ),
            (httpx.post(echo, content=b"\xc3\x28"), "the body is not valid UTF-8 (byte 0)"),
        ]
        for response, message in cases:
            assert response.status_code == 400, message
            assert response.json()["error"].startswith(message)
        declined = httpx.get(server.url + "/sse?text=%FF", headers={"accept": "text/event-stream"})
        assert declined.status_code == 400
        assert "percent-escapes that are not UTF-8" in declined.text
