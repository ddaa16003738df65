"""FormBody and JSONBody: parse the request body once, hand the app the raw bytes again.

For a request of their content type, they read the whole body (413 over
``max_size``), put the parsed value in the scope copy as
``pagi.parsed_body`` and the bytes as ``pagi.raw_body``, and replay the
body to the app, which can still read it its own way. Other requests pass
through untouched.

* ``FormBody``: ``application/x-www-form-urlencoded`` into a
  :class:`~pagi.tools.datastructures.FormData` (repeated keys kept).
* ``JSONBody``: ``application/json`` and ``application/*+json``; bad JSON
  answers 400 naming the line, column and character of the error. An empty
  body is not parsed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.datastructures import FormData
from pagi.tools.exceptions import BodyTooLarge
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import (
    Middleware,
    OptionError,
    copy_scope,
    read_body,
    replay_receive,
)
from pagi.tools.response import PlainTextResponse

__all__ = ["FormBody", "JSONBody"]


def _media_type(scope: Scope) -> str:
    value = Headers.from_scope(scope).get("content-type") or ""
    return value.split(";", 1)[0].strip().lower()


class _BodyParser(Middleware):
    def __init__(self, app: App, max_size: int = 1024 * 1024) -> None:
        super().__init__(app)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise OptionError(
                type(self).__name__, "max_size", f"must be an int >= 0, got {max_size!r}"
            )
        self.max_size = max_size

    def wants(self, media_type: str) -> bool:
        raise NotImplementedError

    def parse(self, body: bytes) -> Any:
        raise NotImplementedError

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.wants(_media_type(scope)):
            await self.app(scope, receive, send)
            return
        length = Headers.from_scope(scope).get("content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.max_size:
                raise BodyTooLarge(f"request body is larger than {self.max_size} bytes")
            body = await read_body(receive, self.max_size)
        except BodyTooLarge as exc:
            await PlainTextResponse(exc.detail, 413)(scope, receive, send)
            return
        extra: dict[str, Any] = {"pagi.raw_body": body}
        if body:
            try:
                extra["pagi.parsed_body"] = self.parse(body)
            except ValueError as exc:
                await PlainTextResponse(str(exc), 400)(scope, receive, send)
                return
        await self.app(copy_scope(scope, extra), replay_receive(body, receive), send)


class FormBody(_BodyParser):
    """``FormBody(app, max_size=1048576)``: urlencoded forms into ``pagi.parsed_body``."""

    def wants(self, media_type: str) -> bool:
        return media_type == "application/x-www-form-urlencoded"

    def parse(self, body: bytes) -> FormData:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Invalid form body: not UTF-8 at byte {exc.start}") from None
        return FormData(parse_qsl(text, keep_blank_values=True))


class JSONBody(_BodyParser):
    """``JSONBody(app, max_size=1048576)``: JSON bodies into ``pagi.parsed_body``."""

    def wants(self, media_type: str) -> bool:
        return media_type == "application/json" or (
            media_type.startswith("application/") and media_type.endswith("+json")
        )

    def parse(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
            ) from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"Invalid JSON: not UTF-8 at byte {exc.start}") from None
