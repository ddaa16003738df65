"""``pagi-server``: the command line, generated from :class:`ServerConfig`.

Every option of the config dataclass becomes a flag (``max_body_size`` ->
``--max-body-size``) with its default and help text, so ``--help`` always
lists every limit and timeout with its real default. The few runner-level
options (app, server class, environment, access log, reload, config file)
are added by hand below.

Where a value comes from
------------------------
Every option, runner-level ones included, can be given in four places; the
first that has it wins:

1. the command line (``--max-body-size 1000``);
2. the environment: ``PAGI_`` and the flag's name in capitals with
   underscores (``PAGI_MAX_BODY_SIZE=1000``; booleans take
   ``1/true/yes/on`` or ``0/false/no/off``; repeatable options take a
   comma-separated list, ``PAGI_HEADER`` one header per line);
3. a TOML file: ``--config FILE`` (or ``PAGI_CONFIG``), else the
   ``[tool.pagi-server]`` table of ``pyproject.toml`` in the current
   directory. Keys are the flag names without dashes
   (``max-body-size = 1000``; ``max_body_size`` works too); an unknown key
   is an error naming it, with the nearest known one;
4. the default.

``pagi-server --print-config`` prints the effective values and where each
came from, then exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from typing import IO, Any, NoReturn, Union, get_args, get_origin, get_type_hints

from pagi.server import __version__
from pagi.server.app_loading import AppLoadError
from pagi.server.config import ConfigError, ServerConfig
from pagi.server.implementation import describe
from pagi.server.logs import configure_logging, toml_module
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
    "config": "configuration",
    "reload": "reload (development)",
}
#: Options that only make sense on the command line.
_CLI_ONLY = {"print_config", "help", "version"}
_NOT_IN_FILE = {"config", "env_file"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only when there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, "", (), [], False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the problem, not the 40-line usage."""
        _fail(message)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"pagi-server: error: {message}\n(pagi-server --help lists every option)\n")
    raise SystemExit(2)


def _base_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is tuple:
        return str
    if origin is not None and str(origin).endswith("Literal"):
        return str
    return annotation


def _flag(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("flag", "--" + f.name.replace("_", "-")))


def _help(text: str) -> str:
    return text.replace("%", "%%")  # argparse %-formats help strings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one flag per config field plus the runner's own)."""
    parser = _Parser(
        prog="pagi-server",
        description="Run a PAGI application: pagi-server module:app or pagi-server path/app.py",
        formatter_class=_HelpFormatter,
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
        help="server class to run the app with (runner contract; module.Class works too)",
    )
    parser.add_argument(
        "-E",
        "--env",
        choices=("development", "production", "none"),
        default=None,
        help="development adds the Lint middleware and an access log on stderr; "
        "unset: $PAGI_ENV, else development when stderr is a terminal, production otherwise",
    )
    parser.add_argument(
        "--factory",
        action="store_true",
        help="APP names a function that takes no arguments and returns the app",
    )
    parser.add_argument(
        "--app-dir", metavar="DIR", help="import the app from DIR (put first on sys.path)"
    )
    parser.add_argument(
        "--access-log", metavar="FILE", help="write the access log to FILE ('-' = stderr)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="disable the access log")
    parser.add_argument(
        "--log-config",
        metavar="FILE",
        help="configure logging with this logging.config.dictConfig file (.json, .toml,"
        " or .yaml/.yml with PyYAML)",
    )
    parser.add_argument(
        "--pid", metavar="FILE", help="write the server's process id to FILE (removed at exit)"
    )
    reload = parser.add_argument_group(_GROUP_TITLES["reload"])
    reload.add_argument(
        "--reload",
        action="store_true",
        help="restart when files change (development; needs watchfiles)",
    )
    reload.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="directory to watch (repeatable; default: the current directory)",
    )
    reload.add_argument(
        "--reload-include",
        action="append",
        metavar="GLOB",
        help="also restart for files matching GLOB (repeatable; default: *.py)",
    )
    reload.add_argument(
        "--reload-exclude",
        action="append",
        metavar="GLOB",
        help="ignore files matching GLOB (repeatable)",
    )
    config = parser.add_argument_group(_GROUP_TITLES["config"])
    config.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of options (default: [tool.pagi-server] in ./pyproject.toml);"
        " precedence: command line > PAGI_* environment > file > default",
    )
    config.add_argument(
        "--env-file",
        metavar="FILE",
        help="load NAME=VALUE lines into the environment first (existing variables win)",
    )
    config.add_argument(
        "--print-config",
        action="store_true",
        help="print every option's effective value and where it came from, then exit",
    )
    python = f"{platform.python_implementation()} {platform.python_version()}"
    parser.add_argument(
        "--version",
        action="version",
        version=f"pagi-server {__version__}, {describe()}, {python}",
        help="show the version, whether the hot modules run compiled (mypyc) or as pure "
        "Python, and the Python running them; then exit",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    hints = get_type_hints(ServerConfig)
    for f in dataclasses.fields(ServerConfig):
        group_name = f.metadata.get("group", "other")
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = parser.add_argument_group(
                _GROUP_TITLES.get(group_name, group_name)
            )
        flags = [_flag(f)]
        if "short" in f.metadata:
            flags.insert(0, f.metadata["short"])
        kind = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "help": _help(f.metadata.get("help", "")),
            "default": f.default,
        }
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.metadata.get("multiple"):
            kwargs["action"] = "append"
            kwargs["default"] = None
            kwargs["metavar"] = f.metadata.get("metavar")
        else:
            kwargs["type"] = kind
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            if "metavar" in f.metadata:
                kwargs["metavar"] = f.metadata["metavar"]
            elif kind is not str:
                kwargs["metavar"] = f.name.upper().split("_")[-1]
        group.add_argument(*flags, **kwargs)
    return parser


# --- where values come from ------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Option key (the long flag without dashes) -> its action."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest in _CLI_ONLY:
            continue
        found[longs[0][2:]] = action
    return found


def _convert(action: argparse.Action, key: str, raw: Any, where: str) -> Any:
    """A value from the environment (a string) or a file (TOML types) for ``action``."""
    is_flag = isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction))
    try:
        if is_flag:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
                return raw.strip().lower() in _TRUE
            raise ValueError("expected true or false")
        if isinstance(action, argparse._AppendAction):
            if isinstance(raw, str):
                sep = "\n" if key == "header" else ","
                raw = [part.strip() for part in raw.split(sep) if part.strip()]
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise ValueError("expected a list of strings")
            return raw
        if isinstance(raw, (list, dict, bool)):
            raise ValueError(f"expected a single value, not {type(raw).__name__}")
        value = action.type(str(raw)) if callable(action.type) else str(raw)  # type: ignore[misc]
        if action.choices is not None and value not in action.choices:
            raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {key} = {raw!r}: {exc}") from None


def _load_toml(path: str) -> dict[str, Any]:
    tomllib = toml_module()
    try:
        with open(path, "rb") as f:
            return dict(tomllib.load(f))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _file_values(path: str | None) -> tuple[dict[str, Any], str | None]:
    """The options table of the config file and its name (``None``: there is none)."""
    if path is None:
        if not os.path.isfile("pyproject.toml"):
            return {}, None
        data = _load_toml("pyproject.toml")
        table = data.get("tool", {}).get("pagi-server")
        if table is None:
            return {}, None
        return dict(table), "pyproject.toml [tool.pagi-server]"
    data = _load_toml(path)
    if os.path.basename(path) == "pyproject.toml" or "tool" in data:
        table = data.get("tool", {}).get("pagi-server")
        if table is None:
            raise ConfigError(f"{path}: no [tool.pagi-server] table")
        return dict(table), f"{path} [tool.pagi-server]"
    return data, path


def _load_env_file(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"--env-file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"--env-file {path} line {number}: expected NAME=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(name, value)


def _env_name(key: str) -> str:
    return "PAGI_" + key.upper().replace("-", "_")


def resolve(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, dict[str, str]]:
    """Parse ``argv`` and fill in from the environment and the config file.

    Returns the namespace and, per destination, where its value came from.
    """
    args = parser.parse_args(argv)
    explicit = _explicit_dests(parser, argv)
    options = _options(parser)
    sources = {action.dest: "default" for action in options.values()}
    for dest in explicit:
        sources[dest] = "command line"
    if args.env_file:
        _load_env_file(args.env_file)
    config_path = args.config if "config" in explicit else os.environ.get("PAGI_CONFIG")
    table, file_name = _file_values(config_path)
    if config_path is not None and "config" not in explicit:
        args.config = config_path
        sources["config"] = "environment PAGI_CONFIG"
    # The file first, so the environment overrides it.
    by_dest: dict[str, tuple[str, argparse.Action]] = {
        a.dest: (key, a) for key, a in options.items()
    }
    if table:
        known = {key.replace("-", "_"): key for key in options if key not in _NOT_IN_FILE}
        known["app"] = "app"
        for raw_key, raw in table.items():
            norm = raw_key.replace("-", "_")
            if norm not in known:
                close = difflib.get_close_matches(
                    norm.replace("_", "-"), [k for k in known.values()], n=1, cutoff=0.6
                )
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{file_name}: unknown option {raw_key!r}{hint}")
            key = known[norm]
            action = options["app"] if key == "app" else options[key]
            if action.dest in explicit:
                continue
            setattr(args, action.dest, _convert(action, key, raw, str(file_name)))
            sources[action.dest] = str(file_name)
    for dest, (key, action) in by_dest.items():
        if dest in explicit or key in ("env-file", "config"):
            continue
        name = _env_name(key)
        if name in os.environ:
            value = os.environ[name]
            setattr(args, dest, _convert(action, key, value, f"environment {name}"))
            sources[dest] = f"environment {name}"
    return args, sources


def _explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """Which destinations the command line itself set."""
    shadow = build_parser()
    for action in shadow._actions:
        action.default = argparse.SUPPRESS
    shadow.set_defaults(**{})
    given = shadow.parse_args(argv)
    return {k for k in vars(given)}


# --- errors ---------------------------------------------------------------------------------


def _flagify(message: str) -> str:
    """Config errors name flags (``--write-low-watermark``), not Python fields."""
    fields = sorted(dataclasses.fields(ServerConfig), key=lambda f: -len(f.name))
    for f in fields:
        message = re.sub(rf"(?<![\w-]){re.escape(f.name)}(?![\w-])", _flag(f), message)
    return message


def _resolve_env(choice: str | None) -> str:
    if choice:
        return choice
    env = os.environ.get("PAGI_ENV")
    if env in ("development", "production", "none"):
        return env
    return "development" if sys.stderr.isatty() else "production"


def _print_config(args: argparse.Namespace, sources: dict[str, str], parser: Any) -> None:
    lines = [f"# pagi-server {__version__}: effective options (value  # source)"]
    app = args.app_option or args.app
    lines.append(f"app = {json.dumps(app)}  # {'command line' if app else 'default'}")
    for key, action in sorted(_options(parser).items()):
        if key in ("app",):
            continue
        value = getattr(args, action.dest, None)
        if isinstance(value, tuple):
            value = list(value)
        shown = "unset" if value is None else json.dumps(value)
        lines.append(f"{key} = {shown}  # {sources.get(action.dest, 'default')}")
    print("\n".join(lines))


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``pagi-server`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, sources = resolve(parser, argv)
    except ConfigError as exc:
        _fail(str(exc))
    config_values: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(ServerConfig)
    }
    for f in dataclasses.fields(ServerConfig):
        if f.metadata.get("multiple"):
            config_values[f.name] = tuple(config_values[f.name] or ())
    try:
        ServerConfig(**config_values)
    except ConfigError as exc:
        _fail(_flagify(str(exc)))
    if args.print_config:
        _print_config(args, sources, parser)
        return
    try:
        configure_logging(config_values["log_level"], config_values["log_format"], args.log_config)
    except ConfigError as exc:
        _fail(str(exc))
    env = _resolve_env(args.env)
    if args.reload:
        _run_with_reload(argv, args)
        return
    access_log: IO[str] | object | None = ...
    if args.no_access_log:
        access_log = None
    elif args.access_log:
        try:
            access_log = (
                sys.stderr if args.access_log == "-" else open(args.access_log, "a", buffering=1)
            )
        except OSError as exc:
            _fail(f"--access-log {args.access_log}: {exc.strerror or exc}")
    elif env != "development":
        access_log = None
    app: Any = args.app_option or args.app
    if args.app_dir:
        sys.path.insert(0, os.path.abspath(args.app_dir))
    if args.factory:
        if app is None:
            _fail("--factory needs an APP naming the factory")
        app = _from_factory(app)
    if args.pid:
        _write_pid(args.pid)
    if args.server == DEFAULT_SERVER:
        from pagi.server.server import Server

        Server.restart_argv = [sys.executable, "-m", "pagi.server", *argv]
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


def _from_factory(spec: str) -> Any:
    from pagi.server.runner import load_app

    factory = load_app(spec)
    try:
        return factory()  # type: ignore[call-arg]
    except TypeError as exc:
        raise SystemExit(f"pagi-server: --factory {spec}: calling it failed: {exc}") from None


def _write_pid(path: str) -> None:
    import atexit

    pid = os.getpid()
    try:
        with open(path, "w") as f:
            f.write(f"{pid}\n")
    except OSError as exc:
        _fail(f"--pid {path}: {exc.strerror or exc}")

    def remove() -> None:
        if os.getpid() == pid:  # not in a forked worker
            try:
                os.unlink(path)
            except OSError:
                pass

    atexit.register(remove)


# --- reload -----------------------------------------------------------------------------------


def _strip_reload_args(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--reload":
            continue
        if arg in ("--reload-dir", "--reload-include", "--reload-exclude"):
            skip = True
            continue
        if arg.startswith(("--reload-dir=", "--reload-include=", "--reload-exclude=")):
            continue
        out.append(arg)
    return out


def _run_with_reload(argv: Sequence[str], args: argparse.Namespace) -> None:
    """Run the server in a child process; stop and start it again when files change.

    The child is told about a restart with SIGUSR2 (``PAGI_RELOADER=1`` in its
    environment), so it logs a reload as a reload, not as a Ctrl-C.
    """
    try:
        import watchfiles
    except ImportError:
        raise SystemExit("--reload needs watchfiles: pip install 'pagi-server[reload]'") from None
    import fnmatch

    log = logging.getLogger("pagi.server")
    dirs = [os.path.abspath(d) for d in (args.reload_dir or [os.getcwd()])]
    for directory in dirs:
        if not os.path.isdir(directory):
            _fail(f"--reload-dir {directory}: no such directory")
    include = args.reload_include or ["*.py"]
    exclude = args.reload_exclude or []
    default_filter = watchfiles.DefaultFilter()

    def wanted(change: Any, path: str) -> bool:
        name = os.path.basename(path)
        if not default_filter(change, path):
            return False
        if any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in exclude):
            return False
        return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in include)

    command = [sys.executable, "-m", "pagi.server", *_strip_reload_args(argv)]
    env = {**os.environ, "PAGI_RELOADER": "1"}
    log.info("reload: watching %s for %s", ", ".join(dirs), ", ".join(include))
    child = subprocess.Popen(command, env=env)
    try:
        for changes in watchfiles.watch(*dirs, watch_filter=wanted, raise_interrupt=False):
            names = sorted({os.path.relpath(path) for _, path in changes})
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            log.info("reload: %s changed; restarting the server", shown)
            _stop_child(child, signal.SIGUSR2)
            child = subprocess.Popen(command, env=env)
    finally:
        _stop_child(child, signal.SIGTERM)


def _stop_child(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.poll() is None:
        child.send_signal(signum)
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if child.poll() is None:
            child.kill()
    child.wait()


def _quote(arg: str) -> str:
    return shlex.quote(arg)
