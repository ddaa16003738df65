"""An HTTP/2 request head: the decoded header list checked against RFC 9113 8.2-8.3.

Theory of operation
-------------------
``h2`` decodes HPACK; this module judges the result, in one pass over the
list, so the driver can tell a malformed request (a *stream* error: RST_STREAM
PROTOCOL_ERROR, the connection lives on, RFC 9113 8.1.1) from one that is
merely over a server limit (431 or 413). ``h2``'s own header validation is
off: it treats every malformed request as a connection error, and its chain
of generators cost more than the request itself.

Malformed (:class:`MalformedRequest`):

* a field name that is not a lower-case token, or a value with a control
  character other than HTAB (NUL, CR and LF by 8.2.1, the rest as HTTP/1.1
  refuses them) or with leading or trailing whitespace (8.2.1);
* a pseudo-header that is unknown, repeated, or after a regular field, or
  ``:method``/``:scheme``/``:path`` missing (``:path`` may be absent only for
  CONNECT); a method that is not a token or a scheme that is not a scheme
  (8.3.1) -- both are later decoded as ASCII; a ``:path`` that is not
  visible ASCII (the HTTP/1.1 target rule; obs-text, 0x80-0xFF, is allowed
  in field values only, and passed on as bytes);
* a connection-specific field (``connection``, ``keep-alive``,
  ``proxy-connection``, ``transfer-encoding``, ``upgrade``) or ``te`` other
  than ``trailers`` (8.2.2);
* ``host`` and ``:authority`` that disagree (8.3.1).

The rest (``:authority`` becoming ``host``, cookie crumbs counted as one
field) is recorded for the driver on :class:`RequestHead`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MalformedRequest", "RequestHead", "read_request_head"]

_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
# RFC 9113 8.2.1 forbids NUL, CR and LF; the other control characters (HTAB
# aside) are refused too, as the HTTP/1.1 parser does (RFC 9110 5.5), so the
# two drivers let the same values through.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\A[ \t]|[ \t]\Z")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*")
#: A request target is visible ASCII, as on HTTP/1.1 (obs-text is for field values only).
_TARGET = re.compile(rb"[\x21-\x7e]+")
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


class MalformedRequest(Exception):
    """The header list breaks RFC 9113; the message says how."""


class RequestHead:
    """What the driver needs from a well-formed request header list."""

    __slots__ = (
        "accept",
        "authority",
        "content_length",
        "field_count",
        "headers",
        "method",
        "path",
        "protocol",
        "scheme",
        "size",
    )

    def __init__(self) -> None:
        self.method = b""
        self.scheme = b""
        self.path = b""
        self.authority = b""
        #: ``:protocol`` of an Extended CONNECT, else empty.
        self.protocol = b""
        #: Regular fields, ``host`` set from ``:authority`` (first when it was absent).
        self.headers: list[tuple[bytes, bytes]] = []
        self.accept = b""
        self.content_length = b""
        #: Regular fields, the crumbs of a split ``cookie`` counting as one.
        self.field_count = 0
        #: Bytes of every name and value, pseudo-headers included.
        self.size = 0


def read_request_head(fields: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """Check and sort a decoded request header list; raise :class:`MalformedRequest`."""
    head = RequestHead()
    headers = head.headers
    pseudo: dict[bytes, bytes] = {}
    regular = False
    size = count = cookies = 0
    host: bytes | None = None
    accept: list[bytes] = []
    for name, value in fields:
        size += len(name) + len(value)
        if _BAD_VALUE.search(value) is not None:
            raise MalformedRequest(f"the value of {name!r} has a forbidden byte or whitespace")
        if name[:1] == b":":
            if regular or name not in _PSEUDO or name in pseudo:
                raise MalformedRequest(f"pseudo-header {name!r} is unknown, repeated or late")
            pseudo[name] = value
            continue
        regular = True
        if _FIELD_NAME.fullmatch(name) is None:
            raise MalformedRequest(f"field name {name!r} is not a lower-case token")
        if name in _CONNECTION_SPECIFIC:
            raise MalformedRequest(f"connection-specific field {name!r}")
        count += 1
        if name == b"cookie":
            cookies += 1
        elif name == b"host":
            host = value
            authority = pseudo.get(b":authority")
            if authority is not None:
                if value != authority:
                    raise MalformedRequest("host and :authority differ")
        elif name == b"accept":
            accept.append(value)
        elif name == b"content-length":
            head.content_length = value
        elif name == b"te" and value.lower() != b"trailers":
            raise MalformedRequest("te other than trailers")
        headers.append((name, value))
    method = head.method = pseudo.get(b":method", b"")
    if _TOKEN.fullmatch(method) is None:
        raise MalformedRequest(":method is missing or not a token")
    scheme = pseudo.get(b":scheme")
    if scheme is not None and _SCHEME.fullmatch(scheme) is None:
        raise MalformedRequest(":scheme is not a URI scheme")
    head.path = pseudo.get(b":path", b"")
    if head.path and _TARGET.fullmatch(head.path) is None:
        raise MalformedRequest(":path is not visible ASCII")
    if method != b"CONNECT" and (scheme is None or not head.path):
        raise MalformedRequest(":scheme or :path is missing")
    head.scheme = scheme or b""
    head.protocol = pseudo.get(b":protocol", b"")
    authority = head.authority = pseudo.get(b":authority", b"")
    if authority and host is None:
        headers.insert(0, (b"host", authority))  # R-H2-11
    if cookies > 1:
        count -= cookies - 1  # crumbs of one cookie field (R-H2-12)
    head.field_count = count
    head.size = size
    head.accept = b", ".join(accept)
    return head
