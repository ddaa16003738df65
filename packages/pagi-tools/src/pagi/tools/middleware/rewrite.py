"""Rewrite: change the request path by prefix or regex rules, or redirect to the new one.

``rules`` is a sequence of ``(from, to)`` pairs tried in order; the first
that matches wins. A ``str`` ``from`` is a prefix matched at a segment
boundary (``/old`` matches ``/old`` and ``/old/x``, not ``/older``) and the
rest of the path is kept: ``("/old", "/new")`` turns ``/old/x`` into
``/new/x``. A compiled ``re.Pattern`` is matched against the whole path and
``to`` is a template (``\\1``, ``\\g<name>``). Internally (the default) the
app sees a scope copy with the new ``path`` and ``raw_path`` and the old
path in ``pagi.original_path``; with ``redirect=True`` (301) or a 3xx
status, the client is sent there instead, query string kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError, copy_scope
from pagi.tools.response import RedirectResponse

__all__ = ["Rewrite"]

Rule = tuple["str | re.Pattern[str]", str]


class Rewrite(Middleware):
    """``Rewrite(app, rules, redirect=False)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(self, app: App, rules: Sequence[Rule], redirect: bool | int = False) -> None:
        super().__init__(app)
        if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence) or not rules:
            raise OptionError(
                "Rewrite", "rules", f"must be a list of (from, to) pairs, got {rules!r}"
            )
        checked: list[Rule] = []
        for rule in rules:
            if not (isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[1], str)):
                raise OptionError("Rewrite", "rules", f"has {rule!r}, not a (from, to) pair")
            source, target = rule
            if isinstance(source, str):
                if not source.startswith("/"):
                    raise OptionError("Rewrite", "rules", f"prefix {source!r} must start with '/'")
                checked.append((source.rstrip("/") or "/", target))
            elif isinstance(source, re.Pattern):
                checked.append((source, target))
            else:
                raise OptionError(
                    "Rewrite", "rules", f"'from' {source!r} is neither str nor re.Pattern"
                )
        self.rules = checked
        if redirect is True:
            self.redirect: int | None = 301
        elif redirect is False:
            self.redirect = None
        elif isinstance(redirect, int) and 300 <= redirect <= 399:
            self.redirect = redirect
        else:
            raise OptionError(
                "Rewrite", "redirect", f"must be a bool or a 3xx status, got {redirect!r}"
            )

    def rewrite(self, path: str) -> str | None:
        """The new path for ``path``, or ``None`` when no rule matches."""
        for source, target in self.rules:
            if isinstance(source, str):
                if source == "/" or path == source or path.startswith(source + "/"):
                    rest = path[len(source) :] if source != "/" else path
                    return target.rstrip("/") + rest if rest else target
            else:
                m = source.fullmatch(path)
                if m is not None:
                    return m.expand(target)
        return None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "/"))
        new = self.rewrite(path)
        if new is None or new == path:
            await self.app(scope, receive, send)
            return
        if self.redirect is not None and scope["type"] == "http":
            query = bytes(scope.get("query_string", b"")).decode("latin-1")
            location = str(scope.get("root_path", "")) + new + (f"?{query}" if query else "")
            await RedirectResponse(location, self.redirect)(scope, receive, send)
            return
        raw = quote(new, safe="/:@!$&'()*+,;=-._~%").encode("ascii")
        extra = {"pagi.original_path": path}
        await self.app(copy_scope(scope, extra, path=new, raw_path=raw), receive, send)
