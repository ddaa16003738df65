"""Draw each package's module map from its imports, as Mermaid graphs in docs/architecture/.

    uv run python docs/architecture/gen_module_map.py          # rewrite the maps
    uv run python docs/architecture/gen_module_map.py --check  # fail if they are stale

Every ``import pagi.X`` / ``from pagi.X import`` inside a package's sources
becomes an edge between the importing and the imported node. A node is a
top-level module, or a whole subpackage (``protocols``, ``middleware``...),
so the picture stays readable. Imports under ``if TYPE_CHECKING:`` count as
well: they are dependencies a reader has to know about.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "pagi.server": ROOT / "packages/pagi-server/src/pagi/server",
    "pagi.tools": ROOT / "packages/pagi-tools/src/pagi/tools",
    "pagi.spec": ROOT / "packages/pagi-spec/src/pagi/spec",
}
OUT = Path(__file__).resolve().parent / "module-maps.md"


def node_of(package: str, module: str) -> str | None:
    """``pagi.server.protocols.http1`` -> ``protocols``; other packages keep their name."""
    if module == package:
        return "(package)"
    if not module.startswith(package + "."):
        return ".".join(module.split(".")[:2]) if module.startswith("pagi.") else None
    return module[len(package) + 1 :].split(".")[0]


def module_name(package: str, root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def edges(package: str, root: Path) -> tuple[set[str], set[tuple[str, str]]]:
    nodes: set[str] = set()
    found: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        here = module_name(package, root, path)
        source = node_of(package, here)
        assert source is not None
        nodes.add(source)
        is_pkg = path.name == "__init__.py"
        for item in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(item, ast.Import):
                targets = [alias.name for alias in item.names]
            elif isinstance(item, ast.ImportFrom):
                if item.level:
                    base = here.split(".")
                    base = base[: len(base) - item.level + (1 if is_pkg else 0)]
                    targets = [".".join([*base, item.module] if item.module else base)]
                elif item.module:
                    targets = [item.module]
            for target in targets:
                other = node_of(package, target)
                if other is not None and other != source and other != "(package)":
                    found.add((source, other))
    return nodes, found


def render() -> str:
    out = [
        "# Module maps",
        "",
        "Generated from the sources' imports by `uv run python "
        "docs/architecture/gen_module_map.py`; a test fails when they are stale.",
        "An arrow `a --> b` means some module in `a` imports from `b`. A box is a",
        "top-level module or a whole subpackage; other packages appear under their",
        "full name.",
        "",
    ]
    for package, root in PACKAGES.items():
        nodes, found = edges(package, root)
        used = {n for edge in found for n in edge}
        out += [f"## {package}", "", "```mermaid", "graph LR"]
        ids = {n: f"n{i}" for i, n in enumerate(sorted(nodes | used))}
        for name in sorted(nodes | used):
            if name == "(package)" and name not in used:
                continue
            out.append(f'    {ids[name]}["{name}"]')
        for a, b in sorted(found):
            out.append(f"    {ids[a]} --> {ids[b]}")
        out += ["```", ""]
        lonely = sorted(nodes - used - {"(package)"})
        if lonely:
            out += [
                "Imports nothing else in the package and is imported by none of it: "
                + ", ".join(f"`{n}`" for n in lonely)
                + ".",
                "",
            ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: uv run python docs/architecture/gen_module_map.py")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
