"""HTTP/1.1 side by side: pagi-server vs uvicorn (h11, httptools), hypercorn, granian.

Run from the repo root:  python3 bench/run_http.py      (options: --help)

For each server x app (plaintext, json, stream) it starts the server with one
worker and no access log on a free loopback port (pinned to CPU 0), checks
the response, warms up with wrk, then runs ``wrk -t1 -c50 -d5s --latency``
(pinned to CPU 1) and records req/s and latency p50/p99. Then, on a fresh
server per row, it measures memory per idle keep-alive connection: RSS
before and after opening N connections that each made one request.
Prints Markdown tables with ratios against uvicorn-h11 and writes them with
the raw numbers to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PAGI_PY,
    RESULTS,
    ROOT,
    CpuWindow,
    Server,
    ServerSpec,
    best_of,
    check_python_envs,
    fmt_ratio,
    idle_http_memory,
    machine_summary,
    require_tool,
    response_body,
    run_wrk,
    running,
    source_state,
    write_results,
)

COMPILED_COPY = RESULTS / "pagi-compiled"
SERVERS = {
    "pagi-server": ServerSpec("pagi-server", "pagi"),
    "uvicorn-h11": ServerSpec("uvicorn-h11", "asgi", ["--http", "h11"]),
    "uvicorn-httptools": ServerSpec("uvicorn-httptools", "asgi", ["--http", "httptools"]),
    "hypercorn": ServerSpec("hypercorn", "asgi"),
    "granian": ServerSpec("granian", "asgi"),
    # Only when named in --servers: pagi-server with its hot modules compiled by mypyc,
    # run from a compiled copy of the same sources (the checkout stays pure).
    "pagi-compiled": ServerSpec("pagi-compiled", "pagi", env={"PYTHONPATH": str(COMPILED_COPY)}),
}
OPT_IN = ("pagi-compiled",)
BASELINE = "uvicorn-h11"
APPS = ("plaintext", "json", "stream")
EXPECTED_LENGTH = {"stream": 1024 * 1024}


def build_compiled_copy() -> None:
    """Compile the workspace's pagi.server sources into COMPILED_COPY (about a minute)."""
    print(f"compiling pagi-server's hot modules with mypyc into {COMPILED_COPY} ...", flush=True)
    build = ROOT / "packages" / "pagi-server" / "mypyc_build.py"
    subprocess.run(
        [str(PAGI_PY), str(build), "build", "--out", str(COMPILED_COPY)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    probe = subprocess.run(
        [str(PAGI_PY), "-c", "import pagi.server, sys; sys.exit(not pagi.server.compiled)"],
        env={**os.environ, "PYTHONPATH": str(COMPILED_COPY)},
    )
    if probe.returncode != 0:
        raise SystemExit(f"the copy in {COMPILED_COPY} does not run compiled")


def check_response(server: Server, app: str) -> None:
    raw = server.wait_ready()
    status, body = response_body(raw)
    if status != 200:
        raise RuntimeError(f"{server.spec.name} {app}: status {status}: {raw[:300]!r}")
    want = EXPECTED_LENGTH.get(app)
    if want is not None and len(body) != want:
        raise RuntimeError(f"{server.spec.name} {app}: body is {len(body)} bytes, want {want}")


def idle_memory(spec: ServerSpec, count: int, log_dir: Path) -> dict[str, float]:
    """RSS growth per idle keep-alive connection (each made one request first)."""
    with running(spec, "plaintext", log_dir=log_dir) as server:
        check_response(server, "plaintext")
        return idle_http_memory(server, count)


def measure_one(
    name: str,
    app: str,
    round_no: int,
    args: argparse.Namespace,
    runs: dict[tuple[str, str], list[dict[str, float]]],
    failures: list[str],
    log_dir: Path,
    started: float,
) -> None:
    """One server x app: fresh server, check, warm up, measure; appends to ``runs``."""
    spec = SERVERS[name]
    print(f"[{time.monotonic() - started:5.0f}s] round {round_no}: {name} / {app} ...", flush=True)
    try:
        with running(spec, app, log_dir=log_dir) as server:
            check_response(server, app)
            if args.warmup > 0:
                run_wrk(server.port, "/", connections=args.connections, seconds=args.warmup)
            window = CpuWindow(server.pid)
            result = run_wrk(server.port, "/", connections=args.connections, seconds=args.duration)
            result.update(window.finish())
            if "rps" not in result:
                raise RuntimeError(f"could not parse wrk output: {result}")
            runs.setdefault((name, app), []).append(result)
            print(
                f"         {result['rps']:,.0f} req/s  p50 {result.get('p50', 0):.2f} ms"
                f"  p99 {result.get('p99', 0):.2f} ms  server CPU "
                f"{result['server_cores']:.0%}  other load {result['other_cores']:.0%}",
                flush=True,
            )
    except Exception as exc:
        failures.append(f"{name} / {app}: {exc}")
        print(f"         FAILED: {exc}", flush=True)


def build_markdown(args: argparse.Namespace, rows: dict, mem: dict, failures: list[str]) -> str:
    lines = [
        "# HTTP/1.1 side by side",
        "",
        f"Machine: {machine_summary()}. Code: {source_state()}.",
        f"Load: `wrk -t1 -c{args.connections} -d{args.duration}s --latency` after a "
        f"{args.warmup}s warm-up; one worker per server, access log off, asyncio loop. "
        f"Each cell is the best of {args.rounds} round(s) (a fresh server each time); "
        "*spread* is how far the worst round fell below the best; *wrk CPU* near 100% means "
        "the client may be the limit; *other load* is CPU "
        "(in % of one core) taken by processes outside the test during the best round: "
        "above ~10% the row is suspect.",
        "",
    ]
    for app in args.apps:
        base = rows.get((BASELINE, app), {}).get("rps")
        lines += [
            f"## {app}",
            "",
            "| server | req/s | vs uvicorn-h11 | p50 ms | p99 ms | MiB/s | server CPU "
            "| wrk CPU | other load | spread | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in args.servers:
            r = rows.get((name, app))
            if r is None:
                lines.append(f"| {name} | failed | | | | | | | | | |")
                continue
            errors = int(r.get("non2xx", 0) + r.get("socket_errors", 0))
            lines.append(
                f"| {name} | {r['rps']:,.0f} | {fmt_ratio(r['rps'], base)} | "
                f"{r.get('p50', float('nan')):.2f} | {r.get('p99', float('nan')):.2f} | "
                f"{r.get('mib_s', float('nan')):.1f} | {r['server_cores']:.0%} | "
                f"{r['client_cores']:.0%} | {r['other_cores']:.0%} | {r['spread']:.0%} | {errors} |"
            )
        lines.append("")
    if mem:
        base = mem.get(BASELINE, {}).get("per_conn_kib")
        lines += [
            f"## memory per idle keep-alive connection ({args.idle} connections)",
            "",
            "| server | RSS before MiB | RSS after MiB | KiB/conn | vs uvicorn-h11 | still open |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in args.servers:
            m = mem.get(name)
            if m is None:
                lines.append(f"| {name} | failed | | | | |")
                continue
            lines.append(
                f"| {name} | {m['rss_before_kib'] / 1024:.1f} | {m['rss_after_kib'] / 1024:.1f} "
                f"| {m['per_conn_kib']:.1f} | {fmt_ratio(m['per_conn_kib'], base)} "
                f"| {m['alive']}/{args.idle} |"
            )
        lines.append("")
    if failures:
        lines += ["## failures", ""] + [f"* {f}" for f in failures] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        nargs="+",
        default=[s for s in SERVERS if s not in OPT_IN],
        choices=list(SERVERS),
        help="pagi-compiled (mypyc) runs only when named here",
    )
    parser.add_argument("--apps", nargs="+", default=list(APPS), choices=list(APPS))
    parser.add_argument("--duration", type=int, default=3, help="seconds of measured load")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--idle", type=int, default=500, help="idle connections (0 = skip)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all servers; the best round is shown"
    )
    args = parser.parse_args()
    if BASELINE not in args.servers:
        args.servers.insert(0, BASELINE)

    require_tool("wrk", "sudo apt-get update && sudo apt-get install -y wrk")
    check_python_envs()
    RESULTS.mkdir(exist_ok=True)
    if "pagi-compiled" in args.servers:
        build_compiled_copy()
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    rows: dict[tuple[str, str], dict] = {}
    mem: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    started = time.monotonic()
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_no in range(1, args.rounds + 1):
        for app in args.apps:
            for name in args.servers:
                measure_one(name, app, round_no, args, runs, failures, log_dir, started)
    for key, results in runs.items():
        rows[key] = best_of(results)
    if args.idle > 0:
        for name in args.servers:
            print(f"[{time.monotonic() - started:5.0f}s] {name} / idle memory ...", flush=True)
            try:
                mem[name] = idle_memory(SERVERS[name], args.idle, log_dir)
                print(f"         {mem[name]['per_conn_kib']:.1f} KiB/conn", flush=True)
            except Exception as exc:
                failures.append(f"{name} / idle memory: {exc}")
                print(f"         FAILED: {exc}", flush=True)

    markdown = build_markdown(args, rows, mem, failures)
    payload = {
        "machine": machine_summary(),
        "code": source_state(),
        "args": vars(args),
        "rows": [{"server": s, "app": a, **r} for (s, a), r in rows.items()],
        "memory": mem,
        "failures": failures,
    }
    path = write_results("http", payload, markdown)
    print()
    print(markdown)
    print(f"results: {path} (and {path.with_suffix('.md').name})")
    print(f"total time: {time.monotonic() - started:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
