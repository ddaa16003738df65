"""Try apps in turn until one does not answer 404 (or another ``catch`` status).

Each app but the last runs with its response *buffered*: if its status is
in ``catch`` the buffer is dropped and the next app gets its turn;
otherwise the buffer is replayed to the real ``send``. The request body is
read once (up to ``max_body_size``) and replayed to every app, so later
apps see the same body (tools-digest 10, defect 8). Only http scopes
cascade; websocket and sse scopes go to the first app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.request import Request
from pagi.tools.response import PlainTextResponse

__all__ = ["Cascade"]


class Cascade:
    """``Cascade([static_files, router])``: the first app that finds it wins."""

    def __init__(
        self,
        apps: Sequence[App],
        *,
        catch: Sequence[int] = (404, 405),
        max_body_size: int = 10 * 1024 * 1024,
    ) -> None:
        self.apps = list(apps)
        self.catch = frozenset(catch)
        self.max_body_size = max_body_size

    def add(self, app: App) -> None:
        """Append another app to try."""
        self.apps.append(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.apps:
            await PlainTextResponse("Not Found", 404)(scope, receive, send)
            return
        if scope.get("type") != "http":
            await self.apps[0](scope, receive, send)
            return
        body = await Request(dict(scope), receive, max_body_size=self.max_body_size).body()
        for app in self.apps[:-1]:
            buffered: list[Mapping[str, Any]] = []

            async def buffer(
                event: Mapping[str, Any], buffered: list[Mapping[str, Any]] = buffered
            ) -> None:
                buffered.append(event)

            await app(dict(scope), _replay(body, receive), buffer)
            starts = [e for e in buffered if e.get("type") == "http.response.start"]
            if starts and starts[0].get("status") in self.catch:
                continue
            for event in buffered:
                await send(event)
            return
        await self.apps[-1](dict(scope), _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Mapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more": False}
        return await receive()

    return replay
