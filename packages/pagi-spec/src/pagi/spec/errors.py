"""Exceptions raised when an event breaks the specification.

A server raises these from ``send`` (R-ERR-1..3, R-HTTP-32); the Lint
middleware and the test client raise the same ones, so an application sees
one error vocabulary whichever of them it runs under.
"""

from __future__ import annotations

__all__ = ["EventError", "EventOrderError"]


class EventError(ValueError):
    """An event is malformed: missing or mistyped field, unknown type, unsafe bytes.

    ``event_type`` is the event's ``type`` (or ``None`` when it has none) and
    ``field`` the offending key (or ``None`` when the event as a whole is at
    fault). The message always names both, so a traceback alone is enough to
    find the bug.
    """

    def __init__(self, event_type: str | None, field: str | None, problem: str) -> None:
        self.event_type = event_type
        self.field = field
        self.problem = problem
        where = event_type if event_type is not None else "event"
        if field is not None:
            where = f"{where}: {field!r}"
        super().__init__(f"{where} {problem}")


class EventOrderError(EventError):
    """A well-formed event that is illegal in the scope's current send state.

    For example a second ``http.response.start``, ``sse.send`` after
    ``sse.close`` (R-SSE-52) or ``sse.http.response.start`` after
    ``sse.start`` (R-SSE-63). ``state`` names the state the event met.
    """

    def __init__(self, event_type: str, state: str, problem: str) -> None:
        self.state = state
        super().__init__(event_type, None, problem)
