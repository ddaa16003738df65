"""An ordinary Flask app, knowing nothing of PAGI: a list of items, a form, JSON, a stream.

``announce`` is the one hook to the PAGI side: ``app.py`` sets it to publish
each new item to live listeners. Run alone (``flask --app flask_app run``)
it stays a no-op.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, abort, jsonify, redirect, render_template_string, request

flask_app = Flask(__name__)
ITEMS: list[dict[str, Any]] = []
LOCK = threading.Lock()
announce: Callable[[dict[str, Any]], None] = lambda item: None  # noqa: E731

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flask on PAGI</title></head>
<body>
<h1>Items</h1>
<form method="post" action="/items">
  <input name="text" id="text" maxlength="200" placeholder="a new item">
  <button type="submit" id="add">Add</button>
</form>
<ul id="items">{% for item in items %}<li>{{ item.text }}</li>{% endfor %}</ul>
<p>{{ items|length }} item(s), served by Flask {{ server }}.</p>
</body></html>
"""


@flask_app.get("/")
def index() -> str:
    with LOCK:
        items = list(ITEMS)
    server = request.environ.get("SERVER_SOFTWARE", "through WSGI")
    return render_template_string(PAGE, items=items, server=f"via {server}")


@flask_app.post("/items")
def add_item() -> Any:
    text = (request.form.get("text") or "").strip()
    if not text:
        abort(400, description="text is required")
    if len(text) > 200:
        abort(400, description="text is at most 200 characters")
    with LOCK:
        item = {"id": len(ITEMS) + 1, "text": text}
        ITEMS.append(item)
    announce(item)
    return redirect("/", code=303)


@flask_app.get("/api/items")
def list_items() -> Any:
    with LOCK:
        return jsonify(items=list(ITEMS))


@flask_app.get("/stream")
def stream() -> Response:
    """A streamed response: each line is sent as the generator yields it."""
    count = request.args.get("n", "5")
    if not count.isdigit() or not 1 <= int(count) <= 100:
        abort(400, description="n must be a whole number from 1 to 100")

    def lines() -> Iterator[str]:
        for i in range(1, int(count) + 1):
            yield f"line {i}\n"

    return Response(lines(), mimetype="text/plain")
