"""The Flask app through WSGIApp on a real pagi-server, its live feed, and its form in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve


def test_flask_routes_through_the_bridge(tmp_path: Path) -> None:
    with serve("wsgi_flask/app.py", tmp_path) as server:
        added = httpx.post(server.url + "/items", data={"text": "<b>tea</b> ✓"})
        assert (added.status_code, added.headers["location"]) == (303, "/")
        assert httpx.get(server.url + "/api/items").json() == {
            "items": [{"id": 1, "text": "<b>tea</b> ✓"}]
        }
        page = httpx.get(server.url + "/")
        assert "<li>&lt;b&gt;tea&lt;/b&gt; ✓</li>" in page.text  # Jinja escaped it
        assert "served by Flask via" in page.text

        with httpx.stream("GET", server.url + "/stream?n=3") as stream:
            assert stream.headers.get("content-length") is None  # streamed, not buffered
            assert list(stream.iter_lines()) == ["line 1", "line 2", "line 3"]

        # Bad input: Flask's own 400 page with the reason, no traceback in the log.
        for data, reason in (
            ({"text": "  "}, "text is required"),
            ({"text": "x" * 201}, "at most 200"),
        ):
            refused = httpx.post(server.url + "/items", data=data)
            assert refused.status_code == 400 and reason in refused.text
        assert httpx.get(server.url + "/stream?n=many").status_code == 400
        assert httpx.get(server.url + "/nowhere").status_code == 404


def test_items_added_in_flask_reach_the_live_feed(tmp_path: Path) -> None:
    with serve("wsgi_flask/app.py", tmp_path) as server:
        headers = {"accept": "text/event-stream"}
        with httpx.stream("GET", server.url + "/live", headers=headers, timeout=10) as feed:
            assert feed.status_code == 200
            httpx.post(server.url + "/items", data={"text": "live one"})
            data = next(line for line in feed.iter_lines() if line.startswith("data: "))
            assert json.loads(data[6:]) == {"id": 1, "text": "live one"}


def test_the_flask_form_in_chromium(tmp_path: Path) -> None:
    with serve("wsgi_flask/app.py", tmp_path) as server, chromium(tmp_path) as devtools:
        with Page.open(devtools, server.url + "/") as page:
            page.wait("document.getElementById('add') !== null")
            page.eval(
                "document.getElementById('text').value = 'from the browser ✓';"
                "document.getElementById('add').click()"
            )
            # The form posts, Flask redirects (303) back to the list, which now holds it.
            page.wait(
                "document.getElementById('items')?.textContent.includes('from the browser ✓')"
            )
            page.eval("document.getElementById('add').click()")  # empty: Flask's 400 page
            page.wait("document.body?.textContent.includes('text is required')")
