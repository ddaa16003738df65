"""The chat example end to end: the real ``pagi-server`` command and two headless Chromium pages.

Chromium is driven over the DevTools protocol by ``example_harness`` (no
download); without Chromium the browser test skips, naming the fix, and CI
(``PAGI_REQUIRE_BROWSER=1``) fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve, wait
from websockets.sync.client import connect

# Evaluated while the page may still be loading, hence the optional chaining.
STATE = "document.body?.dataset.state"
ONLINE = "document.getElementById('online')?.textContent"
MESSAGES = "[...document.querySelectorAll('#messages li')].map(e => e.textContent)"


@contextmanager
def chat_server(tmp_path: Path) -> Iterator[str]:
    with serve("chat/app.py", tmp_path) as server:
        yield server.url


def messages(page: Page) -> list[str]:
    return list(page.eval(MESSAGES) or [])


def test_a_message_sent_in_one_page_appears_in_the_other(tmp_path: Path) -> None:
    with (
        chat_server(tmp_path) as url,
        chromium(tmp_path) as devtools,
        Page.open(devtools, url + "/?name=alice") as alice,
    ):
        wait("alice's WebSocket to open", lambda: alice.eval(STATE) == "open")
        with Page.open(devtools, url + "/?name=bob") as bob:
            wait("bob's WebSocket to open", lambda: bob.eval(STATE) == "open")
            # The SSE presence feed lists both members on both pages.
            for page in (alice, bob):
                wait("presence of both", lambda p=page: p.eval(ONLINE) == "alice, bob")
            wait("alice to see bob join", lambda: "* bob joined" in messages(alice))
            alice.eval(
                "document.getElementById('text').value = 'hello from alice';"
                "document.getElementById('say').requestSubmit();"
            )
            wait("bob to see it", lambda: "alice: hello from alice" in messages(bob))
            assert "alice: hello from alice" in messages(alice)
        # Bob's tab closes: the room and the presence feed notice.
        wait("alice to see bob leave", lambda: "* bob left" in messages(alice))
        wait("presence without bob", lambda: alice.eval(ONLINE) == "alice")


def test_the_page_and_the_endpoints_without_a_browser(tmp_path: Path) -> None:
    with chat_server(tmp_path) as url:
        page = httpx.get(url + "/")
        assert page.headers["content-type"].startswith("text/html")
        assert b"new WebSocket" in page.content and b"EventSource" in page.content
        ws_url = url.replace("http", "ws") + "/ws?name=solo"
        with connect(ws_url, proxy=None) as ws:
            assert ws.recv(timeout=5) == "* solo joined"
            ws.send("anyone?")
            assert ws.recv(timeout=5) == "solo: anyone?"
            with httpx.stream(
                "GET", url + "/presence", headers={"accept": "text/event-stream"}, timeout=5
            ) as feed:
                lines = feed.iter_lines()
                assert next(lines) == "event: presence"
                assert next(lines) == 'data: ["solo"]'
        other = httpx.get(url + "/other", headers={"accept": "text/event-stream"})
        assert other.status_code == 204  # SSE decline: EventSource stops reconnecting
