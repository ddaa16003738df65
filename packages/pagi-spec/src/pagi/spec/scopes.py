"""TypedDicts for every scope type: ``http``, ``websocket``, ``sse``, ``lifespan``.

A scope is a plain ``dict`` built by the server before it calls the
application (R-CORE-13, R-MW-8). These classes describe it for a type
checker; nothing checks them at run time, and a scope may always carry more
keys than listed here (middleware adds its own, R-SKEY-3).

Python 3.10 has no ``NotRequired``, and this package depends on nothing, so
each scope is assembled from two bases: one ``total=True`` part with the
keys a server must set and one ``total=False`` part with the optional ones.
Keys that contain a dot (``pagi.connection``, ``pagi.transport``) cannot be
written as class attributes, so those bases use the functional
``TypedDict(...)`` form. Read ``HTTPScope.__required_keys__`` and
``__optional_keys__`` to see the split at run time.

The prose is in ``docs/spec/www.md`` and ``docs/spec/lifespan.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, TypedDict

from pagi.spec.types import ConnectionState, Transport

__all__ = [
    "AnyScope",
    "Extensions",
    "HTTPScope",
    "Headers",
    "LifespanPagiInfo",
    "LifespanScope",
    "PagiInfo",
    "SSEScope",
    "TLSInfo",
    "WebSocketScope",
]

#: A header list: ``(name, value)`` pairs of bytes, names lower-case, order
#: kept, duplicates allowed (R-HDR-1..5). Two-item lists are accepted at run
#: time too; typed code should use tuples.
Headers: TypeAlias = Sequence[tuple[bytes, bytes]]

#: ``scope["extensions"]``: extension name -> that extension's data (R-EXT-1).
#: Only the names a server advertises are present; see :class:`TLSInfo`.
Extensions: TypeAlias = dict[str, Any]


class _PagiInfoRequired(TypedDict):
    version: str


class PagiInfo(_PagiInfoRequired, total=False):
    """``scope["pagi"]``: the specification versions (R-CORE-1..3).

    ``version`` is the core version as a string, ``"0.3"``, never a float.
    ``spec_version`` is the version of the protocol document the scope
    follows (``"0.3"`` for www and lifespan); when absent, read it as equal
    to ``version``.
    """

    spec_version: str


class LifespanPagiInfo(PagiInfo, total=False):
    """``scope["pagi"]`` of a lifespan scope: adds worker information (R-LIFE-2).

    ``is_worker`` is true in a process of a multi-process server and false
    in a single-process one (a bool or ``0``/``1``). ``worker_num`` counts
    workers from 1; it is absent or ``None`` in single-process mode.
    """

    is_worker: bool
    worker_num: int | None


class TLSInfo(TypedDict):
    """``scope["extensions"]["tls"]``: the TLS connection data (R-TLS-1..4, R-TLS-10).

    Present only on connections that really are TLS; a cleartext scope has
    no ``tls`` key at all (R-TLS-1, R-HTTP-5). Every key is always present
    (decision on A-21); a value the server cannot learn is ``None`` (or
    ``[]`` for the chain).

    * ``server_cert``: PEM of the certificate the server presented.
    * ``client_cert_chain``: PEM strings, leaf first; ``[]`` when the client
      sent none or the server cannot read them.
    * ``client_cert_name``: RFC 4514 subject of the leaf client certificate.
    * ``client_cert_error``: why the client certificate failed verification
      while the connection stayed open; ``None`` otherwise.
    * ``tls_version``: the wire number, ``0x0303`` for TLS 1.2, ``0x0304``
      for TLS 1.3.
    * ``cipher_suite``: the 16-bit IANA number, e.g. ``0x1301``.
    """

    server_cert: str | None
    client_cert_chain: list[str]
    client_cert_name: str | None
    client_cert_error: str | None
    tls_version: int | None
    cipher_suite: int | None


# --- the keys http, websocket and sse share (Www, R-HTTP-1, R-SSE-5, R-WS-*) ---


class _RequestScopeRequired(TypedDict):
    pagi: PagiInfo
    path: str
    query_string: bytes
    headers: Headers


_RequestScopeOptional = TypedDict(
    "_RequestScopeOptional",
    {
        "scheme": str,
        "raw_path": bytes,
        "root_path": str,
        "client": tuple[str, int],
        "server": tuple[str, int | None],
        "state": dict[str, Any],
        "extensions": Extensions,
        "pagi.transport": Transport,
    },
    total=False,
)

_HTTPScopeOwn = TypedDict(
    "_HTTPScopeOwn",
    {
        "type": Literal["http"],
        "http_version": str,
        "method": str,
        "pagi.connection": ConnectionState,
    },
)


class HTTPScope(_RequestScopeRequired, _RequestScopeOptional, _HTTPScopeOwn):
    """The scope of one HTTP request (R-HTTP-1..5, R-ENC-1..6, R-CONN-1).

    Required: ``type`` (``"http"``), ``pagi``, ``http_version`` (``"1.0"``,
    ``"1.1"`` or ``"2"``), ``method`` (upper-case), ``path`` (percent-decoded
    then UTF-8-decoded text; bytes that are not UTF-8 are decoded as
    Latin-1), ``query_string`` (raw bytes after ``?``, ``b""`` when there is
    none), ``headers`` and ``pagi.connection`` (:class:`ConnectionState`).

    Optional: ``scheme`` (default ``"http"``), ``raw_path`` (the path bytes
    as received, without the query), ``root_path`` (default ``""``),
    ``client``, ``server`` (``(path, None)`` on a Unix socket, R-HTTP-3),
    ``state`` (a shallow copy of the lifespan state, R-LIFE-30),
    ``extensions`` (default ``{}``) and ``pagi.transport`` (R-FLOW-1).
    """


class _WebSocketScopeOwn(TypedDict):
    type: Literal["websocket"]


class _WebSocketScopeOptional(TypedDict, total=False):
    http_version: str
    subprotocols: list[str]


class WebSocketScope(
    _RequestScopeRequired, _RequestScopeOptional, _WebSocketScopeOwn, _WebSocketScopeOptional
):
    """The scope of one WebSocket session (R-WS-1..3, R-WSH2-1).

    Like :class:`HTTPScope` but with ``type`` ``"websocket"``, no ``method``
    and no ``pagi.connection`` (R-CONN-17). ``http_version`` defaults to
    ``"1.1"`` (``"2"`` over RFC 8441), ``scheme`` to ``"ws"`` (or ``"wss"``),
    and ``subprotocols`` lists the offered ``Sec-WebSocket-Protocol`` values
    (``[]`` when none were offered, R-WS-2). ``extensions`` may carry
    ``websocket.http.response`` (R-WSDENY-1) and ``tls``.
    """


class _SSEScopeOwn(TypedDict):
    type: Literal["sse"]
    http_version: str
    method: str


class SSEScope(_RequestScopeRequired, _RequestScopeOptional, _SSEScopeOwn):
    """The scope of one Server-Sent Events stream (R-SSE-1..3, R-SSE-5, R-SSE-6).

    The HTTP scope with ``type`` ``"sse"`` and without ``pagi.connection``
    (R-CONN-17); ``raw_path``, ``query_string`` and ``root_path`` are set
    exactly as for ``http`` (decision on A-4). Any method may open a stream
    (R-SSE-2).
    """


class _LifespanScopeRequired(TypedDict):
    type: Literal["lifespan"]
    pagi: LifespanPagiInfo


class LifespanScope(_LifespanScopeRequired, total=False):
    """The scope of the lifespan protocol (R-LIFE-1..3, R-LIFE-30..35).

    ``state`` is the application's own namespace; the server copies it
    (shallowly) into every later request scope and never reads it. It is
    absent when the server does not support state. A lifespan scope carries
    no ``extensions`` key (decision on A-18); treat a missing one as empty.
    """

    state: dict[str, Any]


#: Any scope the specification defines.
AnyScope: TypeAlias = HTTPScope | WebSocketScope | SSEScope | LifespanScope
