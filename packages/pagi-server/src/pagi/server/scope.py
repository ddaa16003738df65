"""Building scope dicts from a parsed request head.

Shared by every protocol driver: HTTP/1.1 and HTTP/2 both hand over a
method, a request target and a header list, and get back the same scope
shape. Path decoding, cookie merging and SSE detection live here so that no
driver can disagree with another about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from pagi.server.proxy import ProxyTrust
from pagi.spec import CORE_VERSION, WWW_SPEC_VERSION

__all__ = [
    "ConnectionInfo",
    "build_scope",
    "decode_path",
    "merge_cookie_headers",
    "split_target",
]

_PAGI_INFO = {"version": CORE_VERSION, "spec_version": WWW_SPEC_VERSION}


@dataclass(slots=True)
class ConnectionInfo:
    """What a driver knows about its transport, computed once per connection."""

    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    tls: dict[str, Any] | None = None
    root_path: str = ""
    #: Lifespan state; each scope gets a shallow copy (R-LIFE-30). ``None``: unsupported.
    state: dict[str, Any] | None = field(default=None)
    #: Set with ``--proxy-headers``: rewrites client and scheme from trusted proxies.
    proxy: ProxyTrust | None = None

    @property
    def secure(self) -> bool:
        return self.tls is not None


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into ``(raw_path, query_string)``.

    ``raw_path`` never includes the query (decision on A-25); an absolute-form
    target (``http://host/p``) contributes only its path; ``query_string`` is
    ``b""`` when there is no ``?`` (A-26).
    """
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/") and b"://" in raw_path:
        after_scheme = raw_path.split(b"://", 1)[1]
        slash = after_scheme.find(b"/")
        raw_path = after_scheme[slash:] if slash >= 0 else b"/"
    return raw_path, query


def decode_path(raw_path: bytes) -> str:
    """Percent-decode, then UTF-8-decode ``raw_path`` (R-ENC-1).

    Bytes that are not valid UTF-8 are decoded as Latin-1, one code point per
    byte, so nothing is replaced or lost and ``path.encode("latin-1")`` gives
    the bytes back (R-ENC-2, decision on A-24).
    """
    if b"%" not in raw_path:
        try:
            return raw_path.decode("ascii")
        except UnicodeDecodeError:
            pass
    decoded = unquote_to_bytes(raw_path)
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return decoded.decode("latin-1")


def merge_cookie_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Join several ``cookie`` fields into one, at the first one's place (R-CK-1/2)."""
    first = -1
    values: list[bytes] = []
    for index, (name, value) in enumerate(headers):
        if name == b"cookie":
            if first < 0:
                first = index
            values.append(value)
    if len(values) < 2:
        return headers
    merged: list[tuple[bytes, bytes]] = []
    for index, pair in enumerate(headers):
        if pair[0] != b"cookie":
            merged.append(pair)
        elif index == first:
            merged.append((b"cookie", b"; ".join(values)))
    return merged


def build_scope(
    scope_type: str,
    info: ConnectionInfo,
    *,
    method: str | None,
    http_version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
) -> dict[str, Any]:
    """A fresh scope for one request, WebSocket session or SSE stream."""
    raw_path, query = split_target(target)
    secure = info.tls is not None
    if scope_type == "websocket":
        scheme = "wss" if secure else "ws"
    else:
        scheme = "https" if secure else "http"
    scope: dict[str, Any] = {
        "type": scope_type,
        "pagi": _PAGI_INFO.copy(),
        "http_version": http_version,
        "scheme": scheme,
        "path": decode_path(raw_path),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": info.root_path,
        "headers": merge_cookie_headers(headers),
        "server": info.server,
        "extensions": {},
    }
    if method is not None:
        scope["method"] = method
    if info.client is not None:
        scope["client"] = info.client
    if info.state is not None:
        scope["state"] = info.state.copy()
    if info.tls is not None:
        scope["extensions"]["tls"] = info.tls
    if info.proxy is not None:
        info.proxy.apply(scope)
    return scope
