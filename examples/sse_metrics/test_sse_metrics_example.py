"""The metrics dashboard over a real pagi-server: the stream, then the chart in Chromium."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve

FAST = {"METRICS_INTERVAL": "0.05"}
SSE_HEADERS = {"accept": "text/event-stream"}


def samples(url: str, headers: dict[str, str]) -> Iterator[tuple[str, dict]]:
    """(id, sample) pairs from /metrics."""
    with httpx.stream("GET", url + "/metrics", headers=headers, timeout=10) as stream:
        event_id = ""
        for line in stream.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                yield event_id, json.loads(line[6:])


def test_the_stream_backfills_resumes_and_counts_requests(tmp_path: Path) -> None:
    with serve("sse_metrics/app.py", tmp_path, env=FAST) as server:
        for _ in range(5):
            assert httpx.get(server.url + "/work?ms=1").json() == {"worked_ms": 1}
        stream = samples(server.url, SSE_HEADERS)
        first_id, first = next(stream)
        assert first_id == "1"  # the kept samples come first
        assert set(first) == {"t", "rps", "requests", "cpu", "lag_ms", "streams"}
        deadline = time.monotonic() + 10
        seen = first_id
        for sample_id, sample in stream:  # until a sample counts the five requests
            seen = sample_id
            if sample["requests"] >= 5 and sample["streams"] == 1:
                break
            assert time.monotonic() < deadline, sample
        stream.close()

        resumed = samples(server.url, {**SSE_HEADERS, "last-event-id": seen})
        assert int(next(resumed)[0]) == int(seen) + 1  # only what was missed
        resumed.close()


def test_bad_work_requests_are_400(tmp_path: Path) -> None:
    with serve("sse_metrics/app.py", tmp_path, env=FAST) as server:
        for ms in ("lots", "-1", "501", ""):
            response = httpx.get(server.url + "/work", params={"ms": ms})
            assert response.status_code == 400, ms
            assert "ms must be a whole number of milliseconds" in response.text


def test_the_chart_draws_live_in_chromium(tmp_path: Path) -> None:
    with serve("sse_metrics/app.py", tmp_path, env=FAST) as server, chromium(tmp_path) as devtools:
        with Page.open(devtools, server.url + "/") as page:
            page.wait("document.body?.dataset.stream === 'open'")
            points = "document.querySelector('#chart-rps polyline').getAttribute('points')"
            page.wait(f"{points}.split(' ').length >= 10")
            # Every point is a pair of finite numbers inside the 300 x 100 view box.
            pairs = [p.split(",") for p in page.eval(points).split(" ")]
            assert all(0 <= float(x) <= 300 and 0 <= float(y) <= 100 for x, y in pairs)

            page.eval("document.getElementById('load').click()")  # 20 requests to /work
            page.wait("Number(document.getElementById('requests').textContent) >= 21")
            page.wait("Number(document.getElementById('value-streams').textContent) === 1")
            # The line moves: a later snapshot differs from an earlier one.
            before = page.eval(points)
            page.wait(f"{points} !== {json.dumps(before)}")
