"""Field-level validation of PAGI events.

Theory of operation
-------------------
Every event type the specification defines is described once, in
``_SEND_RULES`` and ``_RECEIVE_RULES``: a tuple of ``_Field`` rules (name,
kind, required) plus an optional whole-event check for rules that span
fields ("exactly one of ``bytes``/``text``"). ``validate_send_event`` and
``validate_receive_event`` look the rules up by ``(scope type, event type)``
and apply them; nothing else in PAGI spells these rules again. The server
calls ``validate_send_event`` on every ``send``, the Lint middleware and the
test client do the same, so the three agree by construction.

Keys that are not in a rule are never looked at (R-ERR-5: forward
compatibility), with one exception: the keys ASGI spells differently
(``ASGI_RENAMED_KEYS``). An ASGI application run as a PAGI one by mistake
would otherwise be half understood (``more_body`` ignored, so a streamed
body ends after its first chunk), so a sent event carrying one raises with
the PAGI spelling and the way to run ASGI apps. A key whose value is
``None`` counts as absent for optional fields, following the Perl
``undef`` convention.

Ordering rules (which event may follow which) live in ``pagi.spec.states``.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pagi.spec.constants import MAX_INT64, MIN_INT64
from pagi.spec.errors import EventError

__all__ = [
    "ASGI_EVENT_TYPES",
    "ASGI_RENAMED_KEYS",
    "receive_event_types",
    "send_event_types",
    "validate_header_name",
    "validate_header_value",
    "validate_headers",
    "validate_receive_event",
    "validate_send_event",
]

# RFC 9110 token characters: what a header field name may contain.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field values: any byte but the C0 controls (HTAB allowed) and DEL. CR, LF and
# NUL are the ones R-HTTP-30 names; the rest are refused for the same reason.
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


#: Keys of sent events that ASGI spells differently, with what PAGI uses instead.
ASGI_RENAMED_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "more_body": "'more'",
        "more_trailers": "one http.response.trailers event carrying every trailer (no 'more')",
    }
)
#: ASGI event types whose job a PAGI event does under another name.
ASGI_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "http.response.pathsend": "http.response.body with 'file' (the path)",
        "http.response.zerocopysend": (
            "http.response.body with 'fh' (ASGI's 'file'), 'offset' and 'length' (ASGI's 'count')"
        ),
    }
)
_RUN_ASGI = (
    "this looks like an ASGI application: run it with `pagi-server --interface asgi` "
    "or wrap it in pagi.tools.asgi.ASGIApp"
)


def _refuse_asgi_keys(event: Mapping[str, Any], event_type: str) -> None:
    if "more_body" not in event and "more_trailers" not in event:
        return  # the common case, on every send: two lookups and no loop
    for key, pagi_spelling in ASGI_RENAMED_KEYS.items():
        if key in event:
            raise EventError(
                event_type,
                key,
                f"is ASGI's spelling; PAGI uses {pagi_spelling} ({_RUN_ASGI})",
            )


def validate_header_name(name: object, event_type: str, field: str = "headers") -> bytes:
    """Check one header name; return it. Raises ``EventError`` naming ``field``."""
    if type(name) is not bytes:
        raise EventError(event_type, field, f"header name must be bytes, got {_tname(name)}")
    if _TOKEN.fullmatch(name) is None:
        if not name:
            raise EventError(event_type, field, "header name is empty")
        raise EventError(
            event_type,
            field,
            f"header name {name!r} contains a byte that is not allowed in a field name "
            "(CR, LF, NUL, other control characters, spaces and separators are refused)",
        )
    return name


def validate_header_value(value: object, event_type: str, field: str = "headers") -> bytes:
    """Check one header value; return it. Raises ``EventError`` naming ``field``."""
    if type(value) is not bytes:
        raise EventError(event_type, field, f"header value must be bytes, got {_tname(value)}")
    bad = _BAD_VALUE_BYTE.search(value)
    if bad is not None:
        raise EventError(
            event_type,
            field,
            f"header value {value[:40]!r} contains the control byte {bad.group()!r}; "
            "CR, LF and NUL never reach the wire (R-HTTP-30)",
        )
    return value


def validate_headers(headers: object, event_type: str, field: str = "headers") -> None:
    """Check a header list: a sequence of ``(name, value)`` byte pairs (R-HDR-1..4)."""
    if not isinstance(headers, (list, tuple)):
        raise EventError(
            event_type, field, f"must be a list of (name, value) pairs, got {_tname(headers)}"
        )
    for pair in headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise EventError(event_type, field, f"each header must be a 2-item pair, got {pair!r}")
        validate_header_name(pair[0], event_type, field)
        validate_header_value(pair[1], event_type, field)


def _tname(value: object) -> str:
    return type(value).__name__


# --- value kinds -------------------------------------------------------------
# Each checker takes (value, event_type, field) and raises EventError.

_Checker = Callable[[Any, str, str], None]


def _is_int(value: object) -> bool:
    # int subclasses such as http.HTTPStatus are ints; bool is not a number here.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value: Any, event_type: str, field: str) -> None:
    if not _is_int(value):
        raise EventError(event_type, field, f"must be an int, got {_tname(value)}")
    if not MIN_INT64 <= value <= MAX_INT64:
        raise EventError(event_type, field, "is outside the signed 64-bit range (R-DATA-4)")


def _check_nonneg_int(value: Any, event_type: str, field: str) -> None:
    _check_int(value, event_type, field)
    if value < 0:
        raise EventError(event_type, field, f"must be a non-negative int, got {value}")


def _check_status(value: Any, event_type: str, field: str) -> None:
    _check_int(value, event_type, field)
    if not 200 <= value <= 599:
        raise EventError(
            event_type, field, f"must be a final HTTP status code (200-599), got {value}"
        )


def _check_flag(value: Any, event_type: str, field: str) -> None:
    # R-DATA-5 and A-40: flags are 0/1; Python's bool is an int and is accepted.
    if not isinstance(value, int) or value not in (0, 1):
        raise EventError(event_type, field, f"must be a bool or 0/1, got {value!r}")


def _check_number(value: Any, event_type: str, field: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventError(
                event_type, field, "must be finite; NaN and infinities are not allowed (R-DATA-6)"
            )
        return
    if not _is_int(value):
        raise EventError(event_type, field, f"must be a number, got {_tname(value)}")
    if not MIN_INT64 <= value <= MAX_INT64:
        raise EventError(event_type, field, "is outside the signed 64-bit range (R-DATA-4)")


def _check_nonneg_number(value: Any, event_type: str, field: str) -> None:
    _check_number(value, event_type, field)
    if value < 0:
        raise EventError(event_type, field, f"must not be negative, got {value}")


def _check_str(value: Any, event_type: str, field: str) -> None:
    if not isinstance(value, str):
        raise EventError(event_type, field, f"must be a str, got {_tname(value)}")


def _check_line_str(value: Any, event_type: str, field: str) -> None:
    # R-SSE-31: a newline in an SSE field would end the field early and let the
    # rest of the text be read as another field or event.
    _check_str(value, event_type, field)
    if "\n" in value or "\r" in value or "\0" in value:
        raise EventError(event_type, field, "must not contain CR, LF or NUL (R-SSE-31)")


def _check_bytes(value: Any, event_type: str, field: str) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        hint = "; encode text first (R-DATA-8)" if isinstance(value, str) else ""
        raise EventError(event_type, field, f"must be bytes, got {_tname(value)}{hint}")


def _check_path(value: Any, event_type: str, field: str) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise EventError(event_type, field, f"must be a str or os.PathLike, got {_tname(value)}")


def _check_fh(value: Any, event_type: str, field: str) -> None:
    if not (callable(getattr(value, "read", None)) or hasattr(value, "fileno")):
        raise EventError(event_type, field, f"must be a binary file object, got {_tname(value)}")
    if isinstance(value, io.TextIOBase):
        raise EventError(
            event_type, field, "is a text-mode file; open it in binary mode ('rb') (R-DATA-8)"
        )
    if getattr(value, "closed", False):
        raise EventError(event_type, field, "file object is closed (R-HFILE-7)")


def _check_headers(value: Any, event_type: str, field: str) -> None:
    validate_headers(value, event_type, field)


def _check_subprotocol(value: Any, event_type: str, field: str) -> None:
    # The subprotocol is written as the Sec-WebSocket-Protocol header, so the
    # header rules apply (R-HTTP-34); RFC 6455 4.1 makes it an RFC 9110 token.
    _check_str(value, event_type, field)
    if _TOKEN.fullmatch(value.encode("utf-8", "surrogateescape")) is None:
        raise EventError(
            event_type,
            field,
            f"{value!r} is not a token (letters, digits and !#$%&'*+-.^_`|~ only); "
            "it becomes the Sec-WebSocket-Protocol header",
        )


def _check_close_code(value: Any, event_type: str, field: str) -> None:
    _check_int(value, event_type, field)
    # RFC 6455 7.4: 1004-1006 and 1015 are reserved and never sent; codes
    # below 1000 and from 5000 up are not defined.
    if not (1000 <= value <= 4999) or value in (1004, 1005, 1006, 1015) or 1016 <= value <= 2999:
        raise EventError(
            event_type,
            field,
            f"{value} is not a close code an endpoint may send (RFC 6455 section 7.4)",
        )


def _check_any_close_code(value: Any, event_type: str, field: str) -> None:
    _check_int(value, event_type, field)
    if not 1000 <= value <= 4999:
        raise EventError(event_type, field, f"{value} is not an RFC 6455 close code (R-WS-30)")


# --- whole-event checks ------------------------------------------------------


def _at_most_one_body_source(event: Mapping[str, Any], event_type: str) -> None:
    present = [k for k in ("body", "file", "fh") if event.get(k) is not None]
    if len(present) > 1:
        raise EventError(
            event_type,
            present[1],
            f"cannot be combined with {present[0]!r}: send one of body, file or fh (R-HTTP-25)",
        )


def _exactly_one_payload(event: Mapping[str, Any], event_type: str) -> None:
    has_bytes = event.get("bytes") is not None
    has_text = event.get("text") is not None
    if has_bytes == has_text:
        which = "both" if has_bytes else "neither"
        raise EventError(
            event_type,
            "bytes" if has_bytes else "text",
            f"exactly one of 'bytes' and 'text' must be set, {which} were (R-WS-13/14)",
        )


def _close_reason_fits(event: Mapping[str, Any], event_type: str) -> None:
    reason = event.get("reason")
    if reason is not None and len(reason.encode("utf-8", "surrogatepass")) > 123:
        raise EventError(
            event_type, "reason", "is longer than the 123 UTF-8 bytes a close frame can carry"
        )


class _Field:
    __slots__ = ("check", "name", "required")

    def __init__(self, name: str, check: _Checker, required: bool = False) -> None:
        self.name = name
        self.check = check
        self.required = required


_F = _Field
_Rules = tuple[tuple[_Field, ...], Callable[[Mapping[str, Any], str], None] | None]

_SEND_RULES: dict[str, dict[str, _Rules]] = {
    "http": {
        "http.response.start": (
            (
                _F("status", _check_status, True),
                _F("headers", _check_headers),
                _F("trailers", _check_flag),
            ),
            None,
        ),
        "http.response.body": (
            (
                _F("body", _check_bytes),
                _F("file", _check_path),
                _F("fh", _check_fh),
                _F("offset", _check_nonneg_int),
                _F("length", _check_nonneg_int),
                _F("more", _check_flag),
            ),
            _at_most_one_body_source,
        ),
        "http.response.trailers": ((_F("headers", _check_headers),), None),
        "http.fullflush": ((), None),
    },
    "websocket": {
        "websocket.accept": (
            (_F("subprotocol", _check_subprotocol), _F("headers", _check_headers)),
            None,
        ),
        "websocket.send": (
            (_F("bytes", _check_bytes), _F("text", _check_str)),
            _exactly_one_payload,
        ),
        "websocket.close": (
            (_F("code", _check_close_code), _F("reason", _check_str)),
            _close_reason_fits,
        ),
        "websocket.keepalive": (
            (_F("interval", _check_nonneg_number, True), _F("timeout", _check_nonneg_number)),
            None,
        ),
        "websocket.http.response.start": (
            (_F("status", _check_status, True), _F("headers", _check_headers)),
            None,
        ),
        "websocket.http.response.body": (
            (_F("body", _check_bytes), _F("more", _check_flag)),
            None,
        ),
    },
    "sse": {
        "sse.start": ((_F("status", _check_status), _F("headers", _check_headers)), None),
        "sse.send": (
            (
                _F("data", _check_str, True),
                _F("event", _check_line_str),
                _F("id", _check_line_str),
                _F("retry", _check_nonneg_int),
            ),
            None,
        ),
        "sse.comment": ((_F("comment", _check_str),), None),
        "sse.keepalive": (
            (_F("interval", _check_nonneg_number, True), _F("comment", _check_str)),
            None,
        ),
        "sse.close": ((_F("reason", _check_str),), None),
        "sse.http.response.start": (
            (_F("status", _check_status, True), _F("headers", _check_headers)),
            None,
        ),
        "sse.http.response.body": ((_F("body", _check_bytes), _F("more", _check_flag)), None),
    },
    "lifespan": {
        "lifespan.startup.complete": ((), None),
        "lifespan.startup.failed": ((_F("message", _check_str),), None),
        "lifespan.shutdown.complete": ((), None),
        "lifespan.shutdown.failed": ((_F("message", _check_str),), None),
    },
}

_RECEIVE_RULES: dict[str, dict[str, _Rules]] = {
    "http": {
        "http.request": ((_F("body", _check_bytes), _F("more", _check_flag)), None),
        "http.disconnect": ((), None),
    },
    "websocket": {
        "websocket.connect": ((), None),
        "websocket.receive": (
            (_F("bytes", _check_bytes), _F("text", _check_str)),
            _exactly_one_payload,
        ),
        "websocket.disconnect": (
            (_F("code", _check_any_close_code, True), _F("reason", _check_str)),
            None,
        ),
    },
    "sse": {
        "sse.request": ((_F("body", _check_bytes), _F("more", _check_flag)), None),
        "sse.disconnect": ((_F("reason", _check_str, True),), None),
    },
    "lifespan": {
        "lifespan.startup": ((), None),
        "lifespan.shutdown": ((), None),
    },
}


def send_event_types(scope_type: str) -> frozenset[str]:
    """The event types an application may send on a scope of ``scope_type``."""
    return frozenset(_SEND_RULES.get(scope_type, ()))


def receive_event_types(scope_type: str) -> frozenset[str]:
    """The event types a server may hand an application on a scope of ``scope_type``."""
    return frozenset(_RECEIVE_RULES.get(scope_type, ()))


def _validate(
    table: dict[str, dict[str, _Rules]], scope_type: str, event: object, direction: str
) -> str:
    if not isinstance(event, Mapping):
        raise EventError(None, None, f"must be a dict, got {_tname(event)}")
    event_type = event.get("type")
    if type(event_type) is not str:
        if event_type is None:
            raise EventError(None, "type", "is missing: every event needs a 'type' (R-CORE-30)")
        raise EventError(None, "type", f"must be a str, got {_tname(event_type)}")
    per_scope = table.get(scope_type)
    if per_scope is None:
        raise EventError(event_type, None, f"belongs to no known scope type ({scope_type!r})")
    rules = per_scope.get(event_type)
    if rules is None:
        problem = f"is not an event a {scope_type} application can {direction} (R-ERR-3)"
        pagi_name = ASGI_EVENT_TYPES.get(event_type) if direction == "send" else None
        if pagi_name is not None:
            problem += f"; it is an ASGI event, PAGI sends {pagi_name} ({_RUN_ASGI})"
        raise EventError(event_type, "type", problem)
    if direction == "send":
        _refuse_asgi_keys(event, event_type)
    fields, whole = rules
    for rule in fields:
        value = event.get(rule.name)
        if value is None:
            if rule.required:
                raise EventError(event_type, rule.name, "is required but missing (R-ERR-1)")
            continue
        rule.check(value, event_type, rule.name)
    if whole is not None:
        whole(event, event_type)
    return event_type


def plainly_valid(event: dict[str, Any]) -> bool:
    """True for the few event shapes apps send most, when they are certainly valid.

    A response start with an int status and a list of ``(bytes, bytes)``
    header tuples, a response body chunk (``body`` bytes, optional bool
    ``more``), a text or binary WebSocket message, and an SSE event with only
    ``data``: the shape alone shows that :func:`validate_send_event` would
    accept them, so :class:`~pagi.spec.SendMachine` skips it (it runs on
    every send). Any other key or type returns ``False`` and takes the full
    path, with its messages. The order of events is not judged here.
    """
    size = len(event)
    kind = event.get("type")
    if kind == "http.response.body":
        if type(event.get("body")) is not bytes:
            return False
        if size == 2:
            return True
        return size == 3 and type(event.get("more")) is bool
    if kind == "http.response.start":
        status = event.get("status")
        if type(status) is not int or not 200 <= status <= 599:
            return False
        if size == 2:
            return True
        headers = event.get("headers")
        if size != 3 or type(headers) is not list:
            return False
        token, bad = _TOKEN.fullmatch, _BAD_VALUE_BYTE.search
        for pair in headers:
            if type(pair) is not tuple or len(pair) != 2:
                return False
            name, value = pair
            if (
                type(name) is not bytes
                or type(value) is not bytes
                or token(name) is None
                or bad(value) is not None
            ):
                return False
        return True
    if size != 2:
        return False
    if kind == "websocket.send":
        return type(event.get("text")) is str or type(event.get("bytes")) is bytes
    if kind == "sse.send":
        return type(event.get("data")) is str
    return False


def validate_send_event(scope_type: str, event: object) -> str:
    """Validate an event an application sends; return its type.

    Raises :class:`~pagi.spec.EventError` naming the event type and the
    offending field when the event is not a dict, lacks ``type`` or a
    required field, has a field of the wrong type or out of range, carries
    header bytes that may not reach the wire, or has a type that
    ``scope_type`` does not define (R-ERR-1..3). Unknown extra keys are
    ignored (R-ERR-5), except the ASGI spellings of PAGI keys
    (``ASGI_RENAMED_KEYS``, e.g. ``more_body``), which raise with a message
    naming the PAGI key and ``--interface asgi``. Ordering is checked separately by
    :mod:`pagi.spec.states`.
    """
    return _validate(_SEND_RULES, scope_type, event, "send")


def validate_receive_event(scope_type: str, event: object) -> str:
    """Validate an event a server hands to an application; return its type.

    Middleware and test clients use this to check what they inject into
    ``receive`` (R-ERR-4). Raises :class:`~pagi.spec.EventError` as
    :func:`validate_send_event` does.
    """
    return _validate(_RECEIVE_RULES, scope_type, event, "receive")
