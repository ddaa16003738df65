"""Backpressure over a real pagi-server: a socket that stops reading, then the page in Chromium."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve


def monitor_events(url: str) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs from /monitor, for as long as the caller iterates."""
    headers = {"accept": "text/event-stream"}
    with httpx.stream("GET", url + "/monitor", headers=headers, timeout=10) as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                yield name, json.loads(line[len("data: ") :])


def first(events: Iterator[tuple[str, dict]], predicate, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    """The first event matching ``predicate`` (stats arrive every 100 ms, so this polls)."""
    deadline = time.monotonic() + timeout
    for name, data in events:
        if predicate(name, data):
            return data
        assert time.monotonic() < deadline, "timed out waiting on /monitor"
    raise AssertionError("the monitor stream ended")


def test_a_reader_that_stops_reading_raises_high_water_then_drain(tmp_path: Path) -> None:
    with serve("backpressure/app.py", tmp_path) as server:
        events = monitor_events(server.url)
        idle = first(events, lambda name, data: name == "stats")
        assert idle["active"] is False

        reader = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        reader.sendall(b"GET /produce?chunk=65536 HTTP/1.1\r\nhost: x\r\n\r\n")
        # Nothing is read: the kernel buffers fill, then the server's buffer does.
        high = first(events, lambda name, data: name == "water")
        assert high["kind"] == "high"
        stats = first(events, lambda name, data: name == "stats" and data["active"])
        assert stats["transport"] is True
        assert (stats["high"], stats["low"]) == (65536, 16384)
        assert stats["buffered"] >= stats["low"]  # held back, not growing without bound
        assert httpx.get(server.url + "/produce").status_code == 409  # one at a time

        # Read fast for a while: the buffer drains below the low mark.
        def read_and_check(name: str, data: dict) -> bool:
            reader.recv(1 << 20)
            return name == "water"

        assert first(events, read_and_check)["kind"] == "drain"
        reader.close()
        first(events, lambda name, data: name == "stats" and not data["active"])
        events.close()


def test_bad_requests_get_clear_answers(tmp_path: Path) -> None:
    with serve("backpressure/app.py", tmp_path) as server:
        for query in ("chunk=12", "chunk=lots", "chunk=99999999"):
            response = httpx.get(server.url + "/produce?" + query)
            assert response.status_code == 400
            assert "chunk must be a whole number of bytes" in response.text
        declined = httpx.get(server.url + "/elsewhere", headers={"accept": "text/event-stream"})
        assert (declined.status_code, declined.text) == (404, "no such stream; try /monitor\n")
        assert httpx.get(server.url + "/nope").status_code == 404


def test_the_page_shows_the_watermarks_in_chromium(tmp_path: Path) -> None:
    with serve("backpressure/app.py", tmp_path) as server, chromium(tmp_path) as devtools:
        with Page.open(devtools, server.url + "/") as page:
            page.wait("document.body?.dataset.monitor === 'open'")
            # The reader starts paused: a fast producer, a reader that does not read.
            page.eval("document.getElementById('start').click()")
            page.wait("document.querySelector('#events li.high') !== null")
            assert page.text("high") == "65536" and page.text("low") == "16384"
            page.wait("Number(document.getElementById('buffered').textContent) >= 16384")
            assert "high water: send waits" in page.text("events")

            page.eval("document.querySelector('input[value=fast]').click()")
            page.wait("document.querySelector('#events li.drain') !== null")
            page.wait("Number(document.getElementById('received').textContent) > 0")

            page.eval("document.getElementById('stop').click()")
            page.wait("document.body.dataset.active === 'false'")
            assert page.text("active") == "idle"
