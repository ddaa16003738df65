"""Serve files from a directory, safely.

Path safety, in order: a NUL byte is a 400; a ``..`` segment is a 403 (the
path is never normalised into something else); hidden names (starting with
``.``) are a 404 unless ``show_hidden``; then the symlink policy decides
whether the resolved file may be served:

* ``"inside"`` (default): symlinks are followed, but the real path must stay
  under the real root, so a link cannot leak ``/etc/passwd``;
* ``"refuse"``: no symlinks anywhere on the path;
* ``"follow"``: follow everything (only for trees you fully control).

Files are answered by :class:`~pagi.tools.fileresponse.FileResponse`
(ETag, Last-Modified, 304, ranges, HEAD). A directory is served through its
first existing ``index`` file; without one, :meth:`File.directory` decides
(404 here; :class:`~pagi.tools.apps.directory.Directory` lists it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread

from pagi.spec import Receive, Scope, Send
from pagi.tools.fileresponse import FileResponse
from pagi.tools.response import PlainTextResponse, RedirectResponse

__all__ = ["File", "SymlinkPolicy"]

SymlinkPolicy = Literal["inside", "refuse", "follow"]


@dataclass(frozen=True)
class _Resolved:
    status: int  # 200 file, 0 directory, else an error status
    path: str = ""


class File:
    """Serve the files under ``root`` for GET and HEAD."""

    def __init__(
        self,
        root: str | os.PathLike[str] = ".",
        *,
        index: Sequence[str] = ("index.html", "index.htm"),
        show_hidden: bool = False,
        symlinks: SymlinkPolicy = "inside",
    ) -> None:
        if symlinks not in ("inside", "refuse", "follow"):
            raise ValueError(f"symlinks must be 'inside', 'refuse' or 'follow', not {symlinks!r}")
        self.root = os.path.realpath(os.fspath(root))
        self.index = tuple(index)
        self.show_hidden = show_hidden
        self.symlinks = symlinks

    def resolve(self, path: str) -> _Resolved:
        """Map a request path to a file system path, applying every safety rule (blocking)."""
        if "\x00" in path:
            return _Resolved(400)
        segments = [s for s in path.replace("\\", "/").split("/") if s not in ("", ".")]
        if ".." in segments:
            return _Resolved(403)
        if not self.show_hidden and any(s.startswith(".") for s in segments):
            return _Resolved(404)
        literal = os.path.join(self.root, *segments)
        if not self.may_serve(literal):
            return _Resolved(404)
        real = os.path.realpath(literal)
        if os.path.isdir(real):
            return _Resolved(0, real)
        if os.path.isfile(real):
            return _Resolved(200, real)
        return _Resolved(404)

    def may_serve(self, path: str) -> bool:
        """Whether the symlink policy allows serving ``path`` (blocking)."""
        real = os.path.realpath(path)
        if self.symlinks == "refuse":
            return real == os.path.normpath(path)
        if self.symlinks == "inside":
            return os.path.commonpath([self.root, real]) == self.root
        return True

    def find_index(self, directory: str) -> str | None:
        """The first index file of ``directory`` that exists (blocking)."""
        for name in self.index:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await PlainTextResponse("Not Found", 404)(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await PlainTextResponse("Method Not Allowed", 405, headers={"allow": "GET, HEAD"})(
                scope, receive, send
            )
            return
        path = str(scope.get("path", "/"))
        found = await anyio.to_thread.run_sync(self.resolve, path)
        if found.status == 0:
            if not path.endswith("/"):
                # Relative links inside an index page or listing need the slash.
                query = bytes(scope.get("query_string") or b"").decode("latin-1")
                target = (
                    str(scope.get("root_path", "")) + path + "/" + (f"?{query}" if query else "")
                )
                await RedirectResponse(target, 301)(scope, receive, send)
                return
            index = await anyio.to_thread.run_sync(self.find_index, found.path)
            if index is not None:
                await FileResponse(index)(scope, receive, send)
            else:
                await self.directory(found.path, scope, receive, send)
            return
        if found.status == 200:
            await FileResponse(found.path)(scope, receive, send)
            return
        text = {400: "Bad Request", 403: "Forbidden"}.get(found.status, "Not Found")
        await PlainTextResponse(text, found.status)(scope, receive, send)

    async def directory(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a directory without an index file; :class:`File` says 404."""
        await PlainTextResponse("Not Found", 404)(scope, receive, send)
