"""The package as a whole: stdlib only, complete ``__all__``, types agree with rules."""

from __future__ import annotations

import asyncio
import importlib
import json
import pathlib
import re
import subprocess
import sys
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import pagi.spec
from pagi.spec import ConnectionState, SendMachine, Transport, events, scopes, validation

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "pagi.spec",
    "pagi.spec.constants",
    "pagi.spec.errors",
    "pagi.spec.events",
    "pagi.spec.scopes",
    "pagi.spec.states",
    "pagi.spec.types",
    "pagi.spec.validation",
]


def test_imports_only_the_standard_library() -> None:
    """ARCHITECTURE 3: ``pagi.spec`` has zero dependencies, at import time too."""
    probe = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"for name in {MODULES!r}:\n"
        "    __import__(name)\n"
        "new = sorted({m.split('.')[0] for m in set(sys.modules) - before})\n"
        "print(json.dumps(new))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    foreign = [m for m in loaded if m != "pagi" and m not in sys.stdlib_module_names]
    assert foreign == [], f"pagi.spec imported non-stdlib modules: {foreign}"
    assert "pagi" in loaded


def test_declares_no_dependencies() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    assert project["requires-python"] == ">=3.10"


def test_is_a_namespace_package() -> None:
    """ARCHITECTURE 2: no ``pagi/__init__.py``, so the distributions coexist."""
    assert not (PACKAGE_ROOT / "src" / "pagi" / "__init__.py").exists()
    assert (PACKAGE_ROOT / "src" / "pagi" / "spec" / "py.typed").exists()


@pytest.mark.parametrize("module_name", MODULES)
def test_all_attributes(module_name: str) -> None:
    """Every name in ``__all__`` exists, once."""
    module = importlib.import_module(module_name)
    names = module.__all__
    assert len(names) == len(set(names)), "duplicate names in __all__"
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def test_top_level_reexports_are_the_same_objects() -> None:
    for name in pagi.spec.__all__:
        obj = getattr(pagi.spec, name)
        for module_name in MODULES[1:]:
            module = importlib.import_module(module_name)
            if name in module.__all__:
                assert getattr(module, name) is obj, name


def test_every_module_has_a_docstring() -> None:
    for module_name in MODULES:
        assert importlib.import_module(module_name).__doc__, module_name


# --------------------------------------------------------------------------
# TypedDicts agree with the validator's rules
# --------------------------------------------------------------------------


def _event_classes() -> list[type]:
    return [
        getattr(events, name)
        for name in events.__all__
        if isinstance(getattr(events, name), type) and name.endswith("Event")
    ]


def _literal_type(cls: type) -> str:
    (value,) = typing.get_args(typing.get_type_hints(cls)["type"])
    assert isinstance(value, str)
    return value


def _rules_for(event_type: str) -> tuple[str, Any]:
    scope_type = event_type.split(".", 1)[0]
    for table in (validation._SEND_RULES, validation._RECEIVE_RULES):
        rules = table.get(scope_type, {}).get(event_type)
        if rules is not None:
            return scope_type, rules
    raise AssertionError(f"{event_type} has no validation rule")


def test_one_typeddict_per_event_type() -> None:
    typed = {_literal_type(cls) for cls in _event_classes()}
    ruled = {
        event_type
        for table in (validation._SEND_RULES, validation._RECEIVE_RULES)
        for per_scope in table.values()
        for event_type in per_scope
    }
    assert typed == ruled


@pytest.mark.parametrize("cls", _event_classes(), ids=lambda c: c.__name__)
def test_typeddict_keys_match_the_rules(cls: Any) -> None:
    """Required keys of each TypedDict are exactly the validator's required fields."""
    event_type = _literal_type(cls)
    _, (fields, _whole) = _rules_for(event_type)
    assert cls.__required_keys__ - {"type"} == {f.name for f in fields if f.required}
    assert set(cls.__optional_keys__) == {f.name for f in fields if not f.required}
    assert "type" in cls.__required_keys__
    assert cls.__doc__ and "R-" in cls.__doc__, "docstring must cite requirement ids"


def test_event_class_names_follow_their_type() -> None:
    for cls in _event_classes():
        camel = "".join(
            {"http": "HTTP", "sse": "SSE", "websocket": "WebSocket"}.get(part, part.capitalize())
            for part in re.split(r"[._]", _literal_type(cls))
        )
        camel = camel.replace("Fullflush", "FullFlush")
        assert cls.__name__ == camel + "Event"


@pytest.mark.parametrize(
    ("cls", "scope_type"),
    [
        (scopes.HTTPScope, "http"),
        (scopes.WebSocketScope, "websocket"),
        (scopes.SSEScope, "sse"),
        (scopes.LifespanScope, "lifespan"),
    ],
)
def test_scope_typeddicts(cls: Any, scope_type: str) -> None:
    hints = typing.get_type_hints(cls)
    assert typing.get_args(hints["type"]) == (scope_type,)
    assert {"type", "pagi"} <= cls.__required_keys__
    assert cls.__doc__ and "R-" in cls.__doc__
    if scope_type == "http":
        assert "pagi.connection" in cls.__required_keys__  # R-CONN-1
        assert {"method", "http_version", "path", "query_string", "headers"} <= (
            cls.__required_keys__
        )
    else:
        assert "pagi.connection" not in hints  # R-CONN-17
    if scope_type in ("http", "websocket", "sse"):
        assert "pagi.transport" in cls.__optional_keys__  # R-FLOW-1/2
        assert "tls" not in hints


def test_pagi_info_and_tls_info() -> None:
    assert scopes.PagiInfo.__required_keys__ == {"version"}
    assert scopes.PagiInfo.__optional_keys__ == {"spec_version"}
    assert {"is_worker", "worker_num"} <= scopes.LifespanPagiInfo.__optional_keys__
    assert scopes.TLSInfo.__required_keys__ == {
        "server_cert",
        "client_cert_chain",
        "client_cert_name",
        "client_cert_error",
        "tls_version",
        "cipher_suite",
    }


def test_unions_cover_each_direction() -> None:
    def members(union: Any) -> set[str]:
        return {_literal_type(cls) for cls in typing.get_args(union)}

    for scope_type, incoming, outgoing in [
        ("http", events.HTTPIncomingEvent, events.HTTPOutgoingEvent),
        ("websocket", events.WebSocketIncomingEvent, events.WebSocketOutgoingEvent),
        ("sse", events.SSEIncomingEvent, events.SSEOutgoingEvent),
        ("lifespan", events.LifespanIncomingEvent, events.LifespanOutgoingEvent),
    ]:
        assert members(incoming) == validation.receive_event_types(scope_type)
        assert members(outgoing) == validation.send_event_types(scope_type)
    assert len(typing.get_args(events.IncomingEvent)) == 9
    assert len(typing.get_args(events.OutgoingEvent)) == 21


# --------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------


class _Connection:
    def is_connected(self) -> bool:
        return True

    def disconnect_reason(self) -> str | None:
        return None

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        pass

    def on_complete(self, callback: Callable[[], object]) -> None:
        pass

    def response_started(self) -> bool:
        return False

    def response_complete(self) -> bool | None:
        return None

    def disconnect_future(self) -> Awaitable[str] | None:
        return None


class _Transport:
    def buffered_amount(self) -> int:
        return 0

    def high_water_mark(self) -> int | None:
        return None

    def low_water_mark(self) -> int | None:
        return None

    def on_high_water(self, callback: Callable[[], object]) -> None:
        pass

    def on_drain(self, callback: Callable[[], object]) -> None:
        pass


def test_connection_and_transport_protocols_are_runtime_checkable() -> None:
    assert isinstance(_Connection(), ConnectionState)
    assert isinstance(_Transport(), Transport)
    assert not isinstance(object(), ConnectionState)
    assert not isinstance(_Connection(), Transport)


# --------------------------------------------------------------------------
# The README example runs
# --------------------------------------------------------------------------


def test_readme_example_runs() -> None:
    """The raw application in README.md answers a request through SendMachine."""
    readme = (PACKAGE_ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S)
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    app = namespace["app"]

    machine = SendMachine("http")
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "http.request", "body": b"", "more": False}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(event: Any) -> None:
        machine.send(event)
        sent.append(dict(event))

    scope = {
        "type": "http",
        "pagi": {"version": "0.3"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [],
        "pagi.connection": _Connection(),
    }
    asyncio.run(app(scope, receive, send))
    assert machine.finished
    assert sent[0]["status"] == 200
    assert b"".join(e.get("body", b"") for e in sent[1:])
