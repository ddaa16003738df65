"""Echo on the WebSocket helper: the ready-made ``WebSocketEcho`` app, mounted next to a route.

``/echo`` is ``pagi.tools.apps.WebSocketEcho`` as it comes; ``/shout`` is
the same idea written with the ``WebSocket`` helper in a router, replying
in capitals, to show what the helper does for you: ``accept()``, iterating
over messages until the client leaves, ``send_text``/``send_bytes``.
"""

from pagi.tools import Mount, Router, WebSocket
from pagi.tools.apps import WebSocketEcho

router = Router(routes=[Mount("/echo", WebSocketEcho())])


@router.websocket("/shout")
async def shout(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:  # text as str, binary as bytes; ends on disconnect
        if isinstance(message, str):
            await ws.send_text(message.upper())
        else:
            await ws.send_bytes(message)


app = router
