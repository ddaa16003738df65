"""The full demo over a real pagi-server: login, notes over SSE, chat over WebSocket, the stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from example_harness import Page, chromium, serve, wait
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

SSE = {"accept": "text/event-stream"}


def events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    """(event name, decoded JSON data) for each event of an SSE body."""
    name, data = "message", []
    for line in lines:
        if line == "" and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def test_login_notes_sse_and_chat(tmp_path: Path) -> None:
    with serve("full_demo/app.py", tmp_path) as server, httpx.Client(base_url=server.url) as ann:
        # The Builder stack is on every answer.
        home = ann.get("/", headers={"accept-encoding": "gzip"})
        assert home.headers["content-encoding"] == "gzip"
        assert home.headers["x-content-type-options"] == "nosniff"
        assert len(home.headers["x-request-id"]) >= 16

        # Signed out: every guarded door says so.
        assert ann.get("/me").status_code == 401
        assert ann.post("/notes", json={"text": "x"}).json() == {"error": "sign in first"}
        assert ann.get("/notifications", headers=SSE).status_code == 401
        with pytest.raises(InvalidStatus) as denied:
            connect(server.ws_url + "/chat", proxy=None)
        assert denied.value.response.status_code == 403

        # Login: bad input and wrong passwords get a message; a good one sets the session.
        assert ann.post("/login", content=b"ann").status_code == 400
        wrong = ann.post("/login", json={"name": "ann", "password": "guess"})
        assert (wrong.status_code, wrong.json()) == (401, {"error": "wrong name or password"})
        assert ann.post("/login", json={"name": "ann", "password": "wonderland"}).status_code == 200
        assert ann.get("/me").json() == {"user": "ann"}
        cookie = {"cookie": f"session={ann.cookies['session']}"}

        bob = httpx.Client(base_url=server.url)
        bob.post("/login", json={"name": "bob", "password": "builder"})
        with (
            ann.stream("GET", "/notifications", headers=SSE, timeout=5) as feed,
            connect(server.ws_url + "/chat", additional_headers=cookie, proxy=None) as ws,
        ):
            received = events(feed.iter_lines())
            assert next(received) == ("hello", {"user": "ann"})  # subscribed from here on

            assert bob.post("/notes", json={"text": "  hello all "}).status_code == 201
            assert next(received) == ("note", {"by": "bob", "text": "hello all"})
            bad = bob.post("/notes", json={"text": ""})
            assert bad.status_code == 422 and "non-empty" in bad.json()["error"]

            ws.send(json.dumps({"text": "hi from ann"}))
            assert json.loads(ws.recv(timeout=5)) == {"from": "ann", "text": "hi from ann"}
            assert next(received) == ("chat", {"from": "ann", "text": "hi from ann"})
            ws.send("not json")
            assert json.loads(ws.recv(timeout=5))["error"].startswith('send {"text"')
            ws.send(json.dumps({"text": "still open"}))
            assert json.loads(ws.recv(timeout=5))["text"] == "still open"
        bob.close()

        assert ann.post("/logout").json() == {"user": None}
        assert ann.get("/me").status_code == 401
        assert ann.get("/notes").json() == {"notes": [{"by": "bob", "text": "hello all"}]}


def loaded(page: Page, expression: str) -> None:
    """Wait for ``expression`` while the tab may still be swapping its first document in.

    Until then DevTools answers ``Cannot find default execution context``,
    an error reply that ``Page.eval`` turns into a ``KeyError``: retried here.
    """

    def check() -> object:
        try:
            return page.eval(expression)
        except KeyError:
            return False

    wait(expression, check)


def test_the_page_in_chromium(tmp_path: Path) -> None:
    with (
        serve("full_demo/app.py", tmp_path) as server,
        chromium(tmp_path) as devtools,
        Page.open(devtools, server.url + "/") as page,
    ):
        loaded(page, "document.body?.dataset.ready === 'yes'")
        page.eval("$('name').value = 'ann'; $('password').value = 'nope'; $('login').click()")
        page.wait("$('login-error').textContent === 'wrong name or password'")
        page.eval("$('password').value = 'wonderland'; $('login').click()")
        page.wait("document.body.dataset.sse === 'open' && document.body.dataset.ws === 'open'")
        assert page.text("user") == "ann"

        page.eval("$('note').value = 'from the page'; $('add').click()")
        page.wait("$('notes').textContent === 'ann: from the page'")
        page.eval("$('note').value = ''; $('add').click()")  # empty: the server's message
        page.wait("$('note-error').textContent.startsWith('text must be')")

        page.eval("$('say').value = 'hello chat'; $('send').click()")
        page.wait("$('chat').textContent === 'ann: hello chat'")
        page.eval("$('say').value = '   '; $('send').click()")
        page.wait("$('chat-error').textContent.startsWith('send')")
