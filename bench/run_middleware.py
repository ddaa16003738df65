"""Middleware costs: GZip vs Starlette's GZipMiddleware, and the ErrorHandler overhead.

Run from the repo root:  python3 bench/run_middleware.py      (options: --help)

Cells (each on a fresh server, pinned to CPU 0; wrk pinned to CPU 1, one
1 s warm-up then ``wrk -t1 -c50 -d<duration>s`` with ``Accept-Encoding:
gzip``; best of ``--rounds`` rounds, round-robin over cells):

* ``json``: a 64 KiB JSON body sent in one event, compressed whole;
* ``stream``: 1 MiB of text in 16 chunks of 64 KiB, compressed chunk by
  chunk (chunked transfer);
* ``plain`` / ``plain-eh``: the 13-byte plaintext app bare and behind
  ``ErrorHandler`` (pagi-server only).

pagi-server runs ``bench/apps/pagi_middleware.py`` (pagi.tools GZip at level
6); uvicorn (h11 and httptools) runs ``bench/apps/asgi_middleware.py``
(Starlette GZipMiddleware, also level 6). Columns: req/s, ratio to each
uvicorn, server CPU in ms per MiB of *uncompressed* body served (per
request for plaintext), the
compressed size, and the CPU other processes took while measuring.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    APPS,
    PAGI_PY,
    RESULTS,
    SERVER_CPU,
    CpuWindow,
    ServerSpec,
    check_python_envs,
    http_get,
    machine_summary,
    pinned,
    require_tool,
    response_body,
    run_wrk,
    running,
    source_state,
    write_results,
)

SERVERS = {
    "pagi-server": ServerSpec("pagi-server", "pagi"),
    "uvicorn-h11": ServerSpec("uvicorn-h11", "asgi", ["--http", "h11"]),
    "uvicorn-httptools": ServerSpec("uvicorn-httptools", "asgi", ["--http", "httptools"]),
}
CELLS = [
    ("json", "/json", ("pagi-server", "uvicorn-h11", "uvicorn-httptools")),
    ("stream", "/stream", ("pagi-server", "uvicorn-h11", "uvicorn-httptools")),
    ("plain", "/plain", ("pagi-server",)),
    ("plain-eh", "/plain-eh", ("pagi-server",)),
]
PAYLOAD_MIB = {"json": 66152 / 2**20, "stream": 1.0, "plain": 13 / 2**20, "plain-eh": 13 / 2**20}


def wrk(port: int, path: str, connections: int, seconds: int) -> dict[str, float]:
    return run_wrk(
        port, path, connections=connections, seconds=seconds, headers={"Accept-Encoding": "gzip"}
    )


def check(port: int, path: str) -> int:
    """GET once with gzip; check it is gzip (except plaintext) and decodes; compressed size."""
    raw = http_get(port, path, headers="Accept-Encoding: gzip\r\n")
    status, body = response_body(raw)
    if status != 200:
        raise RuntimeError(f"{path}: status {status}: {raw[:200]!r}")
    if path in ("/json", "/stream"):
        if b"content-encoding: gzip" not in raw.split(b"\r\n\r\n", 1)[0].lower():
            raise RuntimeError(f"{path}: response is not gzip-encoded")
        plain = gzip.decompress(body)
        want = 66152 if path == "/json" else 2**20
        if len(plain) != want:
            raise RuntimeError(f"{path}: {len(plain)} bytes decoded, want {want}")
    return len(body)


def inprocess_overhead() -> tuple[float, float]:
    """(bare, wrapped) microseconds per call of the plaintext app, no server: pure overhead."""
    code = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from pagi_middleware import plain_app
from pagi.tools.middleware import ErrorHandler
wrapped = ErrorHandler(plain_app)
scope = {"type": "http", "method": "GET", "path": "/plain", "headers": [], "query_string": b""}
async def receive():
    return {"type": "http.request", "body": b""}
async def send(event):
    pass
async def run(app, n=50000):
    began = time.perf_counter()
    for _ in range(n):
        await app(scope, receive, send)
    return (time.perf_counter() - began) / n * 1e6
async def main():
    bare = min([await run(plain_app) for _ in range(5)])
    eh = min([await run(wrapped) for _ in range(5)])
    print(bare, eh)
asyncio.run(main())
"""
    out = subprocess.run(
        pinned([str(PAGI_PY), "-c", code, str(APPS)], SERVER_CPU),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    bare, wrapped = (float(x) for x in out.stdout.split())
    return bare, wrapped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    check_python_envs()
    require_tool("wrk", "sudo apt-get install -y wrk")
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    sizes: dict[tuple[str, str], int] = {}
    failures: list[str] = []
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for cell, path, servers in CELLS:
            for name in servers:
                print(f"[{time.monotonic() - started:5.0f}s] round {round_no}: {name} / {cell}")
                try:
                    with running(SERVERS[name], "middleware", log_dir=log_dir) as server:
                        server.wait_ready("/plain")
                        sizes[(name, cell)] = check(server.port, path)
                        if args.warmup:
                            wrk(server.port, path, args.connections, args.warmup)
                        window = CpuWindow(server.pid)
                        result = wrk(server.port, path, args.connections, args.duration)
                        result.update(window.finish())
                        result["seconds"] = float(args.duration)
                        runs.setdefault((name, cell), []).append(result)
                        print(
                            f"         {result['rps']:,.0f} req/s  server CPU "
                            f"{result['server_cores']:.0%}  other {result['other_cores']:.0%}"
                        )
                except Exception as exc:
                    failures.append(f"{name} / {cell}: {exc}")
                    print(f"         FAILED: {exc}")

    best = {key: max(rows, key=lambda r: r["rps"]) for key, rows in runs.items()}
    lines = [
        "# Middleware benchmark",
        "",
        f"{machine_summary()}; {source_state()}; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, best of {args.rounds} rounds.",
        "",
        "| cell | server | req/s | vs uvicorn-h11 | vs uvicorn-httptools | server CPU "
        "| body bytes | other load | spread |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell, _, servers in CELLS:
        for name in servers:
            row = best.get((name, cell))
            if row is None:
                continue
            rps = [r["rps"] for r in runs[(name, cell)]]
            spread = (max(rps) - min(rps)) / max(rps) if max(rps) else 0.0
            cpu_s = row["server_cores"] * row["seconds"]
            if cell.startswith("plain"):
                cpu = f"{cpu_s * 1e6 / row['requests']:.0f} us/req"
            else:
                cpu = f"{cpu_s * 1000 / (row['requests'] * PAYLOAD_MIB[cell]):.1f} ms/MiB"

            def ratio(base: str, cell: str = cell, rps: float = row["rps"]) -> str:
                other = best.get((base, cell))
                return f"{rps / other['rps']:.2f}x" if other else "-"

            lines.append(
                f"| {cell} | {name} | {row['rps']:,.0f} | {ratio('uvicorn-h11')} | "
                f"{ratio('uvicorn-httptools')} | {cpu} | {sizes.get((name, cell), 0):,} | "
                f"{row['other_cores']:.0%} | {spread:.0%} |"
            )
    bare, handled = best.get(("pagi-server", "plain")), best.get(("pagi-server", "plain-eh"))
    if bare and handled:
        overhead = 1 - handled["rps"] / bare["rps"]
        lines += ["", f"ErrorHandler overhead on plaintext: {overhead:+.1%} req/s (target <= 5%)."]
    alone, wrapped = inprocess_overhead()
    extra = wrapped - alone
    note = "."
    if bare:
        per_request = bare["server_cores"] * bare["seconds"] * 1e6 / bare["requests"]
        note = f"; that is {extra / per_request:.1%} of pagi-server's CPU per plaintext request."
    lines.append(
        f"In process, no server: the plaintext app takes {alone:.2f} us per call, "
        f"{wrapped:.2f} us behind ErrorHandler (+{extra:.2f} us){note}"
    )
    if failures:
        lines += ["", "Failures:", *[f"- {f}" for f in failures]]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    payload = {"runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()}, "failures": failures}
    write_results("middleware", payload, markdown)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
