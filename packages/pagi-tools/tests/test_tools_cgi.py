"""pagi.tools.cgi.CGIApp: CGI/1.1 scripts (RFC 3875) as PAGI apps.

Small real scripts (python3 and /bin/sh) are written to tmp_path and run
through the in-memory test client and over an in-process pagi-server, on
asyncio and trio.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from live_server import live_server

from pagi.tools.cgi import CGIApp
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

PYTHON = sys.executable if len(sys.executable) < 120 else shutil.which("python3") or "python3"


def script(tmp_path: Path, name: str, body: str, shell: bool = False) -> Path:
    """An executable script in tmp_path: python3 unless ``shell``."""
    path = tmp_path / name
    interpreter = "/bin/sh" if shell else PYTHON
    path.write_text(f"#!{interpreter}\n{body.lstrip()}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0): it has stopped running all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def wait_gone(pid: int) -> bool:
    with anyio.move_on_after(3):
        while not gone(pid):
            await anyio.sleep(0.02)
    return gone(pid)


ENV_DUMP = """
import json, os, sys
body = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n")
print(json.dumps({"env": dict(os.environ), "body": body.decode()}))
"""


async def test_environment_from_the_scope(tmp_path: Path) -> None:
    cgi = CGIApp(script(tmp_path, "env.py", ENV_DUMP), env={"EXTRA": "yes"})
    client = AsyncTestClient(cgi, lifespan="off", root_path="/cgi-bin/env.py")
    headers = {"content-type": "text/x", "x-a": "1", "x_b": "spoof", "proxy": "http://evil:1",
               "authorization": "Basic Zm9vOmJhcg=="}  # fmt: skip
    r = await client.post("/cgi-bin/env.py/caf%C3%A9/x?q=1&r=2", content=b"body", headers=headers)
    assert r.status_code == 200
    env = r.json()["env"]
    assert r.json()["body"] == "body"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["PATH_INFO"] == "/café/x"
    assert env["QUERY_STRING"] == "q=1&r=2"
    assert env["REQUEST_URI"] == "/cgi-bin/env.py/caf%C3%A9/x?q=1&r=2"
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/x", "4")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("testserver", "80")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("127.0.0.1", "50000")
    assert env["HTTP_X_A"] == "1"
    assert env["AUTH_TYPE"] == "Basic"
    assert "HTTP_X_B" not in env  # '_' in a name is dropped
    assert "HTTP_PROXY" not in env  # httpoxy
    assert "HTTPS" not in env
    assert env["EXTRA"] == "yes"
    assert env["SCRIPT_FILENAME"] == str(tmp_path / "env.py")


async def test_status_headers_and_sh_script(tmp_path: Path) -> None:
    body = r"""printf 'Status: 201 Created\r\nContent-Type: text/plain\r\n'
printf 'X-Made: sh\r\nConnection: close\r\n\r\n'
printf 'made'
"""
    r = await AsyncTestClient(CGIApp(script(tmp_path, "s.sh", body, shell=True))).get("/")
    assert (r.status_code, r.text) == (201, "made")
    assert r.headers["x-made"] == "sh"
    assert "connection" not in r.headers  # the server frames the response


async def test_https_scheme(tmp_path: Path) -> None:
    cgi = CGIApp(script(tmp_path, "env.py", ENV_DUMP))
    r = await AsyncTestClient(cgi, base_url="https://example.org:8443").get("/")
    env = r.json()["env"]
    assert env["HTTPS"] == "on"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "8443")


async def test_body_is_streamed_as_the_script_writes(tmp_path: Path) -> None:
    body = """
import sys, time
sys.stdout.write("Content-Type: text/plain\\n\\nfirst\\n"); sys.stdout.flush()
time.sleep(0.6)
sys.stdout.write("second\\n")
"""
    client = AsyncTestClient(CGIApp(script(tmp_path, "slow.py", body)))
    async with client.stream("GET", "/") as response:
        started = time.monotonic()
        chunks = [chunk async for chunk in response.aiter_bytes()]
        arrivals = time.monotonic() - started
    assert b"".join(chunks) == b"first\nsecond\n"
    assert chunks[0] == b"first\n"  # alone: it did not wait for the rest
    assert arrivals > 0.4


async def test_local_redirect_is_dispatched_again_as_get(tmp_path: Path) -> None:
    body = """
import os, sys
sys.stdin.read()
if os.environ["PATH_INFO"] == "/old":
    sys.stdout.write("Location: /app/new?x=1\\n\\n")
else:
    sys.stdout.write("Content-Type: text/plain\\n\\n")
    sys.stdout.write(" ".join(os.environ.get(k, "-") for k in
                     ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH")))
"""
    client = AsyncTestClient(CGIApp(script(tmp_path, "r.py", body)), root_path="/app")
    r = await client.post("/app/old", content=b"form=1")
    assert (r.status_code, r.text) == (200, "GET /new x=1 -")
    assert "location" not in r.headers


async def test_client_redirects(tmp_path: Path) -> None:
    plain = script(tmp_path, "a.sh", "printf 'Location: https://example.org/x\\n\\n'", shell=True)
    r = await AsyncTestClient(CGIApp(plain)).get("/")
    assert (r.status_code, r.headers["location"]) == (302, "https://example.org/x")
    body = "printf 'Status: 301 Moved\\nLocation: /elsewhere\\nContent-Type: text/plain\\n\\nmoved'"
    moved = script(tmp_path, "b.sh", body, shell=True)
    r = await AsyncTestClient(CGIApp(moved)).get("/")
    assert (r.status_code, r.headers["location"], r.text) == (301, "/elsewhere", "moved")


async def test_redirect_loop_is_a_502(tmp_path: Path) -> None:
    loop = script(tmp_path, "loop.sh", "printf 'Location: /again\\n\\n'", shell=True)
    r = await AsyncTestClient(CGIApp(loop)).get("/")
    assert r.status_code == 502


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("this is not a header\\n\\nbody", "is not 'Name: value'"),
        ("X-Only: 1\\n\\nbody", "none of Content-Type, Location and Status"),
        ("Status: 99 Odd\\nContent-Type: text/plain\\n\\n", "Status must be"),
        ("Content-Type: text/plain\\n", "before the header's blank line"),
        ("", "printed nothing"),
    ],
)
async def test_garbage_is_a_502_with_the_reason_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, output: str, reason: str
) -> None:
    bad = script(tmp_path, "bad.sh", f"printf '{output}'", shell=True)
    with caplog.at_level(logging.ERROR, logger="pagi.tools.cgi"):
        r = await AsyncTestClient(CGIApp(bad)).get("/")
    assert (r.status_code, r.text) == (502, "Bad Gateway\n")
    assert any(reason in rec.getMessage() for rec in caplog.records if rec.name == "pagi.tools.cgi")


async def test_a_script_that_cannot_start_is_a_502(tmp_path: Path) -> None:
    path = tmp_path / "noexec.py"
    path.write_text("print('hi')\n")  # not executable
    r = await AsyncTestClient(CGIApp(path)).post("/", content=b"x" * 100)
    assert r.status_code == 502


async def test_argv_form_runs_an_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text("print('Content-Type: text/plain'); print(); print('argv', end='')\n")
    r = await AsyncTestClient(CGIApp([PYTHON, path])).get("/")
    assert (r.status_code, r.text) == (200, "argv")


async def test_stderr_goes_to_the_log_line_by_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        "printf 'one\\ntwo\\n' >&2; printf 'Content-Type: text/plain\\n\\nok'; printf 'three' >&2"
    )
    noisy = script(tmp_path, "noisy.sh", body, shell=True)
    with caplog.at_level(logging.WARNING, logger="pagi.tools.cgi"):
        r = await AsyncTestClient(CGIApp(noisy)).get("/")
    assert r.text == "ok"
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "pagi.tools.cgi"]
    assert [line.rpartition(": ")[2] for line in lines] == ["one", "two", "three"]


async def test_timeout_kills_the_process_group_and_answers_504(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    body = f"sleep 30 & echo $$ $! > {pids}; wait"
    hang = script(tmp_path, "hang.sh", body, shell=True)
    started = time.monotonic()
    r = await AsyncTestClient(CGIApp(hang, timeout=0.5)).get("/")
    assert (r.status_code, r.text) == (504, "Gateway Timeout\n")
    assert time.monotonic() - started < 3
    for pid in map(int, pids.read_text().split()):
        assert await wait_gone(pid)  # the script and the child it started


async def test_client_disconnect_kills_the_script(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    body = f"""
import os, sys, time
open({str(pidfile)!r}, "w").write(str(os.getpid()))
sys.stdout.write("Content-Type: text/plain\\n\\n")
while True:
    sys.stdout.write("tick\\n"); sys.stdout.flush(); time.sleep(0.05)
"""
    # close_timeout=5: the client would cancel the app only after 5 s; it must stop sooner.
    client = AsyncTestClient(CGIApp(script(tmp_path, "forever.py", body)), close_timeout=5)
    async with client.stream("GET", "/") as response:
        async with aclosing(response.aiter_bytes()) as chunks:
            async for chunk in chunks:
                assert chunk.startswith(b"tick")
                break
        left = time.monotonic()
    assert time.monotonic() - left < 2
    assert await wait_gone(int(pidfile.read_text()))


async def test_no_blocking_call_on_the_event_loop(tmp_path: Path) -> None:
    """The slow script runs until the fast one has been served (5 s at most)."""
    answer = "printf 'Content-Type: text/plain\\n\\n%s'"
    started, go = tmp_path / "slow-started", tmp_path / "go"
    hold = (
        f"touch {started}; n=0; "
        f"while [ ! -e {go} ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done; "
    )
    slow = CGIApp(script(tmp_path, "slow.sh", hold + answer % "slow", shell=True))
    fast = CGIApp(script(tmp_path, "fast.sh", answer % "fast", shell=True))
    order: list[str] = []

    async def get(app: Any) -> None:
        order.append((await AsyncTestClient(app).get("/")).text)

    async with anyio.create_task_group() as group:
        group.start_soon(get, slow)
        with anyio.fail_after(5):
            while not started.exists():
                await anyio.sleep(0.01)  # poll interval: the script is starting
        await get(fast)  # served while the slow script still runs
        go.touch()
    assert order == ["fast", "slow"]


# -- over a real pagi-server ----------------------------------------------------


async def test_over_the_server_body_streams_both_ways(tmp_path: Path) -> None:
    """The script echoes each line as it reads it: the answer to part one comes
    back before the client has sent part two, so neither side is buffered."""
    cat = script(
        tmp_path, "cat.sh", "printf 'Content-Type: text/plain\\n\\n'; exec cat", shell=True
    )
    async with live_server(CGIApp(cat)) as address:
        host, port = address.split(":")
        async with await anyio.connect_tcp(host, int(port)) as stream:
            head = b"POST /cat HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
            await stream.send(head + b"part1\n")
            seen = b""
            with anyio.fail_after(5):
                while b"part1\n" not in seen:
                    seen += await stream.receive()
            assert seen.startswith(b"HTTP/1.1 200")
            await stream.send(b"part2\n")
            with anyio.fail_after(5):
                while b"part2\n" not in seen:
                    seen += await stream.receive()


async def test_over_the_server_large_post_and_disconnect(tmp_path: Path) -> None:
    counter = """
import hashlib, os, sys
digest, size = hashlib.sha256(), 0
while chunk := sys.stdin.buffer.read(65536):
    digest.update(chunk); size += len(chunk)
sys.stdout.write("Content-Type: text/plain\\n\\n%d %s" % (size, digest.hexdigest()))
"""
    pidfile = tmp_path / "pid"
    forever = f"""
import os, sys, time
open({str(pidfile)!r}, "w").write(str(os.getpid()))
sys.stdout.write("Content-Type: text/plain\\n\\n")
while True:
    sys.stdout.write("tick\\n"); sys.stdout.flush(); time.sleep(0.05)
"""
    from pagi.tools import Router

    router = Router()
    router.mount("/count", CGIApp(script(tmp_path, "count.py", counter)))
    router.mount("/forever", CGIApp(script(tmp_path, "forever.py", forever)))
    payload = os.urandom(4 << 20)
    import hashlib

    async with live_server(router) as address:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
            r = await client.post("/count", content=payload)
            assert r.text == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
        # A raw socket, not httpx: leaving httpx's body iterators half-read leaves
        # async generators for the garbage collector to finalise outside any task.
        host, port = address.split(":")
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            seen = b""
            with anyio.fail_after(5):
                while b"tick" not in seen:
                    seen += await stream.receive()
            assert seen.startswith(b"HTTP/1.1 200")
        assert await wait_gone(int(pidfile.read_text()))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must name"):
        CGIApp([])
    with pytest.raises(ValueError, match="timeout"):
        CGIApp("x", timeout=0)


async def test_websocket_scope_is_refused(tmp_path: Path) -> None:
    cgi = CGIApp(script(tmp_path, "x.sh", "true", shell=True))
    with pytest.raises(RuntimeError, match="cannot serve a 'websocket'"):
        await cgi({"type": "websocket"}, None, None)  # type: ignore[arg-type]
