"""Compile pagi-server's hot modules with mypyc, for a wheel or in place.

pagi-server has one implementation, in Python. Its hottest typed modules (the
HTTP/1.x parser and driver, the response writer, the outbound buffer, the
transport stream, dispatch, scope building, the HTTP and WebSocket streams,
the WebSocket session, handshake and frame codec) can also be compiled to C
extensions with mypyc, the way mypy and black ship: the ``.py`` source stays
next to the compiled module and is the fallback wherever no compiled build
exists. The list of modules is ``[tool.pagi-mypyc] modules`` in this
package's ``pyproject.toml``, read by both users of this file:

* ``hatch_build.py``, the wheel build hook: ``PAGI_COMPILE=1 uv build
  --package pagi-server --wheel`` makes a platform wheel holding the
  compiled modules beside their sources;
* developers and CI, through the command line below, to run the test suite
  against the compiled modules from the editable workspace::

      uv run python packages/pagi-server/mypyc_build.py build    # .so beside the .py
      uv run python packages/pagi-server/mypyc_build.py status   # compiled, stale or pure
      uv run python packages/pagi-server/mypyc_build.py clean    # back to pure Python
      uv run python packages/pagi-server/mypyc_build.py build --out DIR   # a compiled copy

An in-place build also writes ``src/pagi/server/_compiled_sources.json``, the
hash of every source it compiled; ``import pagi.server`` refuses to run a
compiled module whose source has changed since (see
``pagi.server.implementation``), so an edited ``.py`` is never silently
shadowed by an old ``.so``. All of these files are gitignored and never go
into a pure wheel.

This file needs only the standard library to import; ``mypy`` (with its
``mypyc`` extra, i.e. setuptools) and a C compiler are needed to build.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - mypy depends on tomli below 3.11
    import tomli as tomllib

PROJECT = Path(__file__).resolve().parent
SRC = PROJECT / "src"
# The shared library holding every compiled module's code (each module's own
# extension is a small shim importing it): a top-level module named
# pagi_server__mypyc.<abi>.so, rather than mypyc's default hash of the module
# names. It must be top-level: mypyc derives each module's __file__ from it.
GROUP = "pagi_server"
MANIFEST = "pagi/server/_compiled_sources.json"


def configured_modules(project: Path = PROJECT) -> list[str]:
    """The dotted names listed in ``[tool.pagi-mypyc] modules``."""
    with (project / "pyproject.toml").open("rb") as fh:
        config = tomllib.load(fh)
    modules = config.get("tool", {}).get("pagi-mypyc", {}).get("modules", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise SystemExit("[tool.pagi-mypyc] modules must be a list of dotted module names")
    return list(modules)


def source_path(module: str) -> str:
    """'pagi.server.scope' -> 'pagi/server/scope.py' (relative to src/)."""
    return module.replace(".", "/") + ".py"


def extension_suffixes() -> tuple[str, ...]:
    import importlib.machinery

    return tuple(importlib.machinery.EXTENSION_SUFFIXES)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _mypy_config(work: Path, src: Path) -> Path:
    """A mypy config of our own: the build must not depend on the checkout's root config.

    The strict type check is the workspace's ``mypy`` run, not this build. Here
    a module that is not installed (an optional dependency such as trio or
    prometheus-client in a wheel's build environment, or an untyped one such
    as wsproto) is simply Any; the compiled modules use neither.
    """
    lines = [
        "[mypy]",
        "namespace_packages = True",
        "explicit_package_bases = True",
        f"mypy_path = {src}",
        "ignore_missing_imports = True",
        "warn_unused_ignores = False",
        "",
    ]
    path = work / "mypy.ini"
    path.write_text("\n".join(lines))
    return path


def compile_modules(
    modules: list[str], work: Path, src: Path = SRC, verbose: bool = False
) -> dict[str, Path]:
    """Compile ``modules`` (found under ``src``) into ``work``.

    Returns every built file by its path relative to ``src`` (posix form,
    e.g. ``pagi/server/scope.cpython-312-x86_64-linux-gnu.so``), one shim per
    module plus the shared library.
    """
    missing = [m for m in modules if not (src / source_path(m)).is_file()]
    if missing:
        raise SystemExit(f"[tool.pagi-mypyc] lists modules with no source: {', '.join(missing)}")
    import setuptools  # noqa: F401  (mypyc builds with setuptools when it is imported first)
    from mypyc.build import mypycify
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    work.mkdir(parents=True, exist_ok=True)
    config = _mypy_config(work, src)
    lib = work / "lib"
    with _cwd(src):
        extensions = mypycify(
            ["--config-file", str(config), *(source_path(m) for m in modules)],
            opt_level="3",
            group_name=GROUP,
            target_dir=str(work / "c"),
        )
        dist = Distribution({"name": "pagi-server-compiled", "ext_modules": extensions})
        command = build_ext(dist)
        command.build_lib = str(lib)
        command.build_temp = str(work / "temp")
        command.inplace = False
        command.ensure_finalized()
        # setuptools logs every compiler command line to the root logger at INFO.
        root = logging.getLogger()
        level = root.level
        if not verbose:
            root.setLevel(logging.WARNING)
        try:
            command.run()
        finally:
            root.setLevel(level)
    return {p.relative_to(lib).as_posix(): p for p in sorted(lib.rglob("*")) if p.is_file()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _in_place_files(src: Path) -> list[Path]:
    """Compiled files an in-place build left under ``src`` (and its manifest)."""
    suffixes = extension_suffixes()
    found = [p for p in src.rglob("*") if p.name.endswith(suffixes)]
    manifest = src / MANIFEST
    return [*found, manifest] if manifest.exists() else found


def build_in_place(src: Path = SRC, work: Path | None = None, verbose: bool = False) -> list[str]:
    """Compile the configured modules and put the results beside their sources."""
    modules = configured_modules()
    clean_in_place(src)
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pagi-mypyc-")))
        built = compile_modules(modules, work, src, verbose)
        for relative, path in built.items():
            shutil.copy2(path, src / relative)
    manifest = {m: _digest(src / source_path(m)) for m in modules}
    (src / MANIFEST).write_text(json.dumps({"group": GROUP, "sources": manifest}, indent=2) + "\n")
    return sorted(built)


def build_copy(dest: Path, work: Path | None = None, verbose: bool = False) -> list[str]:
    """Copy the ``pagi.server`` sources to ``dest`` and compile them there.

    ``PYTHONPATH=dest`` then runs the compiled copy while the checkout stays
    pure (the benchmarks' ``pagi-compiled`` server does this). ``dest`` is
    replaced if an earlier copy is there.
    """
    if dest.exists():
        if not (dest / MANIFEST).exists() and any(dest.iterdir()):
            raise SystemExit(f"{dest} exists and is not a compiled copy: not replacing it")
        shutil.rmtree(dest)
    shutil.copytree(
        SRC / "pagi" / "server",
        dest / "pagi" / "server",
        ignore=shutil.ignore_patterns("__pycache__", *(f"*{s}" for s in extension_suffixes())),
    )
    return build_in_place(dest, work, verbose)


def clean_in_place(src: Path = SRC) -> list[str]:
    """Remove every compiled file under ``src``: the workspace runs pure Python again."""
    removed = []
    for path in _in_place_files(src):
        path.unlink()
        removed.append(path.relative_to(src).as_posix())
    return sorted(removed)


def status(src: Path = SRC) -> list[tuple[str, str]]:
    """(module, 'compiled' | 'stale' | 'pure') for every configured module."""
    manifest_path = src / MANIFEST
    recorded: dict[str, str] = {}
    if manifest_path.exists():
        recorded = json.loads(manifest_path.read_text())["sources"]
    suffixes = extension_suffixes()
    rows = []
    for module in configured_modules():
        source = src / source_path(module)
        stem = source.name[: -len(".py")]
        shims = [p for p in source.parent.glob(f"{stem}.*") if p.name.endswith(suffixes)]
        if not shims:
            rows.append((module, "pure"))
        elif recorded.get(module) != _digest(source):
            rows.append((module, "stale"))
        else:
            rows.append((module, "compiled"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mypyc_build.py",
        description="Compile pagi-server's hot modules with mypyc in place, or remove them.",
    )
    parser.add_argument(
        "command",
        choices=["build", "clean", "status", "list"],
        help="build: compile beside the sources; clean: remove the compiled files; "
        "status: which modules are compiled, stale or pure; list: the configured modules",
    )
    parser.add_argument(
        "--keep-build-dir",
        type=Path,
        metavar="DIR",
        help="build in DIR and keep it (generated C, object files) instead of a temporary one",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="build: compile a copy of the sources in DIR instead of in place "
        "(run it with PYTHONPATH=DIR)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show every compiler command line"
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(configured_modules()))
    elif args.command == "build":
        if args.out is not None:
            built = build_copy(args.out.resolve(), args.keep_build_dir, args.verbose)
        else:
            built = build_in_place(work=args.keep_build_dir, verbose=args.verbose)
        where = args.out.resolve() if args.out is not None else SRC
        print(f"compiled {len(configured_modules())} modules into {where}:")
        print("\n".join(f"  {name}" for name in built))
    elif args.command == "clean":
        removed = clean_in_place()
        print("\n".join(f"removed {name}" for name in removed) or "nothing to remove")
    else:
        rows = status()
        width = max(len(m) for m, _ in rows)
        print("\n".join(f"{m:<{width}}  {state}" for m, state in rows))
        return 1 if any(state == "stale" for _, state in rows) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
