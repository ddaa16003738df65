"""An app that redirects every request."""

from __future__ import annotations

from collections.abc import Callable

from pagi.spec import Receive, Scope, Send
from pagi.tools.response import RedirectResponse

__all__ = ["Redirect"]


class Redirect:
    """Redirect to ``to`` (a URL, or a function of the scope) with ``status`` (302).

    With ``preserve_query`` (on) the request's query string is carried over,
    joined with ``&`` when the target already has one.
    """

    def __init__(
        self,
        to: str | Callable[[Scope], str],
        *,
        status: int = 302,
        preserve_query: bool = True,
    ) -> None:
        self.to = to
        self.status = status
        self.preserve_query = preserve_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.to(scope) if callable(self.to) else self.to
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        if self.preserve_query and query:
            target += ("&" if "?" in target else "?") + query
        await RedirectResponse(target, self.status)(scope, receive, send)
