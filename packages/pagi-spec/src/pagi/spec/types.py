"""The application interface and the two per-scope handles, as types.

``App``, ``Receive`` and ``Send`` describe ``async def app(scope, receive,
send)`` (R-CORE-10..12). ``ConnectionState`` is the ``pagi.connection``
object of every ``http`` scope (Www, R-CONN-*), and ``Transport`` the
``pagi.transport`` flow-control handle (R-FLOW-*). The TypedDicts for each
scope and event live in :mod:`pagi.spec.scopes` and :mod:`pagi.spec.events`.

Scopes and events are typed loosely here on purpose: an application receives
plain dicts and middleware adds its own keys, so the signatures take any
string-keyed mapping; the TypedDicts are for code that wants precision.

``Event`` is a read-only ``Mapping`` rather than a ``dict``: a ``send``
implementation must accept whatever mapping the application hands it,
including the TypedDicts (which a type checker does not treat as
``MutableMapping``), and it has no business changing the caller's event.
Middleware that wants to alter an event copies it first (``dict(event)``),
exactly as it does with the scope (R-MW-2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["App", "ConnectionState", "Event", "Receive", "Scope", "Send", "Transport"]

#: A connection scope: a dict with at least ``type`` (R-CORE-20).
Scope: TypeAlias = MutableMapping[str, Any]
#: An event: a mapping with at least ``type`` (R-CORE-30); in practice a dict.
Event: TypeAlias = Mapping[str, Any]
#: ``receive()``: no arguments, resolves to the next event (R-CORE-11).
Receive: TypeAlias = Callable[[], Awaitable[Event]]
#: ``send(event)``: one event, resolves when the server has taken it (R-CORE-12).
Send: TypeAlias = Callable[[Event], Awaitable[None]]
#: A PAGI application (R-CORE-10).
App: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


@runtime_checkable
class ConnectionState(Protocol):
    """``scope["pagi.connection"]``: one request's connection state (R-CONN-*).

    Every method is synchronous and never consumes from ``receive``
    (R-CONN-6).
    """

    def is_connected(self) -> bool:
        """True while the request is open; false for good once it ends (R-CONN-32)."""
        ...

    def disconnect_reason(self) -> str | None:
        """The standard reason after an abnormal end, else ``None`` (R-CONN-31)."""
        ...

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(reason)`` on an abnormal end; at once if it already happened."""
        ...

    def on_complete(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the response was fully sent (never with on_disconnect)."""
        ...

    def response_started(self) -> bool:
        """True once ``http.response.start`` was processed, by the app or the server."""
        ...

    def response_complete(self) -> bool | None:
        """True once the final body or trailers went out; ``None`` if not tracked."""
        ...

    def disconnect_future(self) -> Awaitable[str] | None:
        """An awaitable resolving with the reason on an abnormal end; ``None`` if unsupported.

        It never resolves on a successful completion (R-CONN-20).
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """``scope["pagi.transport"]``: outbound flow-control introspection (R-FLOW-*)."""

    def buffered_amount(self) -> int:
        """Bytes accepted from the app and not yet written to the socket."""
        ...

    def high_water_mark(self) -> int | None:
        """At or above this many buffered bytes, ``send`` blocks."""
        ...

    def low_water_mark(self) -> int | None:
        """A blocked ``send`` resumes once the buffer falls below this."""
        ...

    def on_high_water(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` on each upward crossing of the high mark (R-FLOW-14)."""
        ...

    def on_drain(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` on each fall below the low mark after a high (R-FLOW-15)."""
        ...
