"""Access-log lines, compiled once from an Apache-style format.

A format is a preset name (``clf``, ``combined``, ``common``, ``tiny``) or a
string of ``%`` atoms. It is compiled into a list of small functions when
the server starts, so writing a line costs one pass over that list; an
unknown atom is an error at startup, not a garbled log at run time.

Atoms: ``%h`` client address, ``%l`` and ``%u`` (always ``-``), ``%t`` time
(CLF, UTC), ``%r`` request line, ``%m`` method, ``%U`` path, ``%q`` query
(with ``?``), ``%H`` protocol, ``%s`` status, ``%b`` bytes (``-`` for 0),
``%B`` bytes, ``%d`` seconds with milliseconds, ``%D`` microseconds, ``%T``
whole seconds, ``%{Name}i`` request header, ``%%``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["PRESETS", "AccessLog"]

PRESETS = {
    "clf": '%h - - [%t] "%m %U%q %H" %s %b %ds',
    "combined": '%h - - [%t] "%r" %s %b "%{Referer}i" "%{User-Agent}i"',
    "common": '%h - - [%t] "%r" %s %b',
    "tiny": "%m %U%q %s %Dus",
}

_Atom = Callable[[dict[str, Any], int, int, float], str]
_TOKEN = re.compile(r"%(\{[^}]*\}i|.)")


def _client(scope: dict[str, Any], *_: Any) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unix"


def _query(scope: dict[str, Any], *_: Any) -> str:
    query = scope.get("query_string") or b""
    return "?" + query.decode("latin-1") if query else ""


def _protocol(scope: dict[str, Any], *_: Any) -> str:
    return "HTTP/" + str(scope.get("http_version", "1.1"))


def _method(scope: dict[str, Any], *_: Any) -> str:
    return str(scope.get("method") or scope["type"].upper())


def _request_line(scope: dict[str, Any], *_: Any) -> str:
    return f"{_method(scope)} {scope.get('path', '')}{_query(scope)} {_protocol(scope)}"


_clf_second = -1
_clf_text = ""


def _clf_time(*_: Any) -> str:
    global _clf_second, _clf_text
    now = int(time.time())
    if now != _clf_second:
        _clf_second = now
        _clf_text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
    return _clf_text


_ATOMS: dict[str, _Atom] = {
    "h": _client,
    "l": lambda *_: "-",
    "u": lambda *_: "-",
    "t": _clf_time,
    "r": _request_line,
    "m": _method,
    "U": lambda s, *_: str(s.get("path", "")),
    "q": _query,
    "H": _protocol,
    "s": lambda s, status, n, d: str(status),
    "b": lambda s, status, n, d: str(n) if n else "-",
    "B": lambda s, status, n, d: str(n),
    "d": lambda s, status, n, d: f"{d:.3f}",
    "D": lambda s, status, n, d: str(int(d * 1_000_000)),
    "T": lambda s, status, n, d: str(int(d)),
    "%": lambda *_: "%",
}


def _header_atom(name: str) -> _Atom:
    wanted = name.lower().encode("latin-1")

    def atom(scope: dict[str, Any], *_: Any) -> str:
        for key, value in scope.get("headers", ()):
            if key == wanted:
                return str(value.decode("latin-1"))
        return "-"

    return atom


def compile_format(fmt: str) -> list[str | _Atom]:
    """Compile a format (or preset name) into literal strings and atom functions."""
    fmt = PRESETS.get(fmt, fmt)
    parts: list[str | _Atom] = []
    pos = 0
    for match in _TOKEN.finditer(fmt):
        if match.start() > pos:
            parts.append(fmt[pos : match.start()])
        atom = match.group(1)
        if len(atom) > 3 and atom.startswith("{"):  # %{Name}i; "%{" or "%{}i" is unknown
            parts.append(_header_atom(atom[1:-2]))
        elif atom in _ATOMS:
            parts.append(_ATOMS[atom])
        else:
            raise ValueError(f"unknown access log atom %{atom} in {fmt!r}")
        pos = match.end()
    if pos < len(fmt):
        if "%" in fmt[pos:]:  # only a lone "%" at the very end gets here
            raise ValueError(f"access log format ends with a lone % in {fmt!r}")
        parts.append(fmt[pos:])
    return parts


def _request_id(scope: dict[str, Any]) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            return str(value.decode("latin-1"))
    return None


def json_line(scope: dict[str, Any], status: int, nbytes: int, duration: float) -> str:
    """The ``--log-format json`` access record: one object, no format string."""
    kind = scope["type"]
    data: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "logger": "pagi.access",
        "type": kind,
        "client": _client(scope),
        "method": _method(scope),
        "path": scope.get("path", ""),
        "query": (scope.get("query_string") or b"").decode("latin-1"),
        "protocol": _protocol(scope),
        "scheme": scope.get("scheme"),
        "status": status,
        "bytes": nbytes,
        "duration_ms": round(duration * 1000, 3),
        "user_agent": _header_atom("User-Agent")(scope, status, nbytes, duration),
    }
    if kind in ("websocket", "sse"):
        data["session_seconds"] = round(duration, 3)
    request_id = _request_id(scope)
    if request_id is not None:
        data["request_id"] = request_id
    return json.dumps(data, ensure_ascii=False)


class AccessLog:
    """Writes one line per HTTP request, or per WebSocket/SSE session at its end.

    With ``json=True`` the line is :func:`json_line` and the format is unused.
    """

    def __init__(self, stream: IO[str], fmt: str = "clf", *, json: bool = False) -> None:
        self.stream = stream
        self.parts = compile_format(fmt)
        self.json = json

    def reopen(self) -> None:
        """Reopen a log file by its name (after rotation); standard streams stay."""
        name = getattr(self.stream, "name", None)
        if not isinstance(name, str) or name.startswith("<") or self.stream.closed:
            return
        try:
            fresh = open(name, "a", buffering=1)
        except OSError:
            return  # keep writing to the old file rather than nowhere
        old, self.stream = self.stream, fresh
        old.close()

    def log(self, scope: dict[str, Any], status: int, nbytes: int, duration: float) -> None:
        if self.json:
            line = json_line(scope, status, nbytes, duration)
        else:
            line = "".join(
                p if isinstance(p, str) else p(scope, status, nbytes, duration) for p in self.parts
            )
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
