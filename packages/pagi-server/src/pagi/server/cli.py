"""``pagi-server``: the command line, generated from :class:`ServerConfig`.

Every option of the config dataclass becomes a flag (``max_body_size`` ->
``--max-body-size``) with its default and help text, so ``--help`` always
lists every limit and timeout with its real default. The few runner-level
options (app, server class, environment, access log, reload) are added by
hand below.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
from collections.abc import Sequence
from typing import IO, Any, Union, get_args, get_origin, get_type_hints

from pagi.server import __version__
from pagi.server.app_loading import AppLoadError
from pagi.server.config import ConfigError, ServerConfig
from pagi.server.runner import DEFAULT_SERVER, run

__all__ = ["build_parser", "main"]

_RUNNER_COMMON = ("host", "port", "quiet", "loop_type")
_GROUP_TITLES = {
    "listen": "listening",
    "limits": "limits",
    "timeouts": "timeouts (seconds)",
    "protocol": "protocol",
    "tls": "TLS",
    "process": "process and logging",
}


def _base_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is not None and str(origin).endswith("Literal"):
        return str
    return annotation


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one flag per config field plus the runner's own)."""
    parser = argparse.ArgumentParser(
        prog="pagi-server",
        description="Run a PAGI application: pagi-server module:app or pagi-server path/app.py",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "app",
        nargs="?",
        default=None,
        help="the application: module:attr or path/to/file.py[:attr] "
        "(none: serve the current directory)",
    )
    parser.add_argument(
        "--app", dest="app_option", metavar="APP", help="same as the positional APP"
    )
    parser.add_argument(
        "-s",
        "--server",
        default=DEFAULT_SERVER,
        metavar="MODULE:CLASS",
        help="server class to run the app with (runner contract)",
    )
    parser.add_argument(
        "-E",
        "--env",
        choices=("development", "production", "none"),
        default=None,
        help="development adds the Lint middleware and an access log; "
        "default: $PAGI_ENV, else development on a terminal, production otherwise",
    )
    parser.add_argument(
        "--access-log", metavar="FILE", help="write the access log to FILE ('-' = stderr)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="disable the access log")
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when .py files change (development; needs watchfiles)",
    )
    parser.add_argument("--version", action="version", version=f"pagi-server {__version__}")
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = get_type_hints(ServerConfig)
    for f in dataclasses.fields(ServerConfig):
        group_name = f.metadata.get("group", "other")
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = parser.add_argument_group(
                _GROUP_TITLES.get(group_name, group_name)
            )
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "help": f.metadata.get("help", ""),
            "default": f.default,
        }
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            kwargs["metavar"] = f.name.upper().split("_")[-1] if kind is not str else None
            if kwargs["metavar"] is None:
                del kwargs["metavar"]
        group.add_argument(flag, **kwargs)
    return parser


def _resolve_env(choice: str | None) -> str:
    if choice:
        return choice
    env = os.environ.get("PAGI_ENV")
    if env in ("development", "production", "none"):
        return env
    return "development" if sys.stderr.isatty() else "production"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``pagi-server`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config_values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServerConfig)}
    logging.basicConfig(
        level=config_values["log_level"].upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        ServerConfig(**config_values)
    except ConfigError as exc:
        parser.error(str(exc))
    env = _resolve_env(args.env)
    access_log: IO[str] | object | None = ...
    if args.no_access_log:
        access_log = None
    elif args.access_log:
        access_log = (
            sys.stderr if args.access_log == "-" else open(args.access_log, "a", buffering=1)
        )
    elif env != "development":
        access_log = None
    app = args.app_option or args.app
    if args.reload:
        _run_with_reload(argv)
        return
    common = {name: config_values.pop(name) for name in _RUNNER_COMMON}
    server_options = {
        k: v for k, v in config_values.items() if v != ServerConfig.__dataclass_fields__[k].default
    }
    try:
        run(app, server=args.server, env=env, access_log=access_log, **common, **server_options)
    except AppLoadError as exc:
        raise SystemExit(f"pagi-server: {exc}") from None
    except TypeError as exc:
        if "unknown server option" in str(exc):
            raise SystemExit(f"pagi-server: {exc}") from None
        raise


def _run_with_reload(argv: Sequence[str] | None) -> None:
    try:
        import watchfiles
    except ImportError:
        raise SystemExit("--reload needs watchfiles: pip install 'pagi-server[reload]'") from None
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--reload"]
    watchfiles.run_process(
        os.getcwd(),
        target=f"{sys.executable} -m pagi.server " + " ".join(_quote(a) for a in args),
        target_type="command",
        watch_filter=watchfiles.PythonFilter(),
    )


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
