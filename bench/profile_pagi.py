"""Profile pagi-server under wrk load with py-spy; list hot spots by self and total time.

Run from the repo root:  python3 bench/profile_pagi.py      (options: --help)

Starts pagi-server with one app (default: plaintext) pinned to CPU 0, puts
it under ``wrk -t1 -c50`` on CPU 1, and samples it with ``py-spy record``
(from bench/.venv, non-blocking, so the server is not paused) for the
duration of the load. Writes the raw collapsed stacks (Brendan Gregg's
format: open them in speedscope or flamegraph.pl) to bench/results/, and
prints the top functions by *self* time (samples where the function itself
was running) and by *total* time (samples where it was anywhere on the
stack).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    CLIENT_CPU,
    PEER_BIN,
    RESULTS,
    ServerSpec,
    check_python_envs,
    pinned,
    require_tool,
    running,
)

LOAD_JS = BENCH / "clients" / "load.js"

# Entry-point frames on every stack: left out of the "total" table.
ROOTS = (
    "<frozen runpy>",
    "server/__main__.py",
    "server/cli.py",
    "server/runner.py",
    "Server.run (",
    "anyio/_core/_eventloop.py",
    "AsyncIOBackend.run (",
    "asyncio/runners.py",
    "run_forever (",
    "run_until_complete (",
    "_run_once (",
)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def short(frame: str, by_line: bool) -> str:
    """'send (pagi/server/streams/http.py:120)' -> 'send (streams/http.py)'."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "python3.11/", "lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    line = f":{match.group('line')}" if by_line and match.group("line") else ""
    return f"{match.group('func')} ({path}{line})"


def analyse(raw: Path, top: int, by_line: bool) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f, by_line) for f in stack.split(";")]
        # py-spy puts the process/thread first; keep only Python frames.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        samples += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            total_time[frame] += count
    lines = [f"{samples} samples", "", f"top {top} by self time:", ""]
    lines += ["| self % | total % | function |", "| ---: | ---: | --- |"]
    for frame, count in self_time.most_common(top):
        lines.append(
            f"| {100 * count / samples:5.1f} | {100 * total_time[frame] / samples:5.1f} | "
            f"`{frame}` |"
        )
    lines += ["", f"top {top} by total time:", ""]
    lines += ["| total % | self % | function |", "| ---: | ---: | --- |"]
    roots = [f for f in total_time if any(r in f for r in ROOTS)]
    for frame in roots:
        del total_time[frame]
    for frame, count in total_time.most_common(top):
        lines.append(
            f"| {100 * count / samples:5.1f} | {100 * self_time[frame] / samples:5.1f} | "
            f"`{frame}` |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--app",
        default="plaintext",
        choices=["plaintext", "json", "echo", "stream", "ws-echo", "ws-echo-deflate", "sse"],
        help="HTTP apps run under wrk (echo POSTs 16 KiB); ws-echo(-deflate) and sse under "
        "the Node client of run_ws.py",
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds of load and sampling")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by-line", action="store_true", help="aggregate by source line")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop", "trio"])
    parser.add_argument(
        "--raw", type=Path, help="only analyse an existing raw py-spy file, run nothing"
    )
    args = parser.parse_args()
    if args.raw is not None:
        print(analyse(args.raw, args.top, args.by_line))
        return 0

    require_tool("wrk", "sudo apt-get update && sudo apt-get install -y wrk")
    check_python_envs()
    py_spy = PEER_BIN / "py-spy"
    if not py_spy.exists():
        raise SystemExit("error: bench/.venv/bin/py-spy is missing: run `bash bench/setup.sh`")
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / f"profile-{args.app}-{stamp}.txt"

    spec = ServerSpec("pagi-server", "pagi", ["--loop", args.loop])
    server_app = "ws" if args.app in ("ws-echo", "ws-echo-deflate", "sse") else args.app
    with running(spec, server_app, log_dir=log_dir) as server:
        server.wait_ready()
        url = f"http://127.0.0.1:{server.port}/"
        if args.app in ("ws-echo", "ws-echo-deflate"):
            load_cmd = ["node", str(LOAD_JS), "echo", f"ws://127.0.0.1:{server.port}/ws", "50"]
            load_cmd += [str(args.duration + 1), "1"]
            if args.app == "ws-echo-deflate":
                load_cmd.append("deflate")
        elif args.app == "sse":
            load_cmd = ["node", str(LOAD_JS), "sse", url + "events", "100"]
            load_cmd += [str(args.duration + 1), "1"]
        else:
            # echo: every request POSTs 16 KiB (the run_all.py post workload).
            script = ["-s", str(BENCH / "clients" / "post16k.lua")] if args.app == "echo" else []
            load_cmd = ["wrk", "-t1", "-c50", f"-d{args.duration + 2}s", *script, url]
            warm = ["wrk", "-t1", "-c50", "-d1s", *script, url]
            subprocess.run(pinned(warm, CLIENT_CPU), capture_output=True)
        load = subprocess.Popen(pinned(load_cmd, CLIENT_CPU), stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        spy = [str(py_spy), "record", "--pid", str(server.pid), "--nonblocking"]
        spy += ["--rate", str(args.rate), "--duration", str(args.duration)]
        done = subprocess.run(
            [*spy, "--format", "raw", "--output", str(raw)], capture_output=True, text=True
        )
        out, _ = load.communicate(timeout=args.duration + 30)
    if done.returncode != 0:
        raise SystemExit(f"error: py-spy failed: {done.stderr.strip()[-500:]}")
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out or "")
    rate = rps.group(1) + " req/s" if rps else (out or "").strip()
    print(f"pagi-server / {args.app} under {' '.join(load_cmd[:2])} ...: {rate}")
    print(f"raw stacks: {raw}")
    print()
    report = analyse(raw, args.top, args.by_line)
    print(report)
    (RESULTS / f"profile-{args.app}-{stamp}.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
