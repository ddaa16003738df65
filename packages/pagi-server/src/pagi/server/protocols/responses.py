"""What every driver writes the same way: status lines, server answers, field rules.

* :func:`status_line` caches ``HTTP/1.1 <code> <phrase>`` lines.
* :func:`filter_response_fields` applies the response-field rules to the
  application's headers once for every driver: names lower-cased, the
  hop-by-hop fields (``connection``, ``keep-alive``, ``proxy-connection``,
  ``transfer-encoding``, ``te``, ``upgrade``) removed because the server
  owns the connection and the framing (R-HTTP-21, and RFC 9113 8.2.2 makes
  them illegal on HTTP/2), ``content-length`` taken out for the driver to
  frame, and whether the app set ``date``/``server`` noted, so the server
  adds only what is missing (R-HSRV-1).
* :func:`error_response` is the short ``text/plain`` answer the server gives
  on its own (400, 408, 413, 414, 431, 500, 501, 503, 505; R-HERR-1), as
  fields plus body for HTTP/2 and as bytes (:func:`simple_response`) for
  HTTP/1.x. It honours ``--no-server-header`` like every other response.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

from pagi.server.streams.dispatch import split_tokens

if TYPE_CHECKING:
    from pagi.server.context import ServerContext

__all__ = [
    "HOP_BY_HOP",
    "ResponseFields",
    "error_response",
    "filter_response_fields",
    "simple_response",
    "status_line",
]

#: Fields about the connection, not the message: the server writes its own.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"upgrade"}
)
_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason phrase>\\r\\n`` (empty phrase for unknown codes)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
        _STATUS_LINES[status] = line
    return line


class ResponseFields:
    """An application's response headers after the shared rules."""

    __slots__ = ("close", "content_length", "fields", "has_date", "has_server")

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.content_length: bytes | None = None  # the app's value, validated by the stream
        self.close = False  # the app asked for ``connection: close``
        self.has_date = False
        self.has_server = False


def filter_response_fields(headers: list[tuple[bytes, bytes]]) -> ResponseFields:
    """Split the app's headers into what the driver frames and what it passes on."""
    out = ResponseFields()
    fields = out.fields
    for name, value in headers:
        name = name.lower()
        if name in HOP_BY_HOP:
            if name == b"connection" and b"close" in split_tokens(value):
                out.close = True
            continue
        if name == b"content-length":
            out.content_length = value
            continue
        if name == b"date":
            out.has_date = True
        elif name == b"server":
            out.has_server = True
        fields.append((name, value))
    return out


def error_response(
    status: int,
    ctx: ServerContext,
    *,
    text: str | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The fields (without framing) and body of a server-generated answer."""
    if ctx.metrics is not None:
        ctx.metrics.answered(status)  # limit rejections (413, 414, 431, 503, 408)
    body = ((text if text is not None else HTTPStatus(status).phrase) + "\n").encode("utf-8")
    fields = [_TEXT_PLAIN, (b"content-length", b"%d" % len(body))]
    fields.extend(ctx.server_fields(False, False))
    fields.extend(headers)
    return fields, body


def simple_response(
    status: int,
    ctx: ServerContext,
    *,
    text: str | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    close: bool = True,
) -> bytes:
    """A complete HTTP/1.x server-generated response, as bytes."""
    fields, body = error_response(status, ctx, text=text, headers=headers)
    lines = [status_line(status)]
    lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)
