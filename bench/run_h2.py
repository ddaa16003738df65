"""HTTP/2 (h2c, prior knowledge) side by side: pagi-server vs hypercorn and granian.

Run from the repo root:  python3 bench/run_h2.py      (options: --help)

For each round x app (plaintext, json) x server it starts a fresh server
with one worker and no access log on a free loopback port (pinned to CPU 0),
checks one HTTP/2 request, warms up, then runs ``h2load -c 50 -m 10 -D 3``
(pinned to CPU 1) and records req/s and the mean and max request time. Each
cell is the best of the rounds. Then, on a fresh server each, a Rapid Reset
run (CVE-2023-44487): one connection opens and resets 100,000 streams
(bench/clients/rapid_reset.py) while the server's RSS is sampled; the table
says how far the client got, how the server ended it, the RSS before, at
peak and after, and whether the server still answers. Prints Markdown
tables with ratios against hypercorn and granian and writes them with the
raw numbers to bench/results/ (h2-latest.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    CLIENT_CPU,
    PAGI_PY,
    RESULTS,
    CpuWindow,
    Server,
    ServerSpec,
    best_of,
    check_python_envs,
    fmt_ratio,
    h2load,
    machine_summary,
    pinned,
    require_tool,
    running,
    source_state,
    write_results,
)

SERVERS = {
    "pagi-server": ServerSpec("pagi-server", "pagi"),
    "hypercorn": ServerSpec("hypercorn", "asgi"),
    # granian serves h2c prior knowledge only when told the protocol is HTTP/2.
    "granian": ServerSpec("granian", "asgi", ["--http", "2"]),
}
BASELINES = ("hypercorn", "granian")
# The Rapid Reset table also shows pagi-server with its reset budget off: the bound on
# app tasks per connection alone.
ATTACK_ONLY = {
    "pagi-server, no reset limit": ServerSpec(
        "pagi-server-no-reset-limit", "pagi", ["--h2-max-resets-per-window", "0"]
    ),
}
APPS = ("plaintext", "json")
RAPID_RESET = BENCH / "clients" / "rapid_reset.py"


def wait_ready_h2(server: Server, timeout: float = 20.0) -> None:
    """Poll with one HTTP/2 request until it succeeds with a 2xx."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.spec.name} exited early; see {server.log_path}")
        try:
            result = h2load(server.port, "-n", "1", "-c", "1", timeout=10)
            if result.get("succeeded") == 1 and not result.get("non2xx"):
                return
            last = str(result)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{server.spec.name} not ready over HTTP/2 after {timeout}s ({last})")


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
    spec = SERVERS[name]
    print(f"[{time.monotonic() - started:5.0f}s] round {round_no}: {name} / {app} ...", flush=True)
    try:
        with running(spec, app, log_dir=log_dir) as server:
            wait_ready_h2(server)
            if args.warmup > 0:
                h2load(server.port, "-c", "10", "-m", "10", "-D", str(args.warmup))
            window = CpuWindow(server.pid)
            steady = ["--warm-up-time", "1"] if args.steady else []
            result = h2load(
                server.port,
                "-c",
                str(args.connections),
                "-m",
                str(args.streams),
                "-D",
                str(args.duration),
                *steady,
                timeout=args.duration + 60,
            )
            result.update(window.finish())
            if not result.get("rps") or not result.get("mean_ms"):
                raise RuntimeError(f"no request completed: {result}")
            if result.get("failed") or result.get("non2xx"):
                failures.append(f"{name} / {app}: {result['failed']:.0f} failed requests")
            runs.setdefault((name, app), []).append(result)
            print(
                f"         {result['rps']:,.0f} req/s  mean {result['mean_ms']:.1f} ms"
                f"  max {result['max_ms']:.1f} ms  server CPU {result['server_cores']:.0%}"
                f"  other load {result['other_cores']:.0%}",
                flush=True,
            )
    except Exception as exc:
        failures.append(f"{name} / {app}: {exc}")
        print(f"         FAILED: {exc}", flush=True)


def rapid_reset(spec: ServerSpec, streams: int, log_dir: Path) -> dict[str, object]:
    """Server RSS while one connection opens and resets ``streams`` streams."""
    with running(spec, "plaintext", log_dir=log_dir) as server:
        wait_ready_h2(server)
        h2load(server.port, "-c", "10", "-m", "10", "-n", "2000")  # warm the code paths
        time.sleep(0.3)
        before = server.rss_kib()
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server.rss_kib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            out = subprocess.run(
                pinned(
                    [str(PAGI_PY), str(RAPID_RESET), str(server.port), "--streams", str(streams)],
                    CLIENT_CPU,
                ),
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            done.set()
            sampler.join()
        if out.returncode != 0:
            raise RuntimeError(f"rapid_reset.py failed: {out.stderr.strip()[:300]}")
        attack = json.loads(out.stdout)
        time.sleep(0.5)
        after = server.rss_kib()
        try:
            check = h2load(server.port, "-n", "100", "-c", "1", "-m", "10", timeout=30)
            serves = check.get("succeeded") == 100
        except (RuntimeError, subprocess.TimeoutExpired):
            serves = False
        return {
            **attack,
            "rss_before_kib": before,
            "rss_peak_kib": peak,
            "rss_after_kib": after,
            "serves_after": serves,
        }


def build_markdown(args: argparse.Namespace, rows: dict, attacks: dict, failures: list[str]) -> str:
    lines = [
        "# HTTP/2 (h2c) side by side",
        "",
        f"Machine: {machine_summary()}. Code: {source_state()}.",
        f"Load: `h2load -c {args.connections} -m {args.streams} -D {args.duration}` (h2c, prior "
        f"knowledge) after a {args.warmup}s warm-up on other connections; one worker per "
        "server, access log off, asyncio loop. Each cell is the best of "
        f"{args.rounds} round(s) (a fresh server each time). *max/mean* is the worst request "
        "time over the mean (fairness between streams); *other load* is CPU taken by "
        "processes outside the test during the best round: above ~10% the row is suspect.",
        "",
    ]
    measured = (
        "after h2load's 1 s warm-up on the same connections"
        if args.steady
        else ("including the start, when all connections open at once")
    )
    if rows:
        lines += [f"Latencies are {measured}.", ""]
    for app in args.apps if rows else ():
        bases = {b: rows.get((b, app), {}).get("rps") for b in BASELINES}
        lines += [
            f"## {app}",
            "",
            "| server | req/s | vs hypercorn | vs granian | mean ms | max ms | max/mean "
            "| server CPU | other load | spread | failed |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in args.servers:
            r = rows.get((name, app))
            if r is None:
                lines.append(f"| {name} | failed | | | | | | | | | |")
                continue
            lines.append(
                f"| {name} | {r['rps']:,.0f} | {fmt_ratio(r['rps'], bases['hypercorn'])} | "
                f"{fmt_ratio(r['rps'], bases['granian'])} | {r['mean_ms']:.1f} | "
                f"{r['max_ms']:.1f} | {r['max_ms'] / r['mean_ms']:.1f} | "
                f"{r['server_cores']:.0%} | {r['other_cores']:.0%} | {r['spread']:.0%} | "
                f"{int(r.get('failed', 0) + r.get('non2xx', 0))} |"
            )
        lines.append("")
    if attacks:
        lines += [
            f"## Rapid Reset: {args.resets:,} streams opened and reset on one connection",
            "",
            "| server | resets sent | ended by | GOAWAY | seconds to get through | RSS before MiB "
            "| RSS peak MiB | RSS after MiB | serves after |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name in [*args.servers, *(n for n in ATTACK_ONLY if n in attacks)]:
            a = attacks.get(name)
            if a is None:
                lines.append(f"| {name} | failed | | | | | | | |")
                continue
            lines.append(
                f"| {name} | {a['resets_sent']:,} | {a['closed_by']} | {a['goaway'] or '-'} | "
                f"{a['seconds']:.1f} | {a['rss_before_kib'] / 1024:.1f} | "
                f"{a['rss_peak_kib'] / 1024:.1f} | {a['rss_after_kib'] / 1024:.1f} | "
                f"{'yes' if a['serves_after'] else 'NO'} |"
            )
        lines.append("")
    if failures:
        lines += ["## failures", ""] + [f"* {f}" for f in failures] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("--apps", nargs="+", default=list(APPS), choices=list(APPS))
    parser.add_argument("--duration", type=int, default=3, help="seconds of measured load")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--connections", type=int, default=50, help="h2load -c")
    parser.add_argument("--streams", type=int, default=10, help="h2load -m (streams per conn)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds; the best is shown (0 = skip the load)"
    )
    parser.add_argument(
        "--resets", type=int, default=100_000, help="Rapid Reset streams (0 = skip)"
    )
    parser.add_argument(
        "--steady",
        action="store_true",
        help="measure after h2load's own 1 s warm-up on the same connections (leaves out "
        "the burst of 50 connections opening at once)",
    )
    args = parser.parse_args()

    require_tool("h2load", "sudo apt-get update && sudo apt-get install -y nghttp2-client")
    check_python_envs()
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    failures: list[str] = []
    started = time.monotonic()
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_no in range(1, args.rounds + 1):
        for app in args.apps:
            for name in args.servers:
                measure_one(name, app, round_no, args, runs, failures, log_dir, started)
    rows: dict[tuple[str, str], dict] = {}
    for key, results in runs.items():
        rows[key] = best_of(results)
    attacks: dict[str, dict[str, object]] = {}
    if args.resets > 0:
        specs = {name: SERVERS[name] for name in args.servers}
        if "pagi-server" in specs:
            specs.update(ATTACK_ONLY)
        for name, spec in specs.items():
            print(f"[{time.monotonic() - started:5.0f}s] {name} / rapid reset ...", flush=True)
            try:
                attacks[name] = rapid_reset(spec, args.resets, log_dir)
                a = attacks[name]
                print(
                    f"         {a['resets_sent']:,} resets, GOAWAY {a['goaway']}, RSS "
                    f"{a['rss_before_kib'] / 1024:.1f} -> peak {a['rss_peak_kib'] / 1024:.1f} MiB",
                    flush=True,
                )
            except Exception as exc:
                failures.append(f"{name} / rapid reset: {exc}")
                print(f"         FAILED: {exc}", flush=True)

    markdown = build_markdown(args, rows, attacks, failures)
    payload = {
        "machine": machine_summary(),
        "code": source_state(),
        "args": vars(args),
        "rows": [{"server": s, "app": a, **r} for (s, a), r in rows.items()],
        "rapid_reset": attacks,
        "failures": failures,
    }
    path = write_results("h2", payload, markdown)
    print()
    print(markdown)
    print(f"results: {path} (and {path.with_suffix('.md').name})")
    print(f"total time: {time.monotonic() - started:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
