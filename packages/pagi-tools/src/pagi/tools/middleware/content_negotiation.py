"""ContentNegotiation: choose the response media type from ``Accept`` once, for the app.

The app's scope copy gets ``pagi.preferred_content_type`` (the ``supported``
type the client prefers; ties go to the earlier entry) and
``pagi.accepted_types`` (the parsed ``Accept`` items, best first). When the
client accepts none of them, the choice is ``default`` (the first
supported type if not given), or, with ``strict=True``, a 406 that lists
the supported types.
"""

from __future__ import annotations

from collections.abc import Sequence

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import Middleware, OptionError, copy_scope
from pagi.tools.negotiation import best_match, parse_accept
from pagi.tools.response import PlainTextResponse

__all__ = ["ContentNegotiation"]


class ContentNegotiation(Middleware):
    """``ContentNegotiation(app, supported, default=None, strict=False)``."""

    def __init__(
        self,
        app: App,
        supported: Sequence[str],
        default: str | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(app)
        if isinstance(supported, str) or not supported:
            raise OptionError(
                "ContentNegotiation",
                "supported",
                f"must be a non-empty list of types, got {supported!r}",
            )
        for kind in supported:
            if not isinstance(kind, str) or kind.count("/") != 1:
                raise OptionError(
                    "ContentNegotiation", "supported", f"has {kind!r}, not type/subtype"
                )
        if default is not None and default not in supported:
            raise OptionError("ContentNegotiation", "default", f"{default!r} is not in supported")
        if not isinstance(strict, bool):
            raise OptionError("ContentNegotiation", "strict", f"must be a bool, got {strict!r}")
        self.supported = list(supported)
        self.default = default or self.supported[0]
        self.strict = strict

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = Headers.from_scope(scope).get("accept")
        chosen = best_match(self.supported, accept) if accept else self.default
        if chosen is None:
            if self.strict:
                text = "Not Acceptable; supported types: " + ", ".join(self.supported)
                await PlainTextResponse(text, 406)(scope, receive, send)
                return
            chosen = self.default
        items = sorted(parse_accept(accept), key=lambda item: -item.q) if accept else []
        extra = {
            "pagi.preferred_content_type": chosen,
            "pagi.accepted_types": [item.media_type for item in items],
        }
        await self.app(copy_scope(scope, extra), receive, send)
