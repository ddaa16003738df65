"""Run a CGI/1.1 script (RFC 3875) as a PAGI application.

Theory of operation
-------------------
:class:`CGIApp` starts the script once per ``http`` (or ``sse``) scope as
an anyio subprocess in a session of its own, so the script and anything it
spawns form one process group that can be killed together. Three tasks
share the request; none makes a blocking call on the event loop:

* **stdin**: each ``http.request`` event is written to the script's stdin
  as it arrives, so the pipe's capacity is the only buffer and a script
  that reads slowly slows the client down. stdin is closed at the end of
  the body. The task then keeps one ``receive()`` pending: it returns only
  when the client leaves (or the response is complete), and a client that
  leaves cancels the request and kills the script.
* **stderr**: every line is logged on the ``pagi.tools.cgi`` logger.
* **stdout** (the request task itself): the header block is read up to its
  blank line (at most :data:`MAX_HEADER_BYTES`) and parsed as RFC 3875
  section 6 says. ``Status:`` gives the status (default 200). A
  ``Location:`` holding a local path and no ``Status:`` is a local
  redirect: the request is run again as a ``GET`` of that path, without a
  body, inside this app (section 6.2.2). Any other ``Location:`` is a
  client redirect, 302 unless ``Status:`` says otherwise. Then the body is
  streamed as the script writes it.

Errors: output that is not a CGI response (a line that is not a header
field, no ``Content-Type``/``Location``/``Status``, a bad status, no blank
line) is answered 502 and the reason logged. A script that cannot be
started is answered 502 too. The ``timeout`` bounds the whole run: when it
expires the process group is killed and the answer is 504, or, when the
head was already sent, the response is left incomplete (the server then
truncates it, so the client sees it was cut).

Degrades: a request body without ``content-length`` (chunked, HTTP/2) is
streamed without ``CONTENT_LENGTH``; the script reads stdin to its end.
A local redirect outside this app's ``root_path`` becomes a 302. NPH
scripts are not supported; the server always frames the response.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from pagi.spec import Receive, Scope, Send

__all__ = ["MAX_HEADER_BYTES", "CGIApp", "CGIResponseError", "build_cgi_environ"]

log = logging.getLogger("pagi.tools.cgi")

#: The largest header block a script may print before its blank line.
MAX_HEADER_BYTES = 64 * 1024
#: Local redirects followed for one request before answering 502.
MAX_LOCAL_REDIRECTS = 5
#: How long stderr may keep talking after the script's stdout ended.
STDERR_GRACE = 1.0

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS = re.compile(rb"(\d{3})(?:[ \t].*)?")
#: Connection-level fields a script must not set: the server frames the response.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class CGIResponseError(Exception):
    """The script's output is not a CGI response (answered 502, reason logged)."""


def _text(data: bytes) -> str:
    """Bytes as an environment string that round-trips to the same bytes."""
    return os.fsdecode(data)


def build_cgi_environ(scope: Scope, script_path: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The CGI meta-variables (RFC 3875 section 4.1) for a PAGI ``http``/``sse`` scope.

    ``HTTP_PROXY`` is never set, whatever the request sends (httpoxy); header
    names with ``_`` are dropped, as they would be indistinguishable from
    ``-``. ``PATH`` comes from this process; ``extra`` is applied last.
    """
    root_path: str = scope.get("root_path") or ""
    raw_path = scope.get("raw_path")
    request_uri = bytes(raw_path) if raw_path is not None else scope["path"].encode()
    path = unquote_to_bytes(request_uri) if raw_path is not None else request_uri
    prefix = root_path.encode()
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    path_info = _text(path)
    query = bytes(scope.get("query_string") or b"")
    scheme = scope.get("scheme") or "http"
    environ: dict[str, str] = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "pagi-tools",
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path,
        "SCRIPT_FILENAME": script_path,
        "PATH_INFO": path_info,
        "QUERY_STRING": _text(query),
        "REQUEST_URI": _text(request_uri + (b"?" + query if query else b"")),
        "REQUEST_SCHEME": scheme,
    }
    if path_info:
        environ["PATH_TRANSLATED"] = path_info  # no document root to map it onto
    if scheme == "https":
        environ["HTTPS"] = "on"
    if "PATH" in os.environ:
        environ["PATH"] = os.environ["PATH"]
    host = ""
    for name, value in scope["headers"]:
        key = bytes(name).lower()
        text = _text(bytes(value))
        if key == b"content-type":
            environ["CONTENT_TYPE"] = text
        elif key == b"content-length":
            environ["CONTENT_LENGTH"] = text
        elif key == b"proxy" or b"_" in key:
            continue  # httpoxy: a request must never set the script's HTTP_PROXY
        else:
            if key == b"host":
                host = text
            elif key == b"authorization":
                environ["AUTH_TYPE"] = text.partition(" ")[0]
            var = "HTTP_" + key.decode("latin-1").upper().replace("-", "_")
            joiner = "; " if key == b"cookie" else ", "
            environ[var] = environ[var] + joiner + text if var in environ else text
    server = scope.get("server")
    if server is not None and server[1] is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
    else:
        name, colon, port = host.rpartition(":")
        if not (colon and port.isdigit() and not name.endswith(":")):
            name, port = host, ""
        environ["SERVER_NAME"] = name or "localhost"
        environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = environ["REMOTE_HOST"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    environ.update(extra)
    return environ


class _Head:
    """A parsed CGI header block."""

    __slots__ = ("headers", "local_redirect", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], local: str | None) -> None:
        self.status = status
        self.headers = headers
        self.local_redirect = local


def parse_head(block: bytes) -> _Head:
    """Parse the header block a script printed (RFC 3875 section 6.3); raises CGIResponseError."""
    status: int | None = None
    location: bytes | None = None
    content_type = False
    headers: list[tuple[bytes, bytes]] = []
    for number, raw in enumerate(block.split(b"\n"), 1):
        line = raw.removesuffix(b"\r")
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise CGIResponseError(f"header line {number} is not 'Name: value': {line[:80]!r}")
        value = value.strip(b" \t")
        if b"\r" in value or b"\0" in value:
            raise CGIResponseError(f"header {name.decode()!r} holds a CR or NUL")
        key = name.lower()
        if key == b"status":
            match = _STATUS.fullmatch(value)
            if match is None or not 200 <= int(match.group(1)) <= 599:
                raise CGIResponseError(f"Status must be a code from 200 to 599, got {value[:40]!r}")
            status = int(match.group(1))
        elif key in _HOP_BY_HOP:
            continue
        else:
            if key == b"location":
                location = value
            elif key == b"content-type":
                content_type = True
            headers.append((key, value))
    if status is None and location is None and not content_type:
        raise CGIResponseError("the header has none of Content-Type, Location and Status")
    if location is not None:
        if status is None and location.startswith(b"/") and not location.startswith(b"//"):
            return _Head(200, [], location.decode("latin-1"))
        status = status or 302
    return _Head(status or 200, headers, None)


class _Run:
    """One run of the script: the state its tasks share."""

    def __init__(self, receive: Receive, request_type: str) -> None:
        self.receive = receive
        self.request_type = request_type
        self.finished = False  # the answer is decided: a disconnect now is no news
        self.client_gone = False
        self.stderr_done = anyio.Event()


class _Call:
    """One request, across local redirects."""

    __slots__ = ("head_sent",)

    def __init__(self) -> None:
        self.head_sent = False


class CGIApp:
    """A CGI/1.1 script as a PAGI application: one process per request.

    ``script`` is the executable (its ``#!`` line picks the interpreter), or
    an argv list such as ``["python3", "app.cgi"]``. The script runs in its
    own directory with the CGI variables, ``PATH`` and ``env`` as its whole
    environment. ``timeout`` bounds each request, in seconds.
    """

    def __init__(
        self,
        script: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(script, (str, os.PathLike)):
            argv = [os.fspath(script)]
        else:
            argv = [os.fspath(part) for part in script]
        if not argv:
            raise ValueError("script must name a program")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.argv = argv
        self.script_path = os.path.abspath(argv[-1])
        self.timeout = timeout
        self.env = dict(env or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "sse"):
            raise RuntimeError(f"a CGI script cannot serve a {kind!r} scope")
        prefix = "sse.http." if kind == "sse" else "http."
        request_type = "sse.request" if kind == "sse" else "http.request"
        call = _Call()
        with anyio.move_on_after(self.timeout) as deadline:
            for _ in range(MAX_LOCAL_REDIRECTS + 1):
                target = await self._run(call, scope, receive, send, prefix, request_type)
                if target is None:
                    return
                scope, receive = _redirected(scope, receive, target, request_type)
                root_path: str = scope.get("root_path") or ""
                if root_path and not scope["path"].startswith(root_path):
                    location = [(b"location", target.encode("latin-1"))]
                    await _answer(send, prefix, 302, b"Found\n", location)
                    return
            log.error("%s: more than %d local redirects", self.script_path, MAX_LOCAL_REDIRECTS)
            await _answer(send, prefix, 502, b"Bad Gateway: too many local redirects\n")
            return
        if deadline.cancelled_caught:
            log.warning("%s: killed after the %gs timeout", self.script_path, self.timeout)
            if not call.head_sent:
                await _answer(send, prefix, 504, b"Gateway Timeout\n")
            # else: returning with the response unfinished makes the server truncate it

    async def _run(
        self,
        call: _Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        prefix: str,
        request_type: str,
    ) -> str | None:
        """Run the script once; the local redirect target, or ``None`` once answered."""
        environ = build_cgi_environ(scope, self.script_path, self.env)
        try:
            process = await anyio.open_process(
                self.argv,
                env=environ,
                cwd=os.path.dirname(self.script_path) or None,
                start_new_session=hasattr(os, "killpg"),
            )
        except OSError as exc:
            log.error("%s: cannot start the script (502): %s", self.script_path, exc)
            await _drain(receive, request_type)
            await _answer(send, prefix, 502, b"Bad Gateway\n")
            return None
        run = _Run(receive, request_type)
        target: str | None = None
        try:
            async with anyio.create_task_group() as group:
                gone = _canceller(run, group.cancel_scope)
                connection = scope.get("pagi.connection")
                if connection is not None:
                    connection.on_disconnect(lambda _reason: gone())
                assert process.stdin is not None and process.stderr is not None
                group.start_soon(_feed_stdin, run, process.stdin, gone)
                group.start_soon(self._log_stderr, run, process.stderr)
                target = await self._respond(call, run, process, send, prefix)
                run.finished = True
                group.cancel_scope.cancel()
            return target
        finally:
            run.finished = True
            with anyio.CancelScope(shield=True):
                await _reap(process)
            if run.client_gone:
                log.info("%s: the client left; the script was stopped", self.script_path)

    async def _respond(
        self, call: _Call, run: _Run, process: Process, send: Send, prefix: str
    ) -> str | None:
        assert process.stdout is not None
        stdout = process.stdout
        try:
            block, rest = await _read_head(stdout)
            head = parse_head(block)
        except CGIResponseError as exc:
            log.error("%s: bad CGI response (502): %s", self.script_path, exc)
            run.finished = True
            await _answer(send, prefix, 502, b"Bad Gateway\n")
            return None
        if head.local_redirect is not None:
            run.finished = True
            return head.local_redirect
        call.head_sent = True
        start = {"type": prefix + "response.start", "status": head.status, "headers": head.headers}
        await send(start)
        if rest:
            await send({"type": prefix + "response.body", "body": rest, "more": True})
        async for chunk in stdout:
            await send({"type": prefix + "response.body", "body": chunk, "more": True})
        run.finished = True
        await send({"type": prefix + "response.body", "body": b"", "more": False})
        code = await process.wait()
        if code:
            log.warning("%s: exited with status %d", self.script_path, code)
        with anyio.move_on_after(STDERR_GRACE):
            await run.stderr_done.wait()
        return None

    async def _log_stderr(self, run: _Run, stderr: ByteReceiveStream) -> None:
        pending = b""
        try:
            async for chunk in stderr:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._log_line(line)
                if len(pending) > MAX_HEADER_BYTES:  # no newline in sight: log what there is
                    self._log_line(pending)
                    pending = b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            if pending:
                self._log_line(pending)
            run.stderr_done.set()

    def _log_line(self, line: bytes) -> None:
        log.warning("%s: %s", self.script_path, line.rstrip(b"\r").decode(errors="replace"))


def _canceller(run: _Run, cancel_scope: anyio.CancelScope) -> Callable[[], None]:
    """What a client disconnect does: stop the run, unless its answer is already decided."""

    def gone() -> None:
        if not run.finished:
            run.client_gone = True
            cancel_scope.cancel()

    return gone


async def _feed_stdin(run: _Run, stdin: ByteSendStream, gone: Callable[[], None]) -> None:
    """Copy the request body to stdin as it arrives, then wait for a disconnect."""
    writable = True
    try:
        while True:
            event = await run.receive()
            if event["type"] != run.request_type:
                gone()
                return
            body = event.get("body") or b""
            if body and writable:
                try:
                    await stdin.send(body)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    writable = False  # the script does not read its body; keep draining
            if not event.get("more"):
                break
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await stdin.aclose()
            except (anyio.BrokenResourceError, OSError):
                pass
    # Pending until the client leaves or the response is complete (R-HTTP-14).
    event = await run.receive()
    if event["type"] != run.request_type:
        gone()


async def _read_head(stdout: ByteReceiveStream) -> tuple[bytes, bytes]:
    """The header block up to its blank line, and the body bytes read past it."""
    buffer = bytearray()
    searched = 0
    while True:
        match = _HEADER_END.search(buffer, max(0, searched - 3))
        if match is not None:
            return bytes(buffer[: match.start()]), bytes(buffer[match.end() :])
        if len(buffer) > MAX_HEADER_BYTES:
            raise CGIResponseError(f"no blank line ends the header within {MAX_HEADER_BYTES} bytes")
        searched = len(buffer)
        try:
            buffer += await stdout.receive()
        except anyio.EndOfStream:
            if buffer:
                raise CGIResponseError("the output ended before the header's blank line") from None
            raise CGIResponseError("the script printed nothing") from None


async def _reap(process: Process) -> None:
    """Kill the script's process group if it is still running, then wait for it."""
    if process.returncode is None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(process.pid, signal.SIGKILL)
            else:  # pragma: no cover - no process groups
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass
    await process.aclose()


def _redirected(
    scope: Scope, receive: Receive, target: str, request_type: str
) -> tuple[Scope, Receive]:
    """The scope and receive for a local redirect: a GET of ``target`` without a body."""
    parts = urlsplit(target)
    raw_path = parts.path.encode("latin-1")
    new = dict(scope)
    new["method"] = "GET"
    new["path"] = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    new["raw_path"] = raw_path
    new["query_string"] = parts.query.encode("latin-1")
    new["headers"] = [
        (name, value)
        for name, value in scope["headers"]
        if bytes(name).lower() not in (b"content-length", b"content-type", b"transfer-encoding")
    ]
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": request_type, "body": b"", "more": False}
        return await receive()

    return new, replay


async def _drain(receive: Receive, request_type: str) -> None:
    """Read the request body to its end (R-HTTP-16), discarding it."""
    while True:
        event = await receive()
        if event["type"] != request_type or not event.get("more"):
            return


async def _answer(
    send: Send,
    prefix: str,
    status: int,
    body: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        *extra,
    ]
    await send({"type": prefix + "response.start", "status": status, "headers": headers})
    await send({"type": prefix + "response.body", "body": body, "more": False})
