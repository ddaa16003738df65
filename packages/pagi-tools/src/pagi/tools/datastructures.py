"""Small value types: multi-valued dicts, query parameters, URLs, uploads.

Everything here is plain data with no I/O except :class:`UploadFile`, whose
file is a ``tempfile.SpooledTemporaryFile`` (memory first, disk past a
threshold) and whose async methods push disk work to a worker thread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import anyio.to_thread

__all__ = ["URL", "Address", "FormData", "MultiDict", "QueryParams", "UploadFile"]

V = TypeVar("V")
D = TypeVar("D")


class MultiDict(Mapping[str, V], Generic[V]):
    """An ordered, read-only mapping that may hold several values per key.

    ``md[key]`` is the *last* value (what a form or query usually means
    when a key repeats by accident); :meth:`getlist` returns them all.
    Iteration yields each distinct key once, in first-seen order.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, V]] | Mapping[str, V] | None = None) -> None:
        if items is None:
            self._items: list[tuple[str, V]] = []
        elif isinstance(items, Mapping):
            self._items = list(items.items())
        else:
            self._items = list(items)

    def __getitem__(self, key: str) -> V:
        for k, v in reversed(self._items):
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._items)

    def getlist(self, key: str) -> list[V]:
        """Every value of ``key`` in order; ``[]`` when absent."""
        return [v for k, v in self._items if k == key]

    def multi_items(self) -> list[tuple[str, V]]:
        """All ``(key, value)`` pairs, repeats included, in order."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return self._items == other._items
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class QueryParams(MultiDict[str]):
    """Decoded query parameters (``a=1&a=2&b``): ``+`` is a space, ``%XX`` decoded.

    Invalid UTF-8 becomes U+FFFD rather than an error: a query string is
    user input and a handler should see what it can. Blank values are kept.
    """

    __slots__ = ()

    def __init__(
        self, query: str | bytes | Iterable[tuple[str, str]] | Mapping[str, str] | None = None
    ) -> None:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if isinstance(query, str):
            # parse_qsl decodes %XX as UTF-8 with the given error policy.
            query = parse_qsl(query, keep_blank_values=True, errors="replace")
        super().__init__(query)

    def __str__(self) -> str:
        return urlencode(self._items)


class Address(NamedTuple):
    """``scope["client"]`` / ``scope["server"]``: host (or socket path) and port."""

    host: str
    port: int | None


class URL:
    """A request URL rebuilt from a scope, or parsed from a string."""

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str) -> None:
        self._url = url
        self._parts = urlsplit(url)

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> URL:
        """Rebuild the URL the client asked for: scheme, host, ``root_path + path``, query."""
        scheme = scope.get("scheme") or {"websocket": "ws"}.get(scope.get("type", ""), "http")
        host = None
        for name, value in scope.get("headers") or ():
            if bytes(name).lower() == b"host":
                host = bytes(value).decode("latin-1")
                break
        if host is None:
            server = scope.get("server")
            if server:
                port = server[1]
                default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
                host = server[0] if port in (None, default) else f"{server[0]}:{port}"
            else:
                host = "localhost"
        raw_path = scope.get("raw_path")
        root = scope.get("root_path", "")
        if raw_path is not None and not root:
            path = bytes(raw_path).decode("latin-1")
        else:
            path = quote(root + scope.get("path", "/"), safe="/:@!$&'()*+,;=-._~%")
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        return cls(f"{scheme}://{host}{path}" + (f"?{query}" if query else ""))

    scheme = property(lambda self: self._parts.scheme, doc="``http``, ``https``, ``ws``...")
    netloc = property(lambda self: self._parts.netloc, doc="``host[:port]``")
    path = property(lambda self: self._parts.path, doc="the percent-encoded path")
    query = property(lambda self: self._parts.query, doc="the raw query string")
    fragment = property(lambda self: self._parts.fragment, doc="the fragment, if any")
    hostname = property(lambda self: self._parts.hostname, doc="host without port")
    port = property(lambda self: self._parts.port, doc="explicit port or ``None``")

    def replace(self, **parts: str) -> URL:
        """A copy with some of scheme/netloc/path/query/fragment replaced."""
        return URL(self._parts._replace(**parts).geturl())

    def include_query_params(self, **params: str) -> URL:
        """A copy with ``params`` set in the query (replacing same-named ones)."""
        items = [
            (k, v) for k, v in parse_qsl(self.query, keep_blank_values=True) if k not in params
        ]
        items.extend((k, str(v)) for k, v in params.items())
        return self.replace(query=urlencode(items))

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"URL({self._url!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self._url)


class UploadFile:
    """One uploaded file of a multipart form.

    ``file`` is a spooled temporary file: small uploads stay in memory,
    larger ones move to disk. The async methods run blocking file work in a
    worker thread so a large upload never stalls the event loop.
    """

    def __init__(
        self,
        file: tempfile.SpooledTemporaryFile[bytes] | Any,
        *,
        filename: str | None,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        size: int = 0,
    ) -> None:
        self.file = file
        self.filename = filename
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.size = size

    @property
    def basename(self) -> str | None:
        """``filename`` without any directory part a client may have sent."""
        if self.filename is None:
            return None
        return self.filename.replace("\\", "/").rsplit("/", 1)[-1]

    @property
    def in_memory(self) -> bool:
        """True while the spooled file has not rolled over to disk."""
        return not getattr(self.file, "_rolled", True)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all by default) from the current position."""
        if self.in_memory:
            return bytes(self.file.read(size))
        return bytes(await anyio.to_thread.run_sync(self.file.read, size))

    async def seek(self, offset: int) -> None:
        """Move to ``offset`` from the start."""
        self.file.seek(offset)

    async def save(self, destination: str | os.PathLike[str]) -> None:
        """Copy the whole upload to ``destination`` (parent directories created)."""

        def copy() -> None:
            os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
            self.file.seek(0)
            with open(destination, "wb") as out:
                shutil.copyfileobj(self.file, out)

        await anyio.to_thread.run_sync(copy)

    async def close(self) -> None:
        """Close the file (a spooled file on disk is deleted)."""
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, size={self.size}, "
            f"content_type={self.content_type!r})"
        )


class FormData(MultiDict["str | UploadFile"]):
    """Form fields (``str``) and uploads (:class:`UploadFile`), in body order."""

    __slots__ = ()

    @overload
    def get_text(self, key: str) -> str | None: ...
    @overload
    def get_text(self, key: str, default: D) -> str | D: ...
    def get_text(self, key: str, default: object = None) -> object:
        """The last *text* value of ``key`` (uploads are skipped)."""
        for value in reversed(self.getlist(key)):
            if isinstance(value, str):
                return value
        return default

    def files(self) -> list[tuple[str, UploadFile]]:
        """Every ``(field name, upload)`` pair."""
        return [(k, v) for k, v in self._items if isinstance(v, UploadFile)]

    async def close(self) -> None:
        """Close every upload's temporary file."""
        for _, upload in self.files():
            await upload.close()
