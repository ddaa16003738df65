"""Every workload of issue 14's goal table, side by side in interleaved rounds: one command.

Run from the repo root:  python3 bench/run_all.py      (options: --help; --quick: smoke run)

Servers (one worker each, access log off, keep-alive 60 s): uvicorn with h11
on asyncio (the baseline of every ratio), pagi-server on asyncio and on
uvloop, uvicorn with httptools on uvloop (the goal's reference), hypercorn
and granian (both asyncio). uvicorn serves WebSockets with its
``websockets`` implementation in both rows.

Workloads: plaintext, json, POST 16 KiB echo and a 1 MiB stream in 64 KiB
chunks (``wrk -t1 -c50``; p99 latency comes from the plaintext runs),
WebSocket echo with permessage-deflate off and on (Node ``ws`` client, 50
connections), SSE to 100 streams (pagi-server its ``sse`` scope, the ASGI
servers a streaming response of SSE-formatted events), and RSS per idle
keep-alive HTTP connection and per idle WebSocket at 2,000 connections.

Rounds are interleaved: round 1 runs every workload on every server, then
round 2, and so on, the servers of a workload in turn (the first one rotates
each round), each cell on a fresh server. A cell is the best of its rounds
(highest throughput, lowest latency or memory) with the spread between them.
Prints Markdown tables (ratios to uvicorn-h11, and the goal column
pagi-server (uvloop) / uvicorn httptools+uvloop) and writes them with the raw
numbers to bench/results/all-latest.json and all-latest.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    RESULTS,
    CpuWindow,
    Server,
    ServerSpec,
    check_node_client,
    check_python_envs,
    fmt_ratio,
    git_state,
    http_request,
    idle_http_memory,
    idle_ws_memory,
    machine_info,
    machine_summary,
    md_table,
    node_client,
    raise_fd_limit,
    require_tool,
    response_body,
    run_wrk,
    running,
    write_results,
)

BASELINE = "uvicorn-h11"
GOAL_SERVER, GOAL_PEER = "pagi-server-uvloop", "uvicorn-httptools-uvloop"
PURE_SERVER = "pagi-server"
LABELS = {
    "uvicorn-h11": "uvicorn h11",
    "pagi-server": "pagi-server (asyncio)",
    "pagi-server-uvloop": "pagi-server (uvloop)",
    "uvicorn-httptools-uvloop": "uvicorn httptools+uvloop",
    "hypercorn": "hypercorn",
    "granian": "granian",
}
POST_SCRIPT = BENCH / "clients" / "post16k.lua"
POST_BODY = b"0123456789abcdef" * 1024  # what post16k.lua sends


def make_servers(idle: int) -> dict[str, ServerSpec]:
    """The six servers; limits raised so that ``idle`` connections fit everywhere."""
    pagi_limit = ["--max-connections", str(max(1000, idle + 1000))]
    return {
        "uvicorn-h11": ServerSpec("uvicorn-h11", "asgi", ["--http", "h11", "--ws", "websockets"]),
        "pagi-server": ServerSpec("pagi-server", "pagi", pagi_limit),
        "pagi-server-uvloop": ServerSpec("pagi-server-uvloop", "pagi", pagi_limit, loop="uvloop"),
        "uvicorn-httptools-uvloop": ServerSpec(
            "uvicorn-httptools-uvloop",
            "asgi",
            ["--http", "httptools", "--ws", "websockets"],
            loop="uvloop",
        ),
        "hypercorn": ServerSpec("hypercorn", "asgi"),
        # granian's backpressure (requests in flight, default its backlog, 1024) would hold
        # idle WebSockets past it in the accept queue.
        "granian": ServerSpec("granian", "asgi", ["--backpressure", str(max(1024, idle + 1000))]),
    }


@dataclass(frozen=True)
class Workload:
    """One row of the table: which run produces it and which number of that run."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    run: str  # the measurement (RUNS key) whose result holds the number
    field: str
    goal: float  # target for pagi-server (uvloop) / uvicorn httptools+uvloop
    pure_goal: float | None = None  # target for pagi-server (asyncio) / uvicorn-h11


WORKLOADS = [
    Workload("plaintext", "plaintext req/s", "req/s", True, "plaintext", "rps", 1.0, 2.0),
    Workload("json", "json req/s", "req/s", True, "json", "rps", 1.0, 2.0),
    Workload("post", "post 16 KiB echo req/s", "req/s", True, "post", "rps", 1.0, 2.0),
    Workload(
        "stream", "stream 1 MiB in 64 KiB chunks req/s", "req/s", True, "stream", "rps", 1.0, 2.0
    ),
    Workload("p99", "p99 latency, plaintext", "ms", False, "plaintext", "p99", 1.0),
    Workload(
        "ws-echo", "WebSocket echo msg/s, deflate off", "msg/s", True, "ws-echo", "msgs_per_s",
        1.0, 1.0,
    ),
    Workload(
        "ws-echo-deflate", "WebSocket echo msg/s, deflate on", "msg/s", True, "ws-echo-deflate",
        "msgs_per_s", 1.0, 1.0,
    ),
    Workload("sse", "SSE events/s, 100 streams", "events/s", True, "sse", "events_per_s", 1.0),
    Workload(
        "idle-http", "idle keep-alive HTTP connection RSS", "KiB/conn", False, "idle-http",
        "per_conn_kib", 0.5,
    ),
    Workload(
        "idle-ws", "idle WebSocket RSS", "KiB/conn", False, "idle-ws", "per_conn_kib", 0.5
    ),
]  # fmt: skip
BY_KEY = {w.key: w for w in WORKLOADS}


# --- one measurement on one fresh server ----------------------------------------------


def check_ready(server: Server, run: str) -> None:
    """Poll until it answers, then check that the app does what the run expects."""
    raw = server.wait_ready()
    status, body = response_body(raw)
    if status != 200:
        raise RuntimeError(f"readiness GET answered {status}: {raw[:200]!r}")
    if run == "plaintext" or run == "idle-http":
        ok = body == b"Hello, world!"
    elif run == "json":
        ok = json.loads(body).get("message") == "Hello, world!"
    elif run == "stream":
        ok = len(body) == 1024 * 1024
    elif run == "post":
        status, body = response_body(http_request(server.port, "POST", "/", POST_BODY))
        ok = status == 200 and body == POST_BODY
    else:  # the ws app
        ok = body == b"ok"
    if not ok:
        raise RuntimeError(f"unexpected answer for {run}: status {status}, body {body[:80]!r}")


def wrk_run(path_script: Path | None) -> Callable[[Server, argparse.Namespace], dict]:
    def measure(server: Server, args: argparse.Namespace) -> dict:
        if args.warmup > 0:
            run_wrk(
                server.port, connections=args.connections, seconds=args.warmup, script=path_script
            )
        window = CpuWindow(server.pid)
        result = run_wrk(
            server.port, connections=args.connections, seconds=args.duration, script=path_script
        )
        result.update(window.finish())
        if "rps" not in result or "p99" not in result:
            raise RuntimeError(f"could not parse wrk output: {result}")
        result["errors"] = result.get("non2xx", 0.0) + result.get("socket_errors", 0.0)
        return result

    return measure


def node_run(mode: str, *extra: str) -> Callable[[Server, argparse.Namespace], dict]:
    def measure(server: Server, args: argparse.Namespace) -> dict:
        if mode == "echo":
            url, conns = f"ws://127.0.0.1:{server.port}/ws", args.ws_conns
        else:
            url, conns = f"http://127.0.0.1:{server.port}/events", args.sse_streams
        window = CpuWindow(server.pid)  # over the client's warm-up and measurement
        result = node_client(
            [mode, url, str(conns), str(args.duration), str(args.warmup), *extra],
            args.duration + args.warmup + 40,
        )
        cpu = window.finish()
        result["server_cores"] = cpu["server_cores"]
        result["other_cores"] = cpu["other_cores"]
        return result

    return measure


def idle_http_run(server: Server, args: argparse.Namespace) -> dict:
    result = idle_http_memory(server, args.idle)
    if result["alive"] < args.idle:
        raise RuntimeError(f"only {result['alive']}/{args.idle} connections stayed open")
    return result


def idle_ws_run(server: Server, args: argparse.Namespace) -> dict:
    return idle_ws_memory(server, args.idle, deflate=False)


# run -> (app basename, measure)
RUNS: dict[str, tuple[str, Callable[[Server, argparse.Namespace], dict]]] = {
    "plaintext": ("plaintext", wrk_run(None)),
    "json": ("json", wrk_run(None)),
    "post": ("echo", wrk_run(POST_SCRIPT)),
    "stream": ("stream", wrk_run(None)),
    "ws-echo": ("ws", node_run("echo")),
    "ws-echo-deflate": ("ws", node_run("echo", "deflate")),
    "sse": ("ws", node_run("sse")),
    "idle-http": ("plaintext", idle_http_run),
    "idle-ws": ("ws", idle_ws_run),
}


def brief(run: str, r: dict) -> str:
    if "rps" in r:
        return (
            f"{r['rps']:,.0f} req/s  p99 {r['p99']:.2f} ms  server CPU {r['server_cores']:.0%}"
            f"  other load {r['other_cores']:.0%}"
        )
    if "msgs_per_s" in r:
        return (
            f"{r['msgs_per_s']:,.0f} msg/s  deflate {r.get('deflate', 0)}/{r['conns']}"
            f"  client CPU {r['client_cpu']:.0%}  other load {r['other_cores']:.0%}"
        )
    if "events_per_s" in r:
        return (
            f"{r['events_per_s']:,.0f} events/s over {r['streams']} streams"
            f"  client CPU {r['client_cpu']:.0%}  other load {r['other_cores']:.0%}"
        )
    return f"{r['per_conn_kib']:.1f} KiB/conn (RSS {r['rss_before_kib'] / 1024:.1f} MiB before)"


# --- summarising ----------------------------------------------------------------------


def summarise(runs: dict[str, dict[str, list[dict]]], workloads: list[Workload]) -> dict:
    """{workload: {server: cell}} with best value, all values, spread, the best round."""
    cells: dict[str, dict[str, dict]] = {}
    for w in workloads:
        for server, results in runs.get(w.run, {}).items():
            pairs = [(float(r[w.field]), r) for r in results if w.field in r]
            if not pairs:
                continue
            values = [v for v, _ in pairs]
            best, best_run = (max if w.higher_is_better else min)(pairs, key=lambda p: p[0])
            worst = min(values) if w.higher_is_better else max(values)
            cells.setdefault(w.key, {})[server] = {
                "best": best,
                "values": values,
                "spread": abs(best - worst) / abs(best) if best else 0.0,
                "other_cores": best_run.get("other_cores"),
                "best_run": best_run,
            }
    return cells


def ratios(cells: dict, servers: list[str], workloads: list[Workload]) -> dict:
    out: dict[str, dict[str, float | None]] = {}
    for w in workloads:
        row = cells.get(w.key, {})
        base = row.get(BASELINE, {}).get("best")
        out[w.key] = {s: (row[s]["best"] / base if s in row and base else None) for s in servers}
    return out


def goal_rows(cells: dict, workloads: list[Workload], server: str, peer: str, pure: bool) -> dict:
    out: dict[str, dict[str, object]] = {}
    for w in workloads:
        target = w.pure_goal if pure else w.goal
        if target is None:
            continue
        row = cells.get(w.key, {})
        mine, theirs = row.get(server, {}).get("best"), row.get(peer, {}).get("best")
        ratio = mine / theirs if mine is not None and theirs else None
        met = None
        if ratio is not None:
            met = ratio >= target if w.higher_is_better else ratio <= target
        out[w.key] = {"ratio": ratio, "target": target, "met": met}
    return out


def fmt_value(w: Workload, value: float) -> str:
    if w.unit == "ms":
        return f"{value:.2f}"
    if w.unit == "KiB/conn":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_goal(w: Workload, goal: dict[str, object] | None) -> list[str]:
    if goal is None:
        return ["n/a", "", ""]
    ratio, met = goal["ratio"], goal["met"]
    sign = "≥" if w.higher_is_better else "≤"
    shown = f"{ratio:.2f}x" if isinstance(ratio, float) else "n/a"
    verdict = "" if met is None else "yes" if met else "**no**"
    return [shown, f"{sign} {goal['target']:.1f}x", verdict]


def build_markdown(
    args: argparse.Namespace,
    info: dict,
    git: dict,
    workloads: list[Workload],
    cells: dict,
    goal: dict,
    pure: dict,
    failures: list[str],
    seconds: float,
) -> str:
    servers = args.servers
    lines = [
        "# All workloads side by side (issue 14's goal table)",
        "",
        f"Machine: {machine_summary(info)}. Code: {git['summary']}.",
        f"Command: `{args.command}`; took {seconds / 60:.1f} min.",
        f"{args.rounds} interleaved round(s), a fresh server per cell; each cell is the best "
        "of its rounds (highest throughput, lowest latency or memory). HTTP: "
        f"`wrk -t1 -c{args.connections} -d{args.duration}s --latency` after {args.warmup}s of "
        f"warm-up; WebSocket echo: {args.ws_conns} connections, 32-byte text, ping-pong "
        f"(Node `ws`; with deflate the client compresses every message); SSE: "
        f"{args.sse_streams} streams; idle RSS: growth per connection at {args.idle} "
        "connections. One worker per server, access log off; uvicorn serves WebSockets with "
        "`--ws websockets`; hypercorn and granian run on asyncio.",
        "",
        f"## Ratios to {LABELS[BASELINE]}",
        "",
        "For rows marked *lower is better* a ratio below 1 is better. The goal column is "
        f"{LABELS[GOAL_SERVER]} / {LABELS[GOAL_PEER]}.",
        "",
    ]
    header = ["workload", f"{LABELS[BASELINE]} (absolute)"]
    header += [LABELS.get(s, s) for s in servers if s != BASELINE]
    header += [f"goal: {LABELS[GOAL_SERVER]} / {LABELS[GOAL_PEER]}", "target", "met"]
    rows = []
    for w in workloads:
        row = cells.get(w.key, {})
        title = w.title + ("" if w.higher_is_better else " (lower is better)")
        base = row.get(BASELINE, {}).get("best")
        cells_out = [title, f"{fmt_value(w, base)} {w.unit}" if base is not None else "failed"]
        for s in servers:
            if s == BASELINE:
                continue
            value = row.get(s, {}).get("best")
            cells_out.append(fmt_ratio(value, base) if value is not None else "failed")
        cells_out += fmt_goal(w, goal.get(w.key))
        rows.append(cells_out)
    lines += md_table(header, rows, "l" + "r" * (len(header) - 2) + "l")
    lines.append("")
    if pure:
        lines += [
            f"## Without extras: {LABELS[PURE_SERVER]} / {LABELS[BASELINE]}",
            "",
            *md_table(
                ["workload", "ratio", "target", "met"],
                [[BY_KEY[k].title, *fmt_goal(BY_KEY[k], g)] for k, g in pure.items()],
                "lrrl",
            ),
            "",
        ]
    lines += [
        "## Best values, spread over rounds",
        "",
        "Each cell: the best value and, in brackets, how far the worst round was from it. "
        "† marks a best round during which processes outside the test used more than 10% of "
        "a core (*other load*): treat it as suspect.",
        "",
    ]
    rows = []
    for w in workloads:
        row = cells.get(w.key, {})
        out = [w.title, w.unit]
        for s in servers:
            c = row.get(s)
            if c is None:
                out.append("failed")
                continue
            mark = " †" if (c.get("other_cores") or 0) > 0.10 else ""
            out.append(f"{fmt_value(w, c['best'])} ({c['spread']:.0%}){mark}")
        rows.append(out)
    lines += md_table(
        ["workload", "unit", *(LABELS.get(s, s) for s in servers)], rows, "ll" + "r" * len(servers)
    )
    lines.append("")
    notes = run_notes(args, cells)
    if notes:
        lines += ["## Notes", "", *(f"* {n}" for n in notes), ""]
    if failures:
        lines += ["## Failures", "", *(f"* {f}" for f in failures), ""]
    return "\n".join(lines)


def run_notes(args: argparse.Namespace, cells: dict) -> list[str]:
    """Things a reader of the ratios should know: deflate not negotiated, errors, a client
    at the limit of its core."""
    notes = []
    for s, c in cells.get("ws-echo-deflate", {}).items():
        got = c["best_run"].get("deflate", 0)
        if got < args.ws_conns:
            notes.append(
                f"{LABELS.get(s, s)} negotiated permessage-deflate on {got}/{args.ws_conns} "
                "connections: its deflate-on row is (partly) uncompressed."
            )
    for key, row in cells.items():
        if BY_KEY[key].run != key:
            continue  # p99 comes from the plaintext runs, which have their own notes
        for s, c in row.items():
            errors = c["best_run"].get("errors", 0)
            if errors:
                notes.append(f"{key} on {LABELS.get(s, s)}: {errors:.0f} errors in the best round.")
            client = c["best_run"].get("client_cpu", c["best_run"].get("client_cores", 0))
            if client >= 0.95:
                notes.append(
                    f"{key} on {LABELS.get(s, s)}: the client used {client:.0%} of its core: "
                    "the client may have set the number."
                )
    return notes


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Defaults: --rounds 3 --duration 3 --warmup 1 --idle 2000; --quick: "
        "--rounds 1 --duration 1 --warmup 0 --idle 200, written to all-quick-latest.*.",
    )
    parser.add_argument(
        "--servers", nargs="+", choices=list(LABELS), default=list(LABELS), metavar="SERVER",
        help=f"servers to run (default: all; {BASELINE} always runs): {', '.join(LABELS)}",
    )  # fmt: skip
    parser.add_argument(
        "--workloads", nargs="+", choices=list(BY_KEY), default=list(BY_KEY), metavar="WORKLOAD",
        help=f"rows to run (default: all): {', '.join(BY_KEY)}",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, help="interleaved rounds; a cell is the best")
    parser.add_argument("--duration", type=int, help="seconds measured per cell")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up load per cell")
    parser.add_argument("--idle", type=int, help="idle connections for the RSS rows")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--ws-conns", type=int, default=50, help="WebSocket echo connections")
    parser.add_argument("--sse-streams", type=int, default=100, help="SSE streams")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (see the defaults below)"
    )
    args = parser.parse_args(argv)
    defaults = (
        {"rounds": 1, "duration": 1, "warmup": 0, "idle": 200}
        if args.quick
        else {"rounds": 3, "duration": 3, "warmup": 1, "idle": 2000}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds < 1 or args.duration < 1 or args.idle < 1:
        parser.error("--rounds, --duration and --idle must be at least 1")
    # Keep the table's column order whatever order --servers came in; the baseline is
    # always measured (every ratio needs it).
    chosen = set(args.servers) | {BASELINE}
    args.servers = [s for s in LABELS if s in chosen]
    args.workloads = [k for k in BY_KEY if k in args.workloads]
    args.command = " ".join(
        ["python3 bench/run_all.py", *(argv if argv is not None else sys.argv[1:])]
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [BY_KEY[k] for k in args.workloads]
    needed = [r for r in RUNS if any(w.run == r for w in workloads)]
    if any(r in ("plaintext", "json", "post", "stream") for r in needed):
        require_tool("wrk", "sudo apt-get update && sudo apt-get install -y wrk")
    if any(RUNS[r][0] == "ws" for r in needed):
        check_node_client()
    check_python_envs()
    # Every idle connection is an fd in the client and one in the server (which inherits it).
    limit = raise_fd_limit(args.idle + 4096)
    if limit < args.idle + 256:
        raise SystemExit(f"error: open-file limit {limit} is too low for --idle {args.idle}")
    specs = make_servers(args.idle)
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    info, git = machine_info(), git_state()
    total = args.rounds * len(needed) * len(args.servers)
    print(f"{machine_summary(info)}; {git['summary']}")
    print(
        f"{total} cells: {args.rounds} round(s) x {len(needed)} runs x {len(args.servers)} servers"
    )
    runs: dict[str, dict[str, list[dict]]] = {}
    failures: list[str] = []
    started = time.monotonic()
    done = 0
    for round_no in range(1, args.rounds + 1):
        shift = (round_no - 1) % len(args.servers)
        order = args.servers[shift:] + args.servers[:shift]
        for run in needed:
            app, measure = RUNS[run]
            for name in order:
                done += 1
                print(
                    f"[{time.monotonic() - started:5.0f}s] {done}/{total} round {round_no}: "
                    f"{run} / {name} ...",
                    flush=True,
                )
                try:
                    with running(specs[name], app, log_dir=log_dir) as server:
                        check_ready(server, run)
                        result = measure(server, args)
                    result["round"] = round_no
                    runs.setdefault(run, {}).setdefault(name, []).append(result)
                    print(f"         {brief(run, result)}", flush=True)
                except Exception as exc:
                    failures.append(f"round {round_no}: {run} / {name}: {exc}")
                    print(f"         FAILED: {exc}", flush=True)
    seconds = time.monotonic() - started

    cells = summarise(runs, workloads)
    goal = goal_rows(cells, workloads, GOAL_SERVER, GOAL_PEER, pure=False)
    pure = goal_rows(cells, workloads, PURE_SERVER, BASELINE, pure=True)
    markdown = build_markdown(args, info, git, workloads, cells, goal, pure, failures, seconds)
    payload = {
        "format": "pagi-bench-all/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "machine": {**info, "summary": machine_summary(info)},
        "git": git,
        "args": vars(args),
        "baseline": BASELINE,
        "goal_pair": [GOAL_SERVER, GOAL_PEER],
        "servers": [{"key": s, "label": LABELS[s], **asdict(specs[s])} for s in args.servers],
        "workloads": [asdict(w) for w in workloads],
        "cells": cells,
        "ratios": ratios(cells, args.servers, workloads),
        "goal": goal,
        "goal_without_extras": pure,
        "runs": runs,
        "failures": failures,
    }
    stem = "all-quick" if args.quick else "all"
    path = write_results(stem, payload, markdown, latest_json=True)
    print()
    print(markdown)
    print(f"results: {RESULTS / (stem + '-latest.json')} and .md (copies: {path.name}, .md)")
    print(f"total time: {seconds:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
