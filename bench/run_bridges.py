"""Bridges: FastAPI and Flask on pagi-server's ASGI/WSGI bridges vs their usual servers; Proxy MB/s.

Run from the repo root:  python3 bench/run_bridges.py      (options: --help)

Needs, besides bench/setup.sh's peers, in bench/.venv: fastapi, flask,
gunicorn, a2wsgi and uvloop (bench/requirements.txt pins them), and curl.

Cells (each on a fresh server pinned to CPU 0, wrk pinned to CPU 1: a 1 s
warm-up, then ``wrk -t1 -c50 -d<duration>s``; best of ``--rounds`` rounds,
round-robin over servers):

* ``fastapi /`` and ``fastapi /json`` (bench/apps/bridge_fastapi.py): pagi-server
  ``--interface asgi`` vs uvicorn h11 (asyncio loop) and uvicorn httptools+uvloop;
* ``flask /`` and ``flask /json`` (bench/apps/bridge_flask.py): pagi-server
  ``--interface wsgi`` (WSGIApp, 40 threads) vs gunicorn's sync worker (one
  worker process) and a2wsgi's WSGIMiddleware on uvicorn h11.

Proxy: an upstream pagi-server (bench/apps/bridge_upstream.py) streams 100 MiB;
curl downloads it directly and through a pagi-server running
``pagi.tools.proxy.Proxy`` (bench/apps/bridge_proxy.py), then uploads 100 MiB
both ways. Nothing is pinned here (three processes on two cores); MB/s is
best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    APPS,
    PAGI_PY,
    PEER_BIN,
    PEER_PY,
    RESULTS,
    ROOT,
    CpuWindow,
    ServerSpec,
    check_python_envs,
    children_of,
    http_get,
    machine_summary,
    require_tool,
    response_body,
    run_wrk,
    source_state,
    write_results,
)
from _common import Server as _Server

HOST = "127.0.0.1"
FASTAPI = ("pagi-server --interface asgi", "uvicorn-h11", "uvicorn-httptools-uvloop")
FLASK = ("pagi-server --interface wsgi", "gunicorn-sync", "a2wsgi-uvicorn-h11")
CELLS = [
    ("fastapi", "/", FASTAPI),
    ("fastapi", "/json", FASTAPI),
    ("flask", "/", FLASK),
    ("flask", "/json", FLASK),
]
PROXY_MIB = 100


def command(name: str, port: int) -> tuple[list[str], Path]:
    """(argv, cwd) for one server of the tables."""
    pagi = [
        str(PAGI_PY),
        "-m",
        "pagi.server",
        "--loop",
        "asyncio",  # as every server in these tables (the default would pick uvloop)
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--env",
        "production",
        "--quiet",
        "--log-level",
        "warning",
        "--keepalive-timeout",
        "60",
    ]
    uvicorn = [
        str(PEER_PY),
        "-m",
        "uvicorn",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "60",
    ]
    if name == "pagi-server --interface asgi":
        return [*pagi, "--interface", "asgi", str(APPS / "bridge_fastapi.py")], ROOT
    if name == "pagi-server --interface wsgi":
        return [*pagi, "--interface", "wsgi", str(APPS / "bridge_flask.py")], ROOT
    if name == "uvicorn-h11":
        return [*uvicorn, "--http", "h11", "--loop", "asyncio", "bridge_fastapi:app"], APPS
    if name == "uvicorn-httptools-uvloop":
        return [*uvicorn, "--http", "httptools", "--loop", "uvloop", "bridge_fastapi:app"], APPS
    if name == "a2wsgi-uvicorn-h11":
        return [*uvicorn, "--http", "h11", "--loop", "asyncio", "bridge_flask_a2wsgi:app"], APPS
    if name == "gunicorn-sync":
        return [
            str(PEER_BIN / "gunicorn"),
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            "bridge_flask:app",
        ], APPS
    raise ValueError(name)


class BridgeServer(_Server):
    """_common.Server with our own command line (start, pid handling and stop() are shared)."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        pin: bool = True,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        def build(port: int) -> tuple[list[str], Path | None]:
            if argv is None:
                return command(name, port)
            return [a.replace("{port}", str(port)) for a in argv], cwd

        slug = name.replace(" ", "_").replace("-", "_")
        super().__init__(
            ServerSpec(name, "bridge"),
            "",
            log_dir=log_dir,
            pin=pin,
            command=build,
            env=env,
            log_name=f"bridges-{slug}.log",
        )


def wrk(port: int, path: str, connections: int, seconds: int) -> dict[str, float]:
    return run_wrk(port, path, connections=connections, seconds=seconds, host=HOST)


def check(port: int, path: str) -> None:
    status, body = response_body(http_get(port, path))
    want = b"Hello, world!" if path == "/" else b'"message"'
    if status != 200 or want not in body:
        raise RuntimeError(f"{path}: status {status}, body {body[:100]!r}")


def curl(url: str, upload: Path | None = None) -> float:
    """Bytes per second of one transfer, as curl measured it."""
    cmd = ["curl", "-sS", "-o", os.devnull, "-w", "%{speed_download} %{speed_upload}"]
    if upload is not None:
        cmd += ["--data-binary", f"@{upload}", "-H", "content-type: application/octet-stream"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=120, check=True)
    down, up = (float(x) for x in out.stdout.split())
    return up if upload is not None else down


def bench_proxy(rounds: int, log_dir: Path) -> tuple[dict[str, float], list[str]]:
    best: dict[str, float] = {}
    failures: list[str] = []
    pagi = [
        str(PAGI_PY),
        "-m",
        "pagi.server",
        "--loop",
        "asyncio",  # as every server in these tables (the default would pick uvloop)
        "--host",
        HOST,
        "--port",
        "{port}",
        "--no-access-log",
        "--env",
        "production",
        "--quiet",
        "--max-body-size",
        "0",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "body.bin"
        with payload.open("wb") as fh:
            for _ in range(PROXY_MIB * 4):
                fh.write(b"y" * 262144)
        upstream = BridgeServer(
            "upstream", log_dir, pin=False, cwd=ROOT, argv=[*pagi, str(APPS / "bridge_upstream.py")]
        )
        try:
            upstream.wait_ready("/big?mib=1")
            proxy = BridgeServer(
                "proxy",
                log_dir,
                pin=False,
                cwd=ROOT,
                env={"BRIDGE_UPSTREAM": f"http://{HOST}:{upstream.port}"},
                argv=[*pagi, str(APPS / "bridge_proxy.py")],
            )
            try:
                proxy.wait_ready("/big?mib=1")
                for round_no in range(1, rounds + 1):
                    for label, port in (("direct", upstream.port), ("proxy", proxy.port)):
                        try:
                            base = f"http://{HOST}:{port}"
                            down = curl(f"{base}/big?mib={PROXY_MIB}")
                            up = curl(f"{base}/sink", upload=payload)
                        except Exception as exc:
                            failures.append(f"proxy {label}: {exc}")
                            continue
                        print(
                            f"         round {round_no} {label}: down {down / 1e6:,.0f} MB/s,"
                            f" up {up / 1e6:,.0f} MB/s"
                        )
                        for key, value in ((f"{label} down", down), (f"{label} up", up)):
                            best[key] = max(best.get(key, 0.0), value)
            finally:
                proxy.stop()
        finally:
            upstream.stop()
    return best, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--skip-proxy", action="store_true")
    args = parser.parse_args()
    check_python_envs()
    require_tool("wrk", "sudo apt-get install -y wrk")
    require_tool("curl", "sudo apt-get install -y curl")
    probe = subprocess.run(
        [str(PEER_PY), "-c", "import fastapi, flask, gunicorn, a2wsgi, uvloop"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        print(
            f"error: bench/.venv lacks a peer: {probe.stderr.strip()}\n"
            "run: uv pip install --python bench/.venv/bin/python -r bench/requirements.txt",
            file=sys.stderr,
        )
        return 2
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    failures: list[str] = []
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for framework, path, servers in CELLS:
            for name in servers:
                print(f"[{time.monotonic() - started:5.0f}s] round {round_no}: {name} {path}")
                server = BridgeServer(name, log_dir)
                try:
                    server.wait_ready(path)
                    check(server.port, path)
                    if args.warmup:
                        wrk(server.port, path, args.connections, args.warmup)
                    window = CpuWindow(server.pid)
                    result = wrk(server.port, path, args.connections, args.duration)
                    result.update(window.finish())
                    runs.setdefault((framework, path, name), []).append(result)
                    print(
                        f"         {result['rps']:,.0f} req/s  server CPU "
                        f"{result['server_cores']:.0%}  other {result['other_cores']:.0%}"
                        f"  processes {1 + len(children_of(server.pid))}"
                    )
                except Exception as exc:
                    failures.append(f"{name} {path}: {exc}")
                    print(f"         FAILED: {exc}")
                finally:
                    server.stop()
    proxy: dict[str, float] = {}
    if not args.skip_proxy:
        print(f"[{time.monotonic() - started:5.0f}s] proxy, {PROXY_MIB} MiB each way")
        proxy, proxy_failures = bench_proxy(args.rounds, log_dir)
        failures += proxy_failures

    best = {key: max(rows, key=lambda r: r["rps"]) for key, rows in runs.items()}
    lines = [
        "# Bridges benchmark",
        "",
        f"{machine_summary()}; {source_state()}; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, best of {args.rounds} rounds.",
        "",
        "| app | path | server | req/s | vs first peer | vs second peer | p99 ms "
        "| server CPU | other load | spread | errors |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for framework, path, servers in CELLS:
        for name in servers:
            row = best.get((framework, path, name))
            if row is None:
                continue
            rps = [r["rps"] for r in runs[(framework, path, name)]]
            spread = (max(rps) - min(rps)) / max(rps) if max(rps) else 0.0
            cell = (framework, path)
            errors = row.get("non2xx", 0) + row.get("socket_errors", 0)

            def ratio(peer: str, rps: float = row["rps"], cell: tuple[str, str] = cell) -> str:
                other = best.get((*cell, peer))
                return f"{rps / other['rps']:.2f}x" if other else "-"

            lines.append(
                f"| {framework} | {path} | {name} | {row['rps']:,.0f} | {ratio(servers[1])} | "
                f"{ratio(servers[2])} | {row.get('p99', 0):.1f} | {row['server_cores']:.0%} | "
                f"{row['other_cores']:.0%} | {spread:.0%} | {errors:.0f} |"
            )
    lines += [
        "",
        "Ratios: FastAPI rows against uvicorn-h11, then uvicorn-httptools-uvloop; "
        "Flask rows against gunicorn-sync, then a2wsgi-uvicorn-h11.",
    ]
    if proxy:
        lines += [
            "",
            f"## Proxy: {PROXY_MIB} MiB through pagi.tools.proxy.Proxy (curl, MB/s)",
            "",
            "| direction | direct | through Proxy | ratio |",
            "| --- | ---: | ---: | ---: |",
        ]
        for direction in ("down", "up"):
            direct, proxied = proxy.get(f"direct {direction}"), proxy.get(f"proxy {direction}")
            if direct and proxied:
                lines.append(
                    f"| {'download' if direction == 'down' else 'upload'} | "
                    f"{direct / 1e6:,.0f} | {proxied / 1e6:,.0f} | {proxied / direct:.2f}x |"
                )
    if failures:
        lines += ["", "Failures:", *[f"- {f}" for f in failures]]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    payload = {
        "runs": {"/".join(k): v for k, v in runs.items()},
        "proxy": proxy,
        "failures": failures,
    }
    write_results("bridges", payload, markdown)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
