"""The job runner over a real pagi-server: HTTP and WebSocket clients, then the page in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve, wait
from websockets.sync.client import connect

FAST = {"JOBS_STEP_SECONDS": "0.02"}


def job(server_url: str, job_id: int) -> dict:
    return httpx.get(f"{server_url}/jobs/{job_id}").json()


def test_http_submit_and_websocket_control(tmp_path: Path) -> None:
    with serve("job_runner/app.py", tmp_path, env=FAST) as server:
        created = httpx.post(server.url + "/jobs", json={"name": "short", "steps": 3})
        assert created.status_code == 201
        assert created.headers["location"] == "/jobs/1"
        wait("job 1 to finish", lambda: job(server.url, 1)["state"] == "done")
        assert job(server.url, 1)["done"] == 3

        long = httpx.post(server.url + "/jobs", json={"name": "long", "steps": 200}).json()
        with connect(server.ws_url + "/control", proxy=None) as ws:

            def say(message: object) -> dict:
                ws.send(message if isinstance(message, str) else json.dumps(message))
                return json.loads(ws.recv(timeout=5))

            wait("job 2 to run", lambda: job(server.url, long["id"])["done"] > 0)
            assert say({"action": "pause", "id": long["id"]})["job"]["state"] == "paused"
            assert say({"action": "pause", "id": long["id"]}) == {
                "error": "job 2 is already paused"
            }
            assert say({"action": "resume", "id": long["id"]})["job"]["state"] == "running"
            cancelled = say({"action": "cancel", "id": long["id"]})["job"]
            assert cancelled["state"] == "cancelled" and cancelled["done"] < 200
            # Bad input is answered, and the socket stays open.
            assert say("stop it")["error"].startswith("not JSON")
            assert say({"action": "explode", "id": 1}) == {
                "error": "action must be pause, resume or cancel"
            }
            assert say({"action": "cancel", "id": 99}) == {"error": "no job 99"}
            assert say({"action": "cancel", "id": 1}) == {"error": "job 1 is already done"}
        assert job(server.url, long["id"])["state"] == "cancelled"


def test_bad_submissions_get_clear_errors(tmp_path: Path) -> None:
    with serve("job_runner/app.py", tmp_path, env=FAST) as server:
        cases = [
            ({"content": b"{oops"}, 400, "request body is not valid JSON"),
            ({"json": ["a"]}, 422, "send a JSON object"),
            ({"json": {"name": ""}}, 422, "name must be a non-empty string"),
            ({"json": {"name": "x", "steps": "lots"}}, 422, "steps must be an integer"),
            ({"json": {"name": "x", "steps": 0}}, 422, "steps must be an integer"),
        ]
        for kwargs, status, message in cases:
            response = httpx.post(server.url + "/jobs", **kwargs)
            assert (response.status_code, message in response.text) == (status, True), kwargs
        assert httpx.get(server.url + "/jobs/7").status_code == 404
        assert httpx.get(server.url + "/jobs").json() == {"jobs": []}


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    with serve("job_runner/app.py", tmp_path, env=FAST) as server, chromium(tmp_path) as devtools:
        with Page.open(devtools, server.url + "/") as page:
            page.wait("document.body?.dataset.sse === 'open'")
            page.wait("document.body.dataset.ws === 'open'")

            # Submit through the form (HTTP), watch progress arrive (SSE).
            page.eval(
                "document.getElementById('name').value = 'build';"
                "document.getElementById('steps').value = '5';"
                "document.getElementById('go').click()"
            )
            page.wait("document.getElementById('job-1')?.dataset.state === 'done'")
            assert page.eval("document.querySelector('#job-1 progress').value") == 5
            assert page.text("job-1").startswith("1build")

            # A job submitted elsewhere shows up too; control it from the page (WebSocket).
            httpx.post(server.url + "/jobs", json={"name": "long", "steps": 200})
            page.wait("Number(document.getElementById('job-2')?.dataset.done) > 0")
            page.eval("document.querySelector('#job-2 button.pause').click()")
            page.wait("document.getElementById('job-2').dataset.state === 'paused'")
            assert job(server.url, 2)["state"] == "paused"
            page.eval("document.querySelector('#job-2 button.cancel').click()")
            page.wait("document.getElementById('job-2').dataset.state === 'cancelled'")
            assert '"ok":"cancel"' in page.text("reply")
            page.eval("document.querySelector('#job-2 button.resume').click()")
            page.wait("document.getElementById('reply').textContent.includes('already cancelled')")

            # The server's validation message reaches the page.
            page.eval(
                "document.getElementById('steps').value = '500';"
                "document.getElementById('go').click()"
            )
            page.wait("document.getElementById('error').textContent.includes('422')")
            assert "steps must be an integer from 1 to 200" in page.text("error")
