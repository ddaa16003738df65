"""Wheel build hook: mypyc-compiled hot modules when ``PAGI_COMPILE=1`` is set.

Without the variable this hook does nothing and the wheel is the pure
``py3-none-any`` one. With it, the modules listed in ``[tool.pagi-mypyc]``
are compiled (``mypyc_build.py`` does the work, shared with the in-place
developer build) and added beside their ``.py`` sources, and the wheel is
tagged for this interpreter and platform. The pure source stays in the
wheel: it is what runs wherever the compiled module cannot be loaded, and
what a traceback points at. Editable installs are never compiled.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV = "PAGI_COMPILE"


def compile_requested() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _mypyc_build(root: str) -> Any:
    spec = importlib.util.spec_from_file_location("_pagi_mypyc_build", Path(root, "mypyc_build.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MypycBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        if not compile_requested():
            return []
        # mypyc type-checks what it compiles, so the runtime dependencies' types
        # (pagi-spec, anyio) must be importable in the build environment too.
        return ["mypy[mypyc]>=1.11", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable" or not compile_requested():
            return
        build = _mypyc_build(self.root)
        self._work = tempfile.mkdtemp(prefix="pagi-mypyc-")
        modules = build.configured_modules(Path(self.root))
        built = build.compile_modules(modules, Path(self._work), Path(self.root, "src"))
        for relative, path in built.items():
            build_data["force_include"][str(path)] = relative
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(f"{ENV}: compiled {len(modules)} modules with mypyc")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
