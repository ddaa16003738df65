"""SSE close: the server ends a stream on purpose, and tells the browser not to come back.

``/countdown?from=3`` sends ``3``, ``2``, ``1`` as ``tick`` events, then an
``end`` event and closes the stream from the server side
(``await sse.close()``). A well-behaved client stops on ``end``; an
``EventSource`` that reconnects anyway (with ``Last-Event-ID: end``) is
declined with ``204``, which makes browsers stop retrying for good.
"""

import anyio

from pagi.tools import SSE, Router

router = Router()


@router.sse("/countdown")
async def countdown(sse: SSE) -> None:
    if sse.last_event_id == "end":
        await sse.decline(status=204)  # finished already: EventSource gives up on 204
        return
    start = max(0, min(int(sse.scope["query_string"].decode().partition("from=")[2] or 3), 60))
    await sse.start()
    for n in range(start, 0, -1):
        await sse.send({"event": "tick", "data": str(n), "id": str(n)})
        await anyio.sleep(0.05)
    await sse.send({"event": "end", "data": "done", "id": "end"})
    await sse.close()


app = router
