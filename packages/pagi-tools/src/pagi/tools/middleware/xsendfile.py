"""XSendfile: let the front server (nginx, Apache, lighttpd) send whole files.

When the app answers 200 with a whole-file body (a ``file`` event from
offset 0 over the file's whole size), the body is dropped and ``header`` names the
file instead: ``X-Accel-Redirect`` for nginx (an internal URL: give
``mapping``), ``X-Sendfile`` for Apache's mod_xsendfile and
``X-Lighttpd-Send-File`` (a filesystem path). ``mapping`` maps filesystem
prefixes to URL prefixes (``{"/srv/files/": "/protected/"}``), longest
first; a file under none of them is sent by the app as usual. Partial
responses (206, or a sliced file) and other bodies pass through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import anyio.to_thread

from pagi.spec import App, Event, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError, ResponseStart

__all__ = ["XSendfile"]

_HEADERS = ("x-accel-redirect", "x-sendfile", "x-lighttpd-send-file")


class XSendfile(Middleware):
    """``XSendfile(app, header="x-accel-redirect", mapping=None)``."""

    def __init__(
        self, app: App, header: str = "x-accel-redirect", mapping: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(app)
        if not isinstance(header, str) or header.lower() not in _HEADERS:
            raise OptionError("XSendfile", "header", f"must be one of {_HEADERS}, got {header!r}")
        if mapping is not None and not isinstance(mapping, Mapping):
            raise OptionError("XSendfile", "mapping", f"must map paths to URLs, got {mapping!r}")
        self.header = header.lower()
        self.mapping = sorted((mapping or {}).items(), key=lambda m: len(m[0]), reverse=True)

    def target(self, path: str) -> str | None:
        """The header value for ``path``; ``None`` when no mapping covers it."""
        if not self.mapping:
            return path
        for prefix, url in self.mapping:
            if path.startswith(prefix):
                return url + path[len(prefix) :]
        return None

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        held: ResponseStart | None = None
        passing = False

        async def sendfile_send(event: Event) -> None:
            nonlocal held, passing
            kind = event.get("type")
            if passing:
                await send(event)
                return
            if kind == "http.response.start":
                start = ResponseStart(event)
                if start.status != 200 or event.get("trailers"):
                    passing = True
                    await send(event)
                else:
                    held = start
                return
            if held is None:
                await send(event)
                return
            start, held, passing = held, None, True
            value = await self._whole_file(event)
            if value is None:
                await send(start.to_event())
                await send(event)
                return
            start.headers[self.header] = value
            start.headers["content-length"] = "0"
            await send(start.to_event())
            await send({"type": "http.response.body", "body": b""})

        return sendfile_send

    async def _whole_file(self, event: Event) -> str | None:
        """The header value when ``event`` is a whole ``file`` body covered by the mapping."""
        if event.get("type") != "http.response.body" or "file" not in event or event.get("offset"):
            return None
        path = os.fspath(event["file"])
        length = event.get("length")
        if length is not None:
            try:
                size = (await anyio.to_thread.run_sync(os.stat, path)).st_size
            except OSError:
                return None
            if int(length) != size:
                return None
        return self.target(path)
