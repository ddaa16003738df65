"""ConditionalGet: answer conditional requests from the response's own validators.

The app runs as usual. When its start is a 2xx carrying an ``ETag`` or a
``Last-Modified``, the request's ``If-Match``, ``If-Unmodified-Since``,
``If-None-Match`` and ``If-Modified-Since`` are evaluated by
:func:`pagi.tools.conditional.evaluate_preconditions` (RFC 9110 13.2.2
order; ``If-Match`` strong, ``If-None-Match`` weak). A 304 keeps only the
validator and cache headers, a 412 has an empty body; the app's body events
are then dropped. Anything else passes through unchanged, streaming
included.

It works on the *response*, so for unsafe methods the app has already
acted when the 412 goes out: an app that changes state should check
``If-Match`` itself before acting (the same function helps).
"""

from __future__ import annotations

from pagi.spec import App, Event, Scope, Send
from pagi.tools.conditional import NOT_MODIFIED_HEADERS, evaluate_preconditions, parse_http_date
from pagi.tools.headers import Headers, MutableHeaders
from pagi.tools.middleware.base import Middleware, ResponseStart

__all__ = ["ConditionalGet"]

_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


class ConditionalGet(Middleware):
    """``ConditionalGet(app)``: turn a 2xx into 304 or 412 when the request's conditions say so."""

    def __init__(self, app: App) -> None:
        super().__init__(app)

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        request = Headers.from_scope(scope)
        if not any(name in request for name in _CONDITIONS):
            return send
        conditions = {name: request[name] for name in _CONDITIONS if name in request}
        method = str(scope.get("method", "GET"))
        dropping = False

        async def conditional_send(event: Event) -> None:
            nonlocal dropping
            kind = event.get("type")
            if dropping:
                return  # the app's body of a response replaced by 304/412
            if kind != "http.response.start":
                await send(event)
                return
            start = ResponseStart(event)
            verdict = _verdict(method, conditions, start)
            if verdict is None:
                await send(event)
                return
            dropping = True
            if verdict == 304:
                kept = [(n, v) for n, v in start.headers.raw if n.decode() in NOT_MODIFIED_HEADERS]
                start.headers = MutableHeaders(raw=kept)
            else:
                start.headers = MutableHeaders({"content-length": "0"})
            start.status = verdict
            start.event.pop("trailers", None)
            await send(start.to_event())
            await send({"type": "http.response.body", "body": b""})

        return conditional_send


def _verdict(method: str, conditions: dict[str, str], start: ResponseStart) -> int | None:
    if not 200 <= start.status < 300:
        return None
    etag = start.headers.get("etag")
    last_modified = parse_http_date(start.headers.get("last-modified"))
    if etag is None and last_modified is None:
        return None
    return evaluate_preconditions(method, conditions, etag, last_modified)
