"""HTTP/1.x request parsing cost: our parser against h11 and llhttp (httptools).

CPU per request head, in one process, pinned to one core: a typical browser
head parsed alone, and sixteen of them pipelined in one buffer. The numbers
are per head, best of several rounds, so a busy machine shifts them less than
a throughput benchmark. Run from the repo root with the workspace's Python:

    uv run python bench/run_parser.py [--rounds 7] [--heads 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import h11
import httptools

from pagi.server.protocols.http1_parser import HeadParser

HEAD = (
    b"GET /plaintext?page=2 HTTP/1.1\r\nHost: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n\r\n"
)
PIPELINE = 16
LIMITS = {"max_line": 8192, "max_head": 16384, "max_fields": 100, "max_body": 10 << 20}


def ours(data: bytes) -> int:
    parser = HeadParser(**LIMITS)
    buf = bytearray(data)
    count = 0
    while buf:
        if parser.parse(buf) is None:
            break
        count += 1
    return count


def with_h11(data: bytes) -> int:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    count = 0
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            count += 1
        elif isinstance(event, h11.EndOfMessage):
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        else:
            return count


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def on_message_complete(self) -> None:
        self.count += 1


def with_llhttp(data: bytes) -> int:
    counter = _Counter()
    httptools.HttpRequestParser(counter).feed_data(data)
    return counter.count


def per_head(parse: Callable[[bytes], int], data: bytes, heads: int, rounds: int) -> float:
    per_call = data.count(b"\r\n\r\n")
    calls = max(1, heads // per_call)
    assert parse(data) == per_call, parse.__name__
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(calls):
            parse(data)
        best = min(best, time.perf_counter() - began)
    return best / (calls * per_call) * 1e6


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=7)
    options.add_argument("--heads", type=int, default=20000)
    args = options.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = []
    for name, data in (("one head", HEAD), (f"{PIPELINE} pipelined", HEAD * PIPELINE)):
        costs = {
            parse.__name__: per_head(parse, data, args.heads, args.rounds)
            for parse in (ours, with_h11, with_llhttp)
        }
        rows.append((name, costs))
    print("| workload | pagi parser (us/head) | h11 | llhttp (httptools, C) | h11 / pagi |")
    print("|---|---|---|---|---|")
    for name, costs in rows:
        print(
            f"| {name} | {costs['ours']:.2f} | {costs['with_h11']:.2f} | "
            f"{costs['with_llhttp']:.2f} | {costs['with_h11'] / costs['ours']:.1f}x |"
        )


if __name__ == "__main__":
    main()
