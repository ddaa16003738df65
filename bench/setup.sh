#!/usr/bin/env bash
# Install what the benchmarks need, into bench/ only (bench/.venv, bench/node_modules).
# Run from anywhere:  bash bench/setup.sh
# System tools (wrk, taskset, node) are checked, not installed: the message says how.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"

missing=0
need() {  # need TOOL HINT
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "missing: $1 -- install it with: $2" >&2
    missing=1
  fi
}
need uv "pip install uv  (or see the uv docs)"
need wrk "sudo apt-get update && sudo apt-get install -y wrk"
need h2load "sudo apt-get update && sudo apt-get install -y nghttp2-client  (HTTP/2 load, run_h2.py)"
need node "sudo apt-get install -y nodejs npm  (Node 18+)"
need npm "sudo apt-get install -y npm"
command -v taskset >/dev/null 2>&1 || echo "note: taskset not found (util-linux); runs will not pin CPUs" >&2
[ "$missing" = 0 ] || exit 2

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "the workspace environment is missing: run 'uv sync' in $ROOT first" >&2
  exit 2
fi
# Same interpreter version as the workspace, so pagi-server and the peers run on one Python.
PYVER="$("$ROOT/.venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [ ! -x "$BENCH/.venv/bin/python" ]; then
  uv venv --python "$PYVER" "$BENCH/.venv"
fi
uv pip install --python "$BENCH/.venv/bin/python" -r "$BENCH/requirements.txt"
(cd "$BENCH" && npm install --no-audit --no-fund --no-package-lock)
echo "bench setup done: python3 bench/run_http.py ; python3 bench/run_h2.py ; python3 bench/run_ws.py"
