"""The Lint middleware: check an app and its server against the specification.

``Lint(app)`` validates, on every scope:

* the scope the server built (required keys and their types, header lists,
  ``pagi.connection`` on http scopes);
* every event the server hands the app (``validate_receive_event``);
* every event the app sends, fields *and* order, with the spec's own
  :class:`~pagi.spec.SendMachine` -- the same tables the server uses, so
  Lint never disagrees with it, it just fails earlier and louder;
* on return: an http app that sent no complete response while the client
  was still there (the server would have to invent a 500, R-CORE-44), and
  an app that changed its scope in place instead of copying it (R-MW-2).

Problems raise :class:`LintError`, an :class:`~pagi.spec.EventError`
whose message says which side broke which rule. ``pagi-server --env
development`` wraps apps in ``Lint`` automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pagi.spec import (
    App,
    EventError,
    Receive,
    Scope,
    Send,
    SendMachine,
    validate_headers,
    validate_receive_event,
)

__all__ = ["Lint", "LintError"]

_KNOWN = ("http", "websocket", "sse", "lifespan")


class LintError(EventError):
    """A specification violation Lint caught; ``side`` is ``"app"`` or ``"server"``."""

    def __init__(self, side: str, event_type: str | None, field: str | None, problem: str) -> None:
        self.side = side
        super().__init__(event_type, field, f"{problem} [Lint: the {side} broke this rule]")


def _need(
    scope: Mapping[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False
) -> None:
    if key not in scope:
        if optional:
            return
        raise LintError("server", f"{scope.get('type')} scope", key, "is missing")
    if not isinstance(scope[key], kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LintError(
            "server",
            f"{scope.get('type')} scope",
            key,
            f"must be {names}, got {type(scope[key]).__name__}",
        )


def check_scope(scope: Mapping[str, Any]) -> None:
    """Raise :class:`LintError` if ``scope`` lacks a required key or has a wrongly typed one."""
    kind = scope.get("type")
    if kind not in _KNOWN:
        raise LintError("server", "scope", "type", f"is {kind!r}, not one of {_KNOWN}")
    info = scope.get("pagi")
    if not isinstance(info, Mapping) or not isinstance(info.get("version"), str):
        raise LintError(
            "server", f"{kind} scope", "pagi", "must be a dict with a str 'version' (R-CORE-1)"
        )
    if kind == "lifespan":
        _need(scope, "state", dict, optional=True)
        return
    _need(scope, "path", str)
    _need(scope, "query_string", (bytes, bytearray))
    _need(scope, "headers", (list, tuple))
    _need(scope, "raw_path", (bytes, bytearray), optional=True)
    _need(scope, "root_path", str, optional=True)
    _need(scope, "scheme", str, optional=True)
    _need(scope, "http_version", str, optional=True)
    _need(scope, "extensions", dict, optional=True)
    _need(scope, "state", dict, optional=True)
    try:
        validate_headers(scope["headers"], f"{kind} scope")
    except EventError as exc:
        raise LintError("server", f"{kind} scope", "headers", exc.problem) from None
    for name, _ in scope["headers"]:
        if bytes(name) != bytes(name).lower():
            raise LintError(
                "server", f"{kind} scope", "headers", f"name {name!r} is not lower-case (R-HDR-2)"
            )
    if kind in ("http", "sse"):
        _need(scope, "method", str)
        if scope["method"] != scope["method"].upper():
            raise LintError("server", f"{kind} scope", "method", "must be upper-case (R-HTTP-2)")
    if kind == "http" and "pagi.connection" not in scope:
        raise LintError("server", "http scope", "pagi.connection", "is missing (R-CONN-1)")
    if kind == "websocket":
        _need(scope, "subprotocols", (list, tuple), optional=True)


class Lint:
    """Wrap ``app`` and raise :class:`LintError` at the first specification violation."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check_scope(scope)
        kind = str(scope["type"])
        machine = SendMachine(kind, scope.get("extensions"))
        snapshot = {key: id(value) for key, value in scope.items()}

        async def checked_receive() -> Mapping[str, Any]:
            event = await receive()
            try:
                validate_receive_event(kind, event)
            except EventError as exc:
                raise LintError("server", exc.event_type, exc.field, exc.problem) from None
            return event

        async def checked_send(event: Mapping[str, Any]) -> None:
            try:
                machine.send(event)
            except EventError as exc:
                raise LintError("app", exc.event_type, exc.field, exc.problem) from None
            await send(event)

        await self.app(scope, checked_receive, checked_send)
        # Keys added later are allowed (helpers cache parsed data in the scope);
        # replacing or deleting what the server put there is what R-MW-2 forbids.
        changed = sorted(
            key for key in snapshot if key not in scope or snapshot[key] != id(scope[key])
        )
        if changed:
            raise LintError(
                "app",
                f"{kind} scope",
                changed[0],
                f"was changed in place (keys {changed}); copy it first: dict(scope) (R-MW-2)",
            )
        if kind == "http" and not machine.finished:
            connection = scope.get("pagi.connection")
            if connection is None or connection.is_connected():
                started = machine.state != "init"
                if started:
                    raise LintError(
                        "app",
                        "http.response.body",
                        None,
                        "the app returned in the middle of its response "
                        "(no final body with more=False)",
                    )
                raise LintError(
                    "app",
                    "the http app",
                    None,
                    "returned without sending a response (no http.response.start was "
                    "sent); did it forget to `await` a send() or a response? (R-CORE-45)",
                )
