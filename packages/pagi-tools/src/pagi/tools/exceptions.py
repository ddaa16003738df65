"""Named exceptions of the toolkit.

Handlers raise :class:`HTTPException` (or one of its subclasses) to end a
request with an error status; the router and the endpoints turn it into a
plain-text response. The body helpers of :class:`~pagi.tools.request.Request`
raise the subclasses below, so a handler that does nothing special still
answers a too-large body with 413 and malformed JSON with 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

__all__ = [
    "BodyConsumedError",
    "BodyTooLarge",
    "ClientDisconnected",
    "FormError",
    "HTTPException",
    "MalformedBody",
    "WebSocketDisconnect",
]


class HTTPException(Exception):
    """End the request with ``status``; ``detail`` becomes the response text.

    ``headers`` are added to the error response (for example ``Allow`` on a
    405 or ``WWW-Authenticate`` on a 401).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {detail}")


class BodyTooLarge(HTTPException):
    """The request body (or one form part) is larger than the configured limit."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class MalformedBody(HTTPException):
    """The request body cannot be decoded as what the handler asked for."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


class FormError(MalformedBody):
    """A form body is malformed (bad multipart framing, missing boundary...)."""


class ClientDisconnected(Exception):
    """The client went away while the body was being read (``http.disconnect``)."""


class BodyConsumedError(RuntimeError):
    """The body was already read the other way (streamed vs buffered).

    The body of a request arrives once: after ``stream()`` the buffered
    helpers cannot rebuild it, and after ``body()`` there is nothing left to
    stream (the buffered helpers share one cached copy).
    """


class WebSocketDisconnect(Exception):
    """The peer closed the WebSocket: ``code`` and ``reason`` from ``websocket.disconnect``."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
