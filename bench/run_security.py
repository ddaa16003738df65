"""The security middleware stack: pagi-server + pagi.tools vs Starlette on uvicorn (h11, httptools).

Run from the repo root:  python3 bench/run_security.py      (options: --help)

Cells (each on a fresh server pinned to CPU 0, wrk pinned to CPU 1; a 1 s
warm-up then ``wrk -t1 -c50 -d<duration>s``; best of ``--rounds`` rounds,
round-robin over servers):

* ``stack``: ProxyHeaders + TrustedHost + SecurityHeaders + CORS + Session
  (cookie store, read only) around a router route returning a small JSON
  dict that includes a value read from the session;
* ``bare``: the same route without the stack (the overhead baseline).

Every request carries what makes each layer work: ``X-Forwarded-For`` (the
peer 127.0.0.1 is a trusted proxy), an allowed ``Origin``, and the session
cookie the server itself issued from ``/login`` before the run (the body is
checked to contain the session's value, so the session really is read).

pagi-server runs ``bench/apps/pagi_security.py``; uvicorn runs
``bench/apps/asgi_security.py`` (uvicorn's ProxyHeadersMiddleware, Starlette's
TrustedHost/CORS/Session middleware and a pure-ASGI security-headers
middleware) with ``--no-proxy-headers`` so the proxy rule runs once.
Columns: req/s, ratios to each uvicorn on the same cell, server CPU per
request, the overhead of the stack against the bare route, and the CPU
other processes took while measuring (the machine may be shared).

Last, ``bench/security_inprocess.py`` calls both apps directly, without a
server, and reports CPU time per call (``time.process_time``): the cost of
the middleware stacks alone, and a figure that a busy machine disturbs far
less than req/s.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    PAGI_PY,
    PEER_PY,
    RESULTS,
    CpuWindow,
    ServerSpec,
    check_python_envs,
    http_get,
    machine_summary,
    require_tool,
    response_body,
    run_wrk,
    running,
    source_state,
    write_results,
)

SERVERS = {
    "pagi-server": ServerSpec("pagi-server", "pagi"),
    "uvicorn-h11": ServerSpec("uvicorn-h11", "asgi", ["--http", "h11", "--no-proxy-headers"]),
    "uvicorn-httptools": ServerSpec(
        "uvicorn-httptools", "asgi", ["--http", "httptools", "--no-proxy-headers"]
    ),
}
CELLS = ("bare", "stack")
FIXED_HEADERS = {"Origin": "https://app.example", "X-Forwarded-For": "203.0.113.7"}
TARGET = 1.5  # pagi-server stack vs Starlette stack on uvicorn-h11


def session_cookie(port: int) -> str:
    """Log in once; the ``session=...`` pair the server set."""
    raw = http_get(port, "/login")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    match = re.search(r"(?im)^set-cookie:\s*(session=[^;\r\n]+)", head)
    if match is None:
        raise RuntimeError(f"/login set no session cookie: {head[:300]!r}")
    return match.group(1)


def check(port: int, path: str, headers: dict[str, str]) -> None:
    text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = http_get(port, path, headers=text)
    status, body = response_body(raw)
    if status != 200:
        raise RuntimeError(f"{path}: status {status}: {raw[:300]!r}")
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    if path == "/stack":
        if b'"bench"' not in body:
            raise RuntimeError(f"/stack did not read the session: {body[:200]!r}")
        for needed in (b"access-control-allow-origin", b"x-content-type-options"):
            if needed not in head:
                raise RuntimeError(f"/stack response lacks {needed.decode()}: {head[:400]!r}")


def wrk(port: int, path: str, headers: dict[str, str], connections: int, seconds: int) -> dict:
    return run_wrk(port, path, connections=connections, seconds=seconds, headers=headers)


def in_process_table(calls: int) -> list[str]:
    """The stacks called directly (no server): CPU per call, robust to a busy machine."""
    rows = {}
    for side, python in (("pagi", PAGI_PY), ("asgi", PEER_PY)):
        out = subprocess.run(
            [str(python), str(BENCH / "security_inprocess.py"), side, "--calls", str(calls)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            return [f"In-process run failed ({side}): {out.stderr.strip()[-300:]}"]
        rows[side] = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [
        "In process (app called directly, no server; CPU per call, best of 5 batches):",
        "",
        "| app | bare route | with the stack | stack cost |",
        "| --- | ---: | ---: | ---: |",
    ]
    for side, label in (("pagi", "pagi.tools"), ("asgi", "Starlette")):
        row = rows[side]
        cost = row["stack"] - row["bare"]
        lines.append(f"| {label} | {row['bare']:.1f} us | {row['stack']:.1f} us | {cost:+.1f} us |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--calls", type=int, default=5000, help="calls per batch for the in-process table"
    )
    args = parser.parse_args()
    check_python_envs()
    require_tool("wrk", "sudo apt-get install -y wrk")
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    failures: list[str] = []
    started = time.monotonic()
    for round_no in range(1, args.rounds + 1):
        for cell in CELLS:
            for name, spec in SERVERS.items():
                print(f"[{time.monotonic() - started:5.0f}s] round {round_no}: {name} / {cell}")
                try:
                    with running(spec, "security", log_dir=log_dir) as server:
                        server.wait_ready("/bare")
                        headers = {**FIXED_HEADERS, "Cookie": session_cookie(server.port)}
                        path = f"/{cell}"
                        check(server.port, path, headers)
                        if args.warmup:
                            wrk(server.port, path, headers, args.connections, args.warmup)
                        window = CpuWindow(server.pid)
                        result = wrk(server.port, path, headers, args.connections, args.duration)
                        result.update(window.finish())
                        result["seconds"] = float(args.duration)
                        if result.get("non2xx") or result.get("socket_errors"):
                            raise RuntimeError(f"errors under load: {result}")
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
        "# Security middleware stack",
        "",
        f"{machine_summary()}; {source_state()}; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, best of {args.rounds} rounds. Stack: ProxyHeaders + "
        "TrustedHost + SecurityHeaders + CORS + Session (cookie, read only).",
        "",
        "| cell | server | req/s | vs uvicorn-h11 | vs uvicorn-httptools | server CPU "
        "| p99 ms | other load | spread |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in CELLS:
        for name in SERVERS:
            row = best.get((name, cell))
            if row is None:
                continue
            rps = [r["rps"] for r in runs[(name, cell)]]
            spread = (max(rps) - min(rps)) / max(rps) if max(rps) else 0.0
            cpu_us = row["server_cores"] * row["seconds"] * 1e6 / max(row["requests"], 1)

            def ratio(base: str, cell: str = cell, value: float = row["rps"]) -> str:
                other = best.get((base, cell))
                return f"{value / other['rps']:.2f}x" if other else "-"

            lines.append(
                f"| {cell} | {name} | {row['rps']:,.0f} | {ratio('uvicorn-h11')} | "
                f"{ratio('uvicorn-httptools')} | {cpu_us:.0f} us/req | "
                f"{row.get('p99', float('nan')):.2f} | {row['other_cores']:.0%} | {spread:.0%} |"
            )
    lines += ["", "| server | stack overhead vs bare route (req/s) | extra CPU per request |"]
    lines += ["| --- | ---: | ---: |"]
    for name in SERVERS:
        bare, stack = best.get((name, "bare")), best.get((name, "stack"))
        if bare and stack:
            drop = 1 - stack["rps"] / bare["rps"]

            def per_request(row: dict) -> float:
                return row["server_cores"] * row["seconds"] * 1e6 / max(row["requests"], 1)

            extra = per_request(stack) - per_request(bare)
            lines.append(f"| {name} | {drop:+.1%} | {extra:+.0f} us |")
    lines += ["", *in_process_table(args.calls)]
    ours, theirs = best.get(("pagi-server", "stack")), best.get(("uvicorn-h11", "stack"))
    if ours and theirs:
        ratio = ours["rps"] / theirs["rps"]
        verdict = "met" if ratio >= TARGET else "NOT met"
        lines += ["", f"Target >= {TARGET}x Starlette on uvicorn-h11: {ratio:.2f}x ({verdict})."]
    if failures:
        lines += ["", "Failures:", *[f"- {f}" for f in failures]]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    payload = {"runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()}, "failures": failures}
    write_results("security", payload, markdown)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
