"""Every Python block marked ``<!-- runnable -->`` in docs/ runs, apps against the test client.

Mark a block by putting ``<!-- runnable -->`` on the line before its
opening fence. Each block runs on its own, as a fresh module; its asserts
are the test. The module maps and the benchmark charts are checked here too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BLOCK = re.compile(r"<!-- runnable -->\n```python\n(.*?)\n```", re.S)


def runnable_blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for number, match in enumerate(BLOCK.finditer(text), 1):
            found.append((f"{page.relative_to(DOCS)}#{number}", match.group(1)))
    return found


BLOCKS = runnable_blocks()


def test_there_are_runnable_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_block_runs(where: str, code: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": f"docs_block_{abs(hash(where))}"})


def test_module_maps_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(DOCS / "architecture" / "gen_module_map.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_benchmark_charts_are_drawn_from_the_results_files(tmp_path: Path) -> None:
    """bench/results is not in git, so the script is run on small files in each layout."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import plot_results
    finally:
        sys.path.remove(str(ROOT / "bench"))
    results = tmp_path / "results"
    results.mkdir()
    rounds = [{"rps": 100.0}, {"rps": 250.0}]
    layouts = {
        "all": {
            "baseline": "uvicorn-h11",
            "servers": [{"key": "uvicorn-h11", "label": "uvicorn h11"}, {"key": "pagi-server"}],
            "workloads": [
                {"key": "json", "title": "json req/s", "higher_is_better": True},
                {"key": "idle-ws", "title": "idle WebSocket RSS", "higher_is_better": False},
            ],
            "ratios": {
                "json": {"uvicorn-h11": 1.0, "pagi-server": 2.0},
                "idle-ws": {"uvicorn-h11": 1.0, "pagi-server": None},
            },
            "git": {"commit": "0123456789abcdef"},
        },
        "h2": {"rows": [{"server": "pagi-server", "app": "json", "rps": 5.0}]},
        "bridges": {"runs": {"flask//json/pagi-server --interface wsgi": rounds}},
        "middleware": {"runs": {"pagi-server/json": rounds}},
        "security": {"runs": {"pagi-server/bare": rounds}},
        "fanout": {"results": {"pagi": {"sse-1000": {"deliveries_per_s": 9.0}}}},
    }
    for family, data in layouts.items():
        (results / f"{family}-20260101-000000.json").write_text(json.dumps(data))
    assert plot_results.series("bridges", layouts["bridges"])[1] == {
        "flask json": {"pagi-server --interface wsgi": 250.0}
    }
    # run_all.py: ratios without the baseline (the 1x line); a failed cell is left out.
    assert plot_results.series("all", layouts["all"])[1] == {
        "json req/s": {"pagi-server": 2.0},
        "idle WebSocket RSS (lower is better)": {},
    }
    # family-latest.json wins over stamped files; a --quick run (all-quick-*) never counts.
    (results / "all-quick-20270101-000000.json").write_text(json.dumps(layouts["all"]))
    assert plot_results.newest(results, "all").name == "all-20260101-000000.json"
    (results / "all-latest.json").write_text(json.dumps(layouts["all"]))
    assert plot_results.newest(results, "all").name == "all-latest.json"
    made = plot_results.main(["--results", str(results), "--out", str(tmp_path / "out")])
    assert {path.name for path in made} == {f"{family}.png" for family in layouts}
    for path in made:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # The docs page shows the committed chart of each family.
        assert (DOCS / "benchmarks" / path.name).exists()
        assert f"]({path.name})" in (DOCS / "benchmarks" / "index.md").read_text()
