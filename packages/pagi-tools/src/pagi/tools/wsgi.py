"""Run a WSGI application (PEP 3333) as a PAGI application (docs/spec/wsgi.md).

Theory of operation
-------------------
:class:`WSGIApp` calls the WSGI application once per ``http`` (or ``sse``)
scope, in a worker thread taken from an anyio capacity limiter of
``max_threads`` (R-PSGI-2, R-PSGI-12: a WSGI app holds one thread per
request, never the event loop). Two channels join the thread to the loop:

* **request body**: ``wsgi.input`` pulls one ``http.request`` event from
  ``receive()`` each time its buffer runs dry (``anyio.from_thread.run``),
  so the body is streamed with backpressure and never held whole. A
  disconnect ends it early: a short read, never a hang.
* **response**: the thread puts ``start``/``body``/``file`` items into a
  memory stream of :data:`QUEUE_SIZE` items, which blocks it when the
  client is slow; the request task takes them out and sends PAGI events
  (R-PSGI-10, R-PSGI-11). The head is held back until the first non-empty
  chunk, ``write()`` or the end, so an app that fails early can still get
  a 500; ``write()`` bytes go first, in order. A
  ``wsgi.file_wrapper`` around a real file is sent as one ``fh`` body,
  which the server can ``sendfile``. When the client goes away the task
  stops reading the queue, the thread's next put fails and it stops
  iterating; the iterable's ``close()`` is always called, in the thread.

Errors: an exception before anything was sent propagates, and the server
answers 500 and logs it; after the head it propagates too and the server
truncates the response. ``start_response`` called again without
``exc_info`` raises, as PEP 3333 requires; with ``exc_info`` after the
head was sent it re-raises that exception.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pagi.spec import Receive, Scope, Send

__all__ = ["FileWrapper", "WSGIApp"]

log = logging.getLogger("pagi.tools.wsgi")

#: Response items a WSGI thread may have queued before it blocks.
QUEUE_SIZE = 16

_STATUS = re.compile(r"\d{3} ")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FileWrapper:
    """``environ["wsgi.file_wrapper"]``: iterates a file in blocks, or is sent as a file body."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.block_size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the wrapped file, if it can be closed (PEP 3333)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def real_file(self) -> Any | None:
        """The wrapped object when it is an OS-level binary file, else ``None``."""
        try:
            os.fstat(self.filelike.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        return None if isinstance(self.filelike, io.TextIOBase) else self.filelike


class _Errors(io.TextIOBase):
    """``wsgi.errors``: each line written goes to the ``pagi.tools.wsgi`` logger (A-23)."""

    def __init__(self) -> None:
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            log.error("%s", line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            log.error("%s", self._pending)
            self._pending = ""


class _Exchange:
    """One request: the state shared by the request task and the WSGI thread."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.receive = receive
        self.sse = scope["type"] == "sse"
        self.request_event = "sse.request" if self.sse else "http.request"
        self.body_done = False
        self.client_gone = False
        self.buffer = bytearray()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_sent = False
        self.queue: MemoryObjectSendStream[tuple[str, Any]] | None = None
        self.file_sent = anyio.Event()

    # -- request body (runs on the loop, called from the thread) ---------------

    async def pull(self) -> bytes:
        if self.body_done:
            return b""
        event = await self.receive()
        if event["type"] != self.request_event:
            self.body_done = self.client_gone = True
            return b""
        if not event.get("more"):
            self.body_done = True
        return bytes(event.get("body") or b"")

    # -- response (thread side) -----------------------------------------------

    def put(self, kind: str, value: Any) -> None:
        assert self.queue is not None
        anyio.from_thread.run(self.queue.send, (kind, value))

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError(
                "start_response was called a second time without exc_info (PEP 3333)"
            )
        if not isinstance(status, str) or _STATUS.match(status) is None:
            raise ValueError(f"WSGI status must be a str like '200 OK', got {status!r}")
        if not isinstance(headers, list):
            raise TypeError(f"WSGI headers must be a list of (name, value), got {headers!r}")
        self.status = int(status[:3])
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        return self.write

    def head(self) -> None:
        if self.head_sent:
            return
        if self.status is None:
            raise RuntimeError("the WSGI application did not call start_response")
        self.head_sent = True
        self.put("start", (self.status, self.headers))

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: the bytes go out before the iterable's."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        if data:
            self.head()
            self.put("body", bytes(data))


class _Input:
    """``wsgi.input``: the request body, pulled from ``receive()`` as the app reads."""

    def __init__(self, exchange: _Exchange) -> None:
        self._x = exchange

    def _fill(self) -> bool:
        x = self._x
        while not x.body_done:
            chunk = anyio.from_thread.run(x.pull)
            if chunk:
                x.buffer += chunk
                return True
        return False

    def read(self, size: int | None = -1) -> bytes:
        buffer = self._x.buffer
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(buffer)
            buffer.clear()
            return data
        while len(buffer) < size and self._fill():
            pass
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        buffer = self._x.buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                cut = end + 1
                break
            if size is not None and 0 <= size <= len(buffer):
                cut = size
                break
            if not self._fill():
                cut = len(buffer)
                break
        if size is not None and size >= 0:
            cut = min(cut, size)
        data = bytes(buffer[:cut])
        del buffer[:cut]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _native(data: bytes) -> str:
    return data.decode("latin-1")


def _split_host(host: str) -> tuple[str, str]:
    """``example.com:8080`` -> (name, port); IPv6 literals keep their brackets."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not name.endswith(":"):
        return name, port
    return host, ""


def build_environ(scope: Scope, exchange: _Exchange, multithread: bool = True) -> dict[str, Any]:
    """The WSGI environ for a PAGI ``http``/``sse`` scope (docs/spec/wsgi.md section 2)."""
    root_path: str = scope.get("root_path") or ""
    raw_path = scope.get("raw_path")
    path_bytes = (
        unquote_to_bytes(bytes(raw_path)) if raw_path is not None else scope["path"].encode()
    )
    prefix = root_path.encode("utf-8")
    if prefix and path_bytes.startswith(prefix):
        path_bytes = path_bytes[len(prefix) :]
    scheme = scope.get("scheme") or "http"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _native(prefix),
        "PATH_INFO": _native(path_bytes),
        "QUERY_STRING": _native(scope.get("query_string") or b""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": _Input(exchange),
        "wsgi.input_terminated": True,
        "wsgi.errors": _Errors(),
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "pagi.scope": scope,
        "pagi.extensions": scope.get("extensions") or {},
    }
    if scheme == "https":
        environ["HTTPS"] = "on"
    host_header = ""
    for name, value in scope["headers"]:
        key = _native(bytes(name)).lower()
        text = _native(bytes(value))
        if key == "content-type":
            environ["CONTENT_TYPE"] = text
        elif key == "content-length":
            environ["CONTENT_LENGTH"] = text
        elif "_" in key:
            continue  # x_user would be indistinguishable from x-user
        else:
            if key == "host":
                host_header = text
            wsgi_key = "HTTP_" + key.upper().replace("-", "_")
            if wsgi_key in environ:
                joiner = "; " if key == "cookie" else ","
                environ[wsgi_key] += joiner + text
            else:
                environ[wsgi_key] = text
    server = scope.get("server")
    if server is not None and server[1] is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
    else:
        name, port = _split_host(host_header)
        environ["SERVER_NAME"] = name or "localhost"
        environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    return environ


class WSGIApp:
    """A WSGI application as a PAGI application, run in at most ``max_threads`` threads."""

    def __init__(self, wsgi_app: WSGIApplication, max_threads: int = 40) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self.app = wsgi_app
        self.max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "sse"):
            # websocket (R-CORE-15) and lifespan: the server treats lifespan as unsupported.
            raise RuntimeError(f"a WSGI application cannot serve a {kind!r} scope")
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_threads)
        exchange = _Exchange(scope, receive)
        environ = build_environ(scope, exchange)
        put, take = anyio.create_memory_object_stream[tuple[str, Any]](QUEUE_SIZE)
        exchange.queue = put
        prefix = "sse.http." if exchange.sse else "http."
        connection = scope.get("pagi.connection")
        error: BaseException | None = None

        async def run_thread() -> None:
            nonlocal error
            try:
                await anyio.to_thread.run_sync(self._run, environ, exchange, limiter=self._limiter)
            except Exception as exc:
                error = error or exc
            finally:
                put.close()

        async with anyio.create_task_group() as group:
            group.start_soon(run_thread)
            try:
                await self._forward(take, exchange, prefix, connection, send)
            except Exception as exc:  # raised below as itself, not in an exception group
                error = exc
            finally:
                exchange.file_sent.set()  # never leave the thread waiting on a dropped file
        if error is not None:
            raise error

    @staticmethod
    async def _forward(
        take: MemoryObjectReceiveStream[tuple[str, Any]],
        exchange: _Exchange,
        prefix: str,
        connection: Any,
        send: Send,
    ) -> None:
        """Send the thread's items as PAGI events until it is done or the client left."""
        async with take:
            async for kind, value in take:
                if kind == "start":
                    status, headers = value
                    await send(
                        {"type": prefix + "response.start", "status": status, "headers": headers}
                    )
                elif kind == "body":
                    body, more = (value, True) if isinstance(value, bytes) else value
                    await send({"type": prefix + "response.body", "body": body, "more": more})
                else:  # "file": a real file from its position; the thread waits for us
                    try:
                        await send({"type": "http.response.body", "fh": value})
                    finally:
                        exchange.file_sent.set()
                if exchange.client_gone or (connection is not None and not _connected(connection)):
                    exchange.client_gone = True
                    return  # closing ``take`` makes the thread's next put fail: it stops

    def _run(self, environ: dict[str, Any], exchange: _Exchange) -> None:
        result = self.app(environ, exchange.start_response)
        try:
            if (
                isinstance(result, FileWrapper)
                and not exchange.sse
                and (fh := result.real_file()) is not None
            ):
                exchange.head()
                exchange.put("file", fh)
                # The iterable's close() closes the file: only once it was sent.
                anyio.from_thread.run(exchange.file_sent.wait)
                return
            if isinstance(result, list) and len(result) == 1 and not exchange.head_sent:
                exchange.head()  # one chunk, one event (R-PSGI-11)
                exchange.put("body", (bytes(result[0]), False))
                return
            for chunk in result:
                if exchange.client_gone:
                    return
                if chunk:
                    exchange.head()
                    exchange.put("body", bytes(chunk))
            exchange.head()
            exchange.put("body", (b"", False))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client went away and the request task stopped taking items
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _connected(connection: Any) -> bool:
    return bool(connection.is_connected()) or bool(connection.response_complete())
