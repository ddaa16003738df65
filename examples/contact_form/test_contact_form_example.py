"""The contact form over a real pagi-server: uploads, CSRF, limits, errors; the page in Chromium."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
from example_harness import Page, chromium, serve


def token_of(page: str) -> str:
    match = re.search(r'name="csrftoken" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_uploads_csrf_and_errors(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    env = {"CONTACT_UPLOAD_DIR": str(uploads)}
    with serve("contact_form/app.py", tmp_path, env=env) as server, httpx.Client() as client:
        token = token_of(client.get(server.url + "/").text)
        fields = {"csrftoken": token, "name": "Ann", "email": "ann@example.org", "message": "hi"}
        pdf = b"%PDF-1.4 not really\n" * 100
        sent = client.post(
            server.url + "/contact",
            data=fields,
            files=[
                ("files", ("notes ✓.txt", "hello ✓".encode(), "text/plain")),
                ("files", ("../../etc/report.pdf", pdf, "application/pdf")),
            ],
        )
        assert sent.status_code == 200 and "Thanks, Ann." in sent.text
        stored = client.get(server.url + "/messages").json()["messages"][0]["files"]
        assert [(f["filename"], f["size"]) for f in stored] == [
            ("notes ✓.txt", len("hello ✓".encode())),
            ("report.pdf", len(pdf)),  # the client's directories are dropped
        ]
        assert stored[1]["sha256"] == hashlib.sha256(pdf).hexdigest()
        assert sorted(p.name for p in uploads.iterdir()) == sorted(f["stored_as"] for f in stored)

        # Errors come back in the form, with what was typed kept.
        bad = client.post(
            server.url + "/contact",
            data={**fields, "email": "not-an-address", "message": ""},
            files=[("files", (f"f{i}.txt", b"x", "text/plain")) for i in range(4)],
        )
        assert bad.status_code == 422
        assert "this does not look like an email address" in bad.text
        assert "please write a message" in bad.text and "at most 3 attachments" in bad.text
        assert 'value="not-an-address"' in bad.text

        # No token: 403. Too big a file: 413 before the handler runs.
        no_token = {k: v for k, v in fields.items() if k != "csrftoken"}
        assert httpx.post(server.url + "/contact", data=no_token).status_code == 403
        big = client.post(
            server.url + "/contact",
            data=fields,
            files=[("files", ("big.bin", b"\0" * (1024 * 1024 + 1), "application/octet-stream"))],
        )
        assert big.status_code == 413
        assert len(client.get(server.url + "/messages").json()["messages"]) == 1


def test_the_form_in_chromium(tmp_path: Path) -> None:
    env = {"CONTACT_UPLOAD_DIR": str(tmp_path)}
    with (
        serve("contact_form/app.py", tmp_path, env=env) as server,
        chromium(tmp_path) as devtools,
        Page.open(devtools, server.url + "/") as page,
    ):
        page.wait("document.getElementById('send') !== null")
        # First without an email: the form comes back with the error next to the field.
        page.eval(
            "document.getElementById('name').value = 'Bea';"
            "document.getElementById('message').value = 'Hello from the browser';"
            "document.getElementById('send').click()"
        )
        page.wait("document.getElementById('email-error') !== null")
        assert page.eval("document.getElementById('name').value") == "Bea"
        # Then complete, with a file attached the way a user would pick one.
        page.eval(
            "const files = new DataTransfer();"
            "files.items.add(new File(['attached ✓'], 'hello.txt', {type: 'text/plain'}));"
            "document.getElementById('files').files = files.files;"
            "document.getElementById('email').value = 'bea@example.org';"
            "document.getElementById('send').click()"
        )
        page.wait("document.getElementById('thanks') !== null")
        assert page.text("thanks") == "Thanks, Bea."
        assert page.text("files").startswith("hello.txt: 12 bytes")
