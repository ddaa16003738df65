"""The compiled (mypyc) and pure-Python builds: telling them apart, and the module list.

The whole server suite runs on both builds (``.ci/run`` compiles in place with
``packages/pagi-server/mypyc_build.py build`` and runs it again); these tests
cover what only exists because there are two: ``pagi.server.compiled``, the
``--version`` line, the refusal of a stale in-place build, and the single
list of compiled modules in ``pyproject.toml``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import pagi.server
from pagi.server import implementation
from pagi.server.cli import main
from pagi.server.protocols import http1_parser

PROJECT = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _mypyc_build() -> Any:
    spec = importlib.util.spec_from_file_location("mypyc_build", PROJECT / "mypyc_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compiled_says_where_the_parser_came_from() -> None:
    from_extension = str(http1_parser.__file__).endswith(
        tuple(importlib.machinery.EXTENSION_SUFFIXES)
    )
    assert isinstance(pagi.server.compiled, bool)
    assert pagi.server.compiled is from_extension
    assert implementation.describe() == ("compiled (mypyc)" if from_extension else "pure Python")
    listed = implementation.compiled_modules()
    assert ("pagi.server.protocols.http1_parser" in listed) is from_extension


def test_version_names_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pagi-server {pagi.server.__version__}, {implementation.describe()}, ")
    assert sys.version.split()[0] in out


def test_the_module_list_is_one_place_and_names_real_modules() -> None:
    build = _mypyc_build()
    modules = build.configured_modules()
    assert len(modules) == len(set(modules))
    # is_compiled() probes the parser, so the parser must be compiled whenever anything is.
    assert "pagi.server.protocols.http1_parser" in modules
    for module in modules:
        assert (PROJECT / "src" / build.source_path(module)).is_file(), module


def _in_place_build(tmp_path: Path, source: bytes, recorded: bytes) -> Path:
    """A fake in-place build of module ``fake_pkg.hot`` under ``tmp_path/src``."""
    src = tmp_path / "src"
    (src / "fake_pkg").mkdir(parents=True)
    (src / "fake_pkg" / "hot.py").write_bytes(source)
    manifest = src / "pagi" / "server" / "_compiled_sources.json"
    manifest.parent.mkdir(parents=True)
    digest = hashlib.sha256(recorded).hexdigest()
    manifest.write_text(json.dumps({"sources": {"fake_pkg.hot": digest}}))
    return manifest


def _loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str) -> None:
    module = types.ModuleType("fake_pkg.hot")
    module.__file__ = str(tmp_path / "src" / "fake_pkg" / f"hot{suffix}")
    monkeypatch.setitem(sys.modules, "fake_pkg.hot", module)


def test_an_in_place_build_matching_its_sources_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _in_place_build(tmp_path, b"x = 1\n", recorded=b"x = 1\n")
    _loaded(monkeypatch, tmp_path, SUFFIX)
    implementation.check_in_place_build(manifest)
    implementation.check_in_place_build(tmp_path / "no-manifest.json")  # pure: nothing to check


def test_a_source_edited_after_an_in_place_build_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited .py beside an older .so would be silently ignored: refuse to import."""
    manifest = _in_place_build(tmp_path, b"x = 2\n", recorded=b"x = 1\n")
    _loaded(monkeypatch, tmp_path, SUFFIX)
    with pytest.raises(implementation.StaleCompiledModule, match=r"fake_pkg\.hot.*build"):
        implementation.check_in_place_build(manifest)
    # Imported from the .py after all (the .so removed by hand): the edit does run.
    _loaded(monkeypatch, tmp_path, ".py")
    implementation.check_in_place_build(manifest)
