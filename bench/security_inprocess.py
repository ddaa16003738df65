"""CPU cost of the security stacks without a server: ``run_security.py --in-process`` runs this.

``python bench/security_inprocess.py pagi|asgi [--calls N]`` imports
``apps/pagi_security.py`` or ``apps/asgi_security.py`` in this interpreter,
logs in once to get a session cookie, then calls the app directly N times
per path (``/bare``, ``/stack``) with the benchmark's request headers and
prints one JSON line: CPU microseconds per call (``time.process_time``, so
other processes on a busy machine do not inflate it), best of 5 batches.
What it measures is the app and middleware alone: no sockets, no parsing.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))


def scope_for(side: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    if side == "asgi":
        scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
    return scope


async def measure(side: str, calls: int) -> dict[str, float]:
    module = __import__(f"{side}_security")
    app = module.app
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more": False, "more_body": False}

    async def send(event: dict) -> None:
        sent.append(event)

    await app(scope_for(side, "/login", []), receive, send)
    cookie = next(v for k, v in sent[0]["headers"] if k == b"set-cookie").split(b";")[0]
    headers = [
        (b"origin", b"https://app.example"),
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"cookie", cookie),
    ]
    result: dict[str, float] = {}
    for path in ("/bare", "/stack"):
        base = scope_for(side, path, headers)
        sent.clear()
        await app(dict(base), receive, send)
        if b'"bench"' not in sent[-1]["body"] and path == "/stack":
            raise SystemExit(f"{side} {path} did not read the session: {sent[-1]!r}")
        best = float("inf")
        for _ in range(5):
            gc.collect()
            started = time.process_time()
            for _ in range(calls):
                sent.clear()
                await app(dict(base), receive, send)
            best = min(best, (time.process_time() - started) / calls * 1e6)
        result[path.strip("/")] = best
    return result


def main() -> None:
    side = sys.argv[1]
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 5000
    print(json.dumps({"side": side, **asyncio.run(measure(side, calls))}))


if __name__ == "__main__":
    main()
