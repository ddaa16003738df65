"""The error log: level, text or JSON lines, or the user's own ``dictConfig``.

``--log-format json`` writes one JSON object per line (``time``, ``level``,
``logger``, ``message``, and ``exc_info`` for tracebacks), so log shippers
need no parsing rules; the access log follows the same switch
(:mod:`pagi.server.accesslog`). ``--log-config FILE`` hands the whole setup
to :func:`logging.config.dictConfig`, read from JSON, TOML or (with PyYAML)
YAML; ``--log-level`` and ``--log-format`` then do not apply.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import time
from typing import Any

from pagi.server.config import ConfigError

__all__ = ["JSONFormatter", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_installed: logging.Handler | None = None


class JSONFormatter(logging.Formatter):
    """One JSON object per record; extra ``request_id`` is kept when given."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            data["request_id"] = request_id
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def toml_module() -> Any:
    """``tomllib`` (Python 3.11+) or ``tomli``."""
    import importlib

    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError("reading TOML needs Python 3.11 or the tomli package")


def _read_config(path: str) -> dict[str, Any]:
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"--log-config {path}: {exc.strerror or exc}") from None
    try:
        if ext == ".json":
            data = json.loads(raw)
        elif ext == ".toml":
            data = toml_module().loads(raw.decode("utf-8"))
        elif ext in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped,unused-ignore]
            except ImportError:
                raise ConfigError(
                    f"--log-config {path}: YAML needs PyYAML (pip install pyyaml)"
                ) from None
            data = yaml.safe_load(raw)
        else:
            raise ConfigError(f"--log-config {path}: use a .json, .toml, .yaml or .yml file")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"--log-config {path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--log-config {path}: expected a mapping at the top")
    data.setdefault("version", 1)
    data.setdefault("disable_existing_loggers", False)
    return data


def configure_logging(level: str, fmt: str = "text", config_file: str | None = None) -> None:
    """Set up the root logger for ``pagi-server`` (called once by the CLI)."""
    if config_file:
        data = _read_config(config_file)
        try:
            logging.config.dictConfig(data)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ConfigError(f"--log-config {config_file}: {exc}") from None
        return
    global _installed
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    if _installed is not None:  # only ours: handlers others added (pytest's) stay
        root.removeHandler(_installed)
    _installed = handler
    root.addHandler(handler)
    root.setLevel(level.upper())
