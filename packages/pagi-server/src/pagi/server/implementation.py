"""Which build of pagi-server is running: mypyc-compiled hot modules, or pure Python.

pagi-server has one implementation. Its hottest modules can also be compiled
with mypyc into C extensions that sit beside the ``.py`` files (a platform
wheel built with ``PAGI_COMPILE=1``, or ``packages/pagi-server/mypyc_build.py
build`` in the workspace); Python imports the extension in preference to the
source, and the source is what runs wherever there is none. This module only
looks at what was imported: ``pagi.server.compiled`` is true when the
HTTP/1.x parser came from a compiled extension, and ``describe()`` is the
phrase the startup line and ``pagi-server --version`` print.

An in-place build also leaves ``_compiled_sources.json``, the hash of every
source it compiled. ``check_in_place_build()`` (run once by ``import
pagi.server``) refuses a compiled module whose ``.py`` changed since, because
Python would keep running the old compiled code and ignore the edit.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import sys
from pathlib import Path

MANIFEST = Path(__file__).with_name("_compiled_sources.json")
REBUILD = "uv run python packages/pagi-server/mypyc_build.py build (or clean)"


class StaleCompiledModule(ImportError):
    """A module compiled in place is older than its source."""


def _is_extension(module: object) -> bool:
    path = getattr(module, "__file__", None) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """Names of the imported ``pagi.server`` modules that are compiled extensions."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("pagi.server.") and _is_extension(module)
    )


def is_compiled() -> bool:
    """True when the HTTP/1.x parser, first of the compiled modules, is compiled."""
    import pagi.server.protocols.http1_parser as parser

    return _is_extension(parser)


def describe() -> str:
    """'compiled (mypyc)' or 'pure Python'."""
    return "compiled (mypyc)" if is_compiled() else "pure Python"


def check_in_place_build(manifest: Path = MANIFEST) -> None:
    """Raise StaleCompiledModule if an in-place build no longer matches its sources."""
    if not manifest.exists():
        return  # a wheel, or a workspace running pure Python
    recorded: dict[str, str] = json.loads(manifest.read_text())["sources"]
    src = manifest.parents[2]  # .../src/pagi/server/_compiled_sources.json -> .../src
    stale = []
    for name, digest in recorded.items():
        module = sys.modules.get(name)
        if module is not None and not _is_extension(module):
            continue  # imported from source after all: nothing stale runs
        source = src / (name.replace(".", "/") + ".py")
        if not source.exists() or hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            stale.append(name)
    if stale:
        raise StaleCompiledModule(
            f"compiled in place from an older source: {', '.join(stale)}; "
            f"the edited .py would be ignored. Run `{REBUILD}`."
        )
