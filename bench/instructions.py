"""CPU instructions per HTTP request under callgrind: pagi-server pure vs compiled (mypyc).

Run from the repo root:  python3 bench/instructions.py      (options: --help)

On a shared machine, req/s and even CPU time per request move by tens of
percent with other load; an instruction count does not. For each app and
build, pagi-server runs under ``valgrind --tool=callgrind`` twice and
answers ``--base`` and then ``--base + --requests`` sequential keep-alive
GETs on one connection; the difference of the two totals divided by
``--requests`` is the cost of one request, start-up and shutdown cancelled
out. The pure build is the workspace's; the compiled build is a
mypyc-compiled copy of the same sources (``run_http.py``'s
``pagi-compiled``, in bench/results/pagi-compiled). Instructions are not
time (cache misses and branches differ), but they show what compiling
removes without the machine's noise.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import APPS, PAGI_PY, RESULTS, free_port, require_tool
from run_http import COMPILED_COPY, build_compiled_copy

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def _responses(sock: socket.socket, count: int) -> None:
    """Send ``count`` GETs one after another, reading each length-framed response."""
    buf = b""
    for _ in range(count):
        sock.sendall(REQUEST)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                length = re.search(rb"content-length: *(\d+)", buf[:end], re.I)
                assert length is not None, buf[:end]
                total = end + 4 + int(length.group(1))
                if len(buf) >= total:
                    buf = buf[total:]
                    break
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk


def instructions(app: str, count: int, pythonpath: Path | None) -> int:
    """Total instructions of one pagi-server process that answered ``count`` requests."""
    port = free_port()
    out = RESULTS / f"callgrind-{app}-{os.getpid()}.out"
    env = {**os.environ, "PAGI_ENV": "production"}
    env.pop("VIRTUAL_ENV", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        str(PAGI_PY),
        "-m",
        "pagi.server",
        str(APPS / f"pagi_{app}.py"),
        "--loop",
        "asyncio",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--quiet",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # start-up under valgrind takes a while
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=120)
                break
            except OSError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pagi-server under callgrind did not start ({app})"
                    ) from exc
                time.sleep(0.5)
        with sock:
            _responses(sock, count)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(300)
    text = out.read_text()
    out.unlink()
    total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    assert total is not None, f"no totals in callgrind output for {app}"
    return int(total.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", nargs="+", default=["plaintext", "json"])
    parser.add_argument("--base", type=int, default=100, help="requests in the first run")
    parser.add_argument("--requests", type=int, default=500, help="extra requests in the second")
    parser.add_argument(
        "--builds", nargs="+", default=["pure", "compiled"], choices=["pure", "compiled"]
    )
    args = parser.parse_args()
    require_tool("valgrind", "sudo apt-get install -y valgrind")
    RESULTS.mkdir(exist_ok=True)
    if "compiled" in args.builds:
        build_compiled_copy()
    print("| app | build | instructions per request |\n|---|---|---:|", flush=True)
    for app in args.apps:
        for build in args.builds:
            path = COMPILED_COPY if build == "compiled" else None
            first = instructions(app, args.base, path)
            second = instructions(app, args.base + args.requests, path)
            print(f"| {app} | {build} | {(second - first) / args.requests:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
