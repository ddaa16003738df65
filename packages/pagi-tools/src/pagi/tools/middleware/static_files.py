"""StaticFiles: serve files under a URL prefix in front of an app.

The middleware form of :class:`~pagi.tools.apps.file.File`: GET and HEAD
under ``prefix`` are answered from ``root`` with the same path-safety rules
(``..``, hidden names, the symlink policy), ``index`` files for
directories, and :class:`~pagi.tools.fileresponse.FileResponse` (ETag,
Last-Modified, 304/412, ranges). With ``precompressed`` (on), a ``.br`` or
``.gz`` sibling of the file is served instead, with ``Content-Encoding``,
when the client accepts that coding (br first); such files get
``Vary: Accept-Encoding`` either way. A miss is a 404, or goes to the app
with ``pass_through=True``; other methods and paths always go to the app.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anyio.to_thread

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.apps.file import File, SymlinkPolicy
from pagi.tools.fileresponse import FileResponse, guess_media_type
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.middleware.compress import negotiate_encoding
from pagi.tools.response import PlainTextResponse

__all__ = ["StaticFiles"]

_SIBLINGS = (("br", ".br"), ("gzip", ".gz"))


class StaticFiles(Middleware):
    """``StaticFiles(app, root, prefix="/static", *, index, pass_through, precompressed)``."""

    def __init__(
        self,
        app: App,
        root: str | os.PathLike[str],
        prefix: str = "/static",
        *,
        index: Sequence[str] = ("index.html", "index.htm"),
        show_hidden: bool = False,
        symlinks: SymlinkPolicy = "inside",
        pass_through: bool = False,
        precompressed: bool = True,
    ) -> None:
        super().__init__(app)
        if not os.path.isdir(os.fspath(root)):
            raise OptionError("StaticFiles", "root", f"{os.fspath(root)!r} is not a directory")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise OptionError("StaticFiles", "prefix", f"must start with '/', got {prefix!r}")
        try:
            self.files = File(root, index=index, show_hidden=show_hidden, symlinks=symlinks)
        except ValueError as exc:
            raise OptionError("StaticFiles", "symlinks", str(exc)) from None
        self.prefix = prefix.rstrip("/")
        self.pass_through = pass_through
        self.precompressed = precompressed

    def _locate(self, path: str) -> tuple[int, str]:
        found = self.files.resolve(path)
        if found.status == 0:
            index = self.files.find_index(found.path)
            return (200, index) if index else (404, "")
        return found.status, found.path

    def _variants(self, path: str) -> list[tuple[str, str]]:
        return [
            (coding, path + suffix)
            for coding, suffix in _SIBLINGS
            if os.path.isfile(path + suffix) and self.files.may_serve(path + suffix)
        ]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "/"))
        under = path == self.prefix or path.startswith(self.prefix + "/")
        if not under or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        rest = path[len(self.prefix) :] or "/"
        status, found = await anyio.to_thread.run_sync(self._locate, rest)
        if status != 200:
            if self.pass_through:
                await self.app(scope, receive, send)
            else:
                text = {400: "Bad Request", 403: "Forbidden"}.get(status, "Not Found")
                await PlainTextResponse(text, status)(scope, receive, send)
            return
        variants = (
            await anyio.to_thread.run_sync(self._variants, found) if self.precompressed else []
        )
        headers: dict[str, str] = {}
        serve = found
        if variants:
            headers["vary"] = "Accept-Encoding"
            accept = Headers.from_scope(scope).get("accept-encoding")
            coding = negotiate_encoding(accept, [c for c, _ in variants])
            if coding is not None:
                serve = dict(variants)[coding]
                headers["content-encoding"] = coding
        response = FileResponse(serve, headers=headers, media_type=guess_media_type(found))
        await response(scope, receive, send)
