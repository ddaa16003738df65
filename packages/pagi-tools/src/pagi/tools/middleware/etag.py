"""ETag: a validator for responses the app sends in one piece.

A response to GET with a 200 status and a single ``bytes`` body (held by
:func:`~pagi.tools.middleware.base.buffer_response`, so streamed and file
bodies pass straight through) gets ``ETag`` set to a hash of its body,
unless the app already set one. Put :class:`~pagi.tools.middleware.conditional_get.ConditionalGet`
outside it to answer ``If-None-Match`` with 304:
``ConditionalGet(ETag(app))``.
"""

from __future__ import annotations

import base64
import hashlib

from pagi.spec import App, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError, ResponseStart, buffer_response

__all__ = ["ETag", "body_etag"]


def body_etag(body: bytes, weak: bool = False) -> str:
    """A quoted entity tag for ``body`` (BLAKE2b, 128 bits, base64url)."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    tag = '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'
    return "W/" + tag if weak else tag


class ETag(Middleware):
    """``ETag(app, weak=False)``: hash single-body 200 responses to GET into an ``ETag``."""

    def __init__(self, app: App, weak: bool = False) -> None:
        super().__init__(app)
        if not isinstance(weak, bool):
            raise OptionError("ETag", "weak", f"must be a bool, got {weak!r}")
        self.weak = weak

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        if scope.get("method") != "GET":
            return send  # HEAD bodies are empty: their hash would describe nothing
        return buffer_response(send, self._finish, accept=_wants_tag)

    def _finish(self, start: ResponseStart, body: bytes) -> bytes:
        start.headers["etag"] = body_etag(body, self.weak)
        return body


def _wants_tag(start: ResponseStart) -> bool:
    return start.status == 200 and "etag" not in start.headers
