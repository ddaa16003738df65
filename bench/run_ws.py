"""WebSocket and SSE side by side: pagi-server vs uvicorn (websockets, wsproto), hypercorn, granian.

Run from the repo root:  python3 bench/run_ws.py      (options: --help)

Per server (one worker, pinned to CPU 0; the Node load client on CPU 1):

* echo: 50 WebSocket connections in a ping-pong loop with 32-byte text
  messages, no compression; messages/s echoed after a warm-up;
* sse: 100 concurrent event streams, the app sends small events as fast as
  the server takes them; events/s received by the client (ASGI servers get
  a hand-written text/event-stream response, pagi-server its ``sse`` scope);
* memory per idle WebSocket: RSS before and after opening 500 connections
  (one echo each), once without and once with permessage-deflate offered.

The client reports its own CPU use; near 100% of a core means the client,
not the server, set the number. Prints Markdown tables with ratios against
uvicorn-websockets and writes them to bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    CpuWindow,
    Server,
    ServerSpec,
    check_node_client,
    check_python_envs,
    fmt_ratio,
    idle_ws_memory,
    machine_summary,
    node_client,
    response_body,
    running,
    source_state,
    write_results,
)

SERVERS = {
    "pagi-server": ServerSpec("pagi-server", "pagi"),
    "uvicorn-websockets": ServerSpec(
        "uvicorn-websockets", "asgi", ["--http", "h11", "--ws", "websockets"]
    ),
    "uvicorn-wsproto": ServerSpec("uvicorn-wsproto", "asgi", ["--http", "h11", "--ws", "wsproto"]),
    "hypercorn": ServerSpec("hypercorn", "asgi"),
    "granian": ServerSpec("granian", "asgi"),
}
BASELINE = "uvicorn-websockets"


def ready(server: Server) -> None:
    status, body = response_body(server.wait_ready())
    if status != 200 or body != b"ok":
        raise RuntimeError(f"{server.spec.name}: readiness GET answered {status} {body[:80]!r}")


def measure(name: str, args: argparse.Namespace, log_dir: Path, failures: list[str]) -> dict:
    spec = SERVERS[name]
    result: dict[str, dict[str, float]] = {}
    steps = [
        ("echo", lambda s: node_client(
            ["echo", f"ws://127.0.0.1:{s.port}/ws", str(args.ws_conns),
             str(args.duration), str(args.warmup)],
            args.duration + args.warmup + 40,
        )),
        ("sse", lambda s: node_client(
            ["sse", f"http://127.0.0.1:{s.port}/events", str(args.sse_conns),
             str(args.duration), str(args.warmup)],
            args.duration + args.warmup + 40,
        )),
    ]  # fmt: skip
    if args.idle > 0:
        steps += [
            ("idle", lambda s: idle_ws_memory(s, args.idle, deflate=False)),
            ("idle_deflate", lambda s: idle_ws_memory(s, args.idle, deflate=True)),
        ]
    for step, fn in steps:
        if step not in args.tests and not (step.startswith("idle") and "idle" in args.tests):
            continue
        # A fresh server per step: one step's leftovers never weigh on the next.
        try:
            with running(spec, "ws", log_dir=log_dir) as server:
                ready(server)
                window = CpuWindow(server.pid)
                result[step] = fn(server)
                if not step.startswith("idle"):
                    # over warm-up + measurement; the client's own figure is the measured part
                    cpu = window.finish()
                    result[step]["server_cores"] = cpu["server_cores"]
                    result[step]["other_cores"] = cpu["other_cores"]
            print(f"         {step}: {summary(step, result[step])}", flush=True)
        except Exception as exc:
            failures.append(f"{name} / {step}: {exc}")
            print(f"         {step}: FAILED: {exc}", flush=True)
    return result


def summary(step: str, r: dict[str, float]) -> str:
    if step == "echo":
        return f"{r['msgs_per_s']:,.0f} msg/s (client CPU {r['client_cpu']:.0%})"
    if step == "sse":
        return f"{r['events_per_s']:,.0f} events/s over {r['streams']} streams"
    return f"{r['per_conn_kib']:.1f} KiB/conn (deflate on {r['deflate_negotiated']})"


def build_markdown(args: argparse.Namespace, results: dict, failures: list[str]) -> str:
    def get(name: str, step: str, key: str) -> float | None:
        value = results.get(name, {}).get(step, {}).get(key)
        return None if value is None else float(value)

    def missing(step: str) -> str:
        return "failed" if step in args.tests else "not run"

    lines = [
        "# WebSocket and SSE side by side",
        "",
        f"Machine: {machine_summary()}. Code: {source_state()}.",
        "One worker per server, asyncio loop, Node `ws` client. *client CPU*: the load "
        "client's share of its core (near 100% = the client may be the limit); *other "
        "load*: CPU (% of one core) used by processes outside the test: above ~10% the "
        "row is suspect.",
        "",
        f"## WebSocket echo ({args.ws_conns} connections, 32-byte text, ping-pong, "
        f"{args.duration}s after {args.warmup}s warm-up)",
        "",
        "| server | msg/s | vs uvicorn-websockets | server CPU | client CPU | other load "
        "| errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = get(BASELINE, "echo", "msgs_per_s")
    for name in args.servers:
        r = results.get(name, {}).get("echo")
        if r is None:
            lines.append(f"| {name} | {missing('echo')} | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['msgs_per_s']:,.0f} | {fmt_ratio(r['msgs_per_s'], base)} | "
            f"{r.get('server_cores', 0):.0%} | {r['client_cpu']:.0%} | "
            f"{r.get('other_cores', 0):.0%} | {r['errors']} |"
        )
    lines += [
        "",
        f"## SSE ({args.sse_conns} streams, small events as fast as the server takes them)",
        "",
        "| server | events/s | vs uvicorn-websockets | streams | server CPU | client CPU "
        "| other load | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = get(BASELINE, "sse", "events_per_s")
    for name in args.servers:
        r = results.get(name, {}).get("sse")
        if r is None:
            lines.append(f"| {name} | {missing('sse')} | | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['events_per_s']:,.0f} | {fmt_ratio(r['events_per_s'], base)} | "
            f"{r['streams']} | {r.get('server_cores', 0):.0%} | {r['client_cpu']:.0%} | "
            f"{r.get('other_cores', 0):.0%} | {r['errors']} |"
        )
    if args.idle > 0 and "idle" in args.tests:
        lines += [
            "",
            f"## memory per idle WebSocket ({args.idle} connections, one echo each)",
            "",
            "| server | RSS before MiB | KiB/conn | vs uvicorn-websockets | "
            "KiB/conn, deflate offered | deflate accepted | vs uvicorn-websockets |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        base_plain = get(BASELINE, "idle", "per_conn_kib")
        base_deflate = get(BASELINE, "idle_deflate", "per_conn_kib")
        for name in args.servers:
            plain = results.get(name, {}).get("idle")
            deflate = results.get(name, {}).get("idle_deflate")
            cells = [name]
            cells += (
                [f"{plain['rss_before_kib'] / 1024:.1f}", f"{plain['per_conn_kib']:.1f}",
                 fmt_ratio(plain["per_conn_kib"], base_plain)]
                if plain else ["failed", "", ""]
            )  # fmt: skip
            cells += (
                [f"{deflate['per_conn_kib']:.1f}",
                 f"{deflate['deflate_negotiated']}/{args.idle}",
                 fmt_ratio(deflate["per_conn_kib"], base_deflate)]
                if deflate else ["failed", "", ""]
            )  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if failures:
        lines += ["## failures", ""] + [f"* {f}" for f in failures] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument(
        "--tests", nargs="+", default=["echo", "sse", "idle"], choices=["echo", "sse", "idle"]
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds measured per test")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per test")
    parser.add_argument("--ws-conns", type=int, default=50, help="echo connections")
    parser.add_argument("--sse-conns", type=int, default=100, help="SSE streams")
    parser.add_argument("--idle", type=int, default=500, help="idle WebSockets (0 = skip)")
    args = parser.parse_args()
    if BASELINE not in args.servers:
        args.servers.insert(0, BASELINE)

    check_node_client()
    check_python_envs()
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    results: dict[str, dict] = {}
    failures: list[str] = []
    started = time.monotonic()
    for name in args.servers:
        print(f"[{time.monotonic() - started:5.0f}s] {name} ...", flush=True)
        results[name] = measure(name, args, log_dir, failures)

    markdown = build_markdown(args, results, failures)
    payload = {
        "machine": machine_summary(),
        "code": source_state(),
        "args": vars(args),
        "results": results,
        "failures": failures,
    }
    path = write_results("ws", payload, markdown)
    print()
    print(markdown)
    print(f"results: {path} (and {path.with_suffix('.md').name})")
    print(f"total time: {time.monotonic() - started:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
