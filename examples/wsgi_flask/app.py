"""WSGI bridge: a Flask app served by pagi-server, with a live feed added beside it in PAGI.

``flask_app.py`` is an unchanged Flask app. Here it is wrapped in
``pagi.tools.wsgi.WSGIApp`` (each request runs in a worker thread, the body
is streamed both ways) and mounted under a ``Router`` that also has what
WSGI cannot do:

* ``/live`` (SSE): every item added through the Flask form, as it is added.
  The Flask view calls ``announce(item)``; here that publishes on a
  ``pagi.tools.channels`` hub from the WSGI thread, through
  ``anyio.from_thread``.
* everything else goes to Flask: ``/``, ``POST /items``, ``/api/items``,
  ``/stream``.
"""

from __future__ import annotations

from typing import Any

import anyio.from_thread
import flask_app as legacy  # pagi-server puts the app file's folder on sys.path

from pagi.tools import SSE, Lifespan, Mount, Router, SSERoute
from pagi.tools.channels import Channels
from pagi.tools.wsgi import WSGIApp

CHANNEL = "items"
channels = Channels()
channels.configure(CHANNEL, history=20)


def announce(item: dict[str, Any]) -> None:
    """Called by Flask in its WSGI worker thread: hop to the event loop to publish."""
    try:
        anyio.from_thread.run(channels.publish, CHANNEL, item)
    except RuntimeError:
        pass  # not in a PAGI worker thread (Flask run on its own): no live feed


legacy.announce = announce


async def live(sse: SSE) -> None:
    await sse.keepalive(15)
    async with channels.subscribe(
        CHANNEL, last_event_id=sse.last_event_id, transport=sse.scope.get("pagi.transport")
    ) as items:
        await sse.stream(
            {"data": item.data, "event": "item", "id": item.id} async for item in items
        )


router = Router([SSERoute("/live", live), Mount("", WSGIApp(legacy.flask_app, max_threads=8))])
app = Lifespan(router, context=[channels.lifespan])
