"""Finding the application a user names on the command line.

Accepted forms: ``package.module:attr``, ``package.module`` (attribute
``app``), ``path/to/file.py`` and ``path/to/file.py:attr``. An attribute
may be dotted (``module:factory.app``). Without a colon, a dotted name
whose last part is not a module is read as ``module.attr`` (``-s
othervendor.server.FastServer``). Errors say what was tried and why
it failed, because a typo here is the most common first-run problem.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

__all__ = ["AppLoadError", "load_object"]


class AppLoadError(ImportError):
    """The named application (or server class) could not be loaded."""


def _split(spec: str) -> tuple[str, str | None]:
    # "C:\\x.py:app" style drive letters aside, the last colon separates the attribute.
    head, sep, tail = spec.rpartition(":")
    if sep and head and not tail.startswith(("\\", "/")):
        return head, tail
    return spec, None


def _import_file(path: str) -> Any:
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise AppLoadError(f"no such file: {path}")
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = "pagi_app_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_object(spec: str, default_attr: str = "app") -> Any:
    """Load ``spec`` and return the named attribute."""
    target, attr = _split(spec)
    return _load(target, attr, default_attr)


def _load(target: str, attr: str | None, default_attr: str) -> Any:
    explicit = attr
    attr = attr or default_attr
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _import_file(target)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            head, dot, tail = target.rpartition(".")
            if explicit is None and dot and exc.name == target:
                # "package.module.Name": the last part is an attribute, not a module.
                try:
                    return load_object(f"{head}:{tail}")
                except AppLoadError:
                    pass
            if exc.name and target.startswith(exc.name):
                raise AppLoadError(f"could not import module {target!r}: {exc}") from exc
            raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"{target!r} has no attribute {attr!r} (use {target}:NAME to pick another)"
            ) from None
    return obj
