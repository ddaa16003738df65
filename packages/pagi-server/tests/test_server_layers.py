"""The server's layers import only downward (ARCHITECTURE.md section 5).

Every ``import`` in the package is read from the source (lazy imports inside
functions and ``TYPE_CHECKING`` blocks included: a dependency is a
dependency), and each rule below is checked. A rule that breaks names the
module and the import, so the fix is obvious.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pagi.server

ROOT = Path(pagi.server.__file__).parent


def _modules() -> dict[str, set[str]]:
    """``pagi.server.x.y`` -> every absolute module name it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        name = ".".join(["pagi.server", *parts])
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imports.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imports.add(node.module)
                imports.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[name] = imports
    return found


MODULES = _modules()


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for module, imports in MODULES.items():
        if module == layer or module.startswith(layer + "."):
            for imported in sorted(imports):
                if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                    bad.append(f"{module} imports {imported}")
    return bad


SERVER_TOP = (
    "pagi.server.server",
    "pagi.server.runner",
    "pagi.server.cli",
    "pagi.server.workers",
)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # Streams are pure: event rules and backstops, no wire, no sockets.
        ("pagi.server.streams", ("pagi.server.protocols", "pagi.server.net", *SERVER_TOP)),
        # Drivers never reach up into the server, its runner or its CLI.
        ("pagi.server.protocols", SERVER_TOP),
        # The socket layer knows nothing of protocols, scopes or the server.
        ("pagi.server.net", ("pagi.server.protocols", "pagi.server.streams", *SERVER_TOP)),
        # The supervisor runs what it is given: it imports only the config.
        (
            "pagi.server.workers",
            ("pagi.server.server", "pagi.server.protocols", "pagi.server.net"),
        ),
        # The server never depends on the toolkit (the runner's lazy default
        # app and bridges are the sanctioned exception, ARCHITECTURE.md 3).
        ("pagi.server.protocols", ("pagi.tools",)),
        ("pagi.server.streams", ("pagi.tools",)),
        ("pagi.server.net", ("pagi.tools",)),
        ("pagi.server.server", ("pagi.tools",)),
    ],
)
def test_layer_imports_only_downward(layer: str, forbidden: tuple[str, ...]) -> None:
    assert any(m == layer or m.startswith(layer + ".") for m in MODULES), layer
    assert _violations(layer, forbidden) == []


def test_workers_import_only_the_config_from_the_server() -> None:
    own = {m for m in MODULES["pagi.server.workers"] if m.startswith("pagi.server")}
    assert own <= {"pagi.server.config", "pagi.server.config.ServerConfig"}


def test_the_rules_see_lazy_imports() -> None:
    """The reader must catch an import inside a function, or the rules prove nothing."""
    assert "pagi.tools" in " ".join(MODULES["pagi.server.runner"])
