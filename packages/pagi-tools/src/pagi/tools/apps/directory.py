"""Serve a directory tree with listings: ``Directory(root=".")``.

This is what ``pagi-server`` runs when no app is given. It is :class:`File`
(same safety rules: no traversal, hidden files hidden, symlinks kept inside
the root by default) plus a listing for directories without an index file:
HTML by default, JSON when the client prefers ``application/json``. Names
are HTML-escaped and links percent-encoded; directories come first.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from urllib.parse import quote

import anyio.to_thread

from pagi.spec import Receive, Scope, Send
from pagi.tools.apps.file import File
from pagi.tools.headers import Headers
from pagi.tools.negotiation import best_match
from pagi.tools.response import HTMLResponse, JSONResponse

__all__ = ["Directory", "Entry"]


@dataclass(frozen=True)
class Entry:
    """One listed name."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class Directory(File):
    """Serve files under ``root`` and list directories that have no index file."""

    def entries(self, path: str) -> list[Entry]:
        """The visible entries of ``path``, directories first, then by name (blocking)."""
        found = []
        with os.scandir(path) as it:
            for item in it:
                if not self.show_hidden and item.name.startswith("."):
                    continue
                if not self.may_serve(item.path):
                    continue  # listing what would then be refused only confuses
                try:
                    info = item.stat()
                except OSError:
                    continue  # a dangling symlink: nothing to serve
                found.append(Entry(item.name, item.is_dir(), info.st_size, info.st_mtime))
        found.sort(key=lambda e: (not e.is_dir, e.name.lower()))
        return found

    async def directory(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        entries = await anyio.to_thread.run_sync(self.entries, path)
        accept = Headers.from_scope(scope).get("accept")
        if best_match(["text/html", "application/json"], accept) == "application/json":
            data = [
                {"name": e.name, "type": "directory" if e.is_dir else "file", "size": e.size}
                for e in entries
            ]
            await JSONResponse(data)(scope, receive, send)
            return
        shown = html.escape(str(scope.get("root_path", "")) + str(scope.get("path", "/")))
        rows = (
            []
            if scope.get("path", "/") == "/"
            else ['<tr><td><a href="../">../</a></td><td></td></tr>']
        )
        for e in entries:
            label = e.name + ("/" if e.is_dir else "")
            href = quote(e.name) + ("/" if e.is_dir else "")
            size = "" if e.is_dir else _human(e.size)
            rows.append(
                f'<tr><td><a href="{html.escape(href)}">{html.escape(label)}</a></td>'
                f"<td>{size}</td></tr>"
            )
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>Index of {shown}</title></head>\n<body><h1>Index of {shown}</h1>\n"
            "<table>\n" + "\n".join(rows) + "\n</table></body></html>\n"
        )
        await HTMLResponse(page)(scope, receive, send)
