"""Contact form with uploads: multipart parsing with limits, CSRF, and errors shown in the form.

* ``GET /`` shows the form (name, email, message, up to 3 attachments)
  with the CSRF token in a hidden field.
* ``POST /contact`` (``multipart/form-data``): checks every field; on a
  problem the form comes back (``422``) with each error next to its field
  and what was typed kept; on success the message is stored, the files
  saved under ``CONTACT_UPLOAD_DIR`` (a temporary folder by default) with
  names of our own, and a receipt page lists them with sizes and SHA-256.
* ``GET /messages``: what was received, as JSON (for the test and curl).

The ``CSRF`` middleware refuses a ``POST`` without the token (``403``).
``FormLimits`` caps the body: a file over 1 MiB is a ``413`` before the
handler runs.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from pagi.tools import FormLimits, HTMLResponse, Request, Router, UploadFile
from pagi.tools.middleware import CSRF, Builder, ErrorHandler

SECRET = os.environ.get("CONTACT_SECRET") or secrets.token_hex(32)
UPLOADS = Path(os.environ.get("CONTACT_UPLOAD_DIR") or tempfile.mkdtemp(prefix="contact-"))
LIMITS = FormLimits(max_parts=10, max_field_size=16 * 1024, max_file_size=1024 * 1024)
MAX_FILES = 3
MESSAGES: list[dict[str, Any]] = []
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

router = Router()


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;margin:2em;max-width:40em}"
        "label{display:block;margin-top:.8em}.error{color:#b00}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>",
        status=status,
    )


def form_page(request: Request, values: dict[str, str], errors: dict[str, str]) -> HTMLResponse:
    def field(name: str, label: str, tag: str = "input") -> str:
        value = html.escape(values.get(name, ""))
        control = (
            f'<textarea name="{name}" id="{name}" rows="5">{value}</textarea>'
            if tag == "textarea"
            else f'<input name="{name}" id="{name}" value="{value}">'
        )
        error = errors.get(name)
        note = (
            f' <span class="error" id="{name}-error">{html.escape(error)}</span>' if error else ""
        )
        return f"<label>{label}{note}<br>{control}</label>"

    token = html.escape(request.scope["pagi.csrf_token"])
    files_error = errors.get("files")
    files_note = (
        f' <span class="error" id="files-error">{html.escape(files_error)}</span>'
        if files_error
        else ""
    )
    body = (
        '<form method="post" action="/contact" enctype="multipart/form-data" id="contact">'
        f'<input type="hidden" name="csrftoken" value="{token}">'
        + field("name", "Name")
        + field("email", "Email")
        + field("message", "Message", "textarea")
        + f"<label>Attachments (up to {MAX_FILES}, 1 MiB each){files_note}<br>"
        '<input type="file" name="files" id="files" multiple></label>'
        '<p><button type="submit" id="send">Send</button></p></form>'
    )
    return page("Contact us", body, 422 if errors else 200)


@router.get("/")
async def show_form(request: Request) -> Any:
    return form_page(request, {}, {})


def save(upload: UploadFile) -> dict[str, Any]:
    """Store one upload under a name of ours; the client's name is only displayed."""
    upload.file.seek(0)
    data = upload.file.read()
    stored = UPLOADS / f"{secrets.token_hex(8)}.upload"
    stored.write_bytes(data)
    return {
        "filename": upload.basename or "unnamed",
        "content_type": upload.content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "stored_as": stored.name,
    }


@router.post("/contact")
async def contact(request: Request) -> Any:
    form = await request.form(LIMITS)  # 413 past the limits, 400 for a broken body
    values = {key: str(form.get(key) or "").strip() for key in ("name", "email", "message")}
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    errors: dict[str, str] = {}
    if not values["name"] or len(values["name"]) > 100:
        errors["name"] = "please give a name (at most 100 characters)"
    if not EMAIL.fullmatch(values["email"]):
        errors["email"] = "this does not look like an email address"
    if not values["message"] or len(values["message"]) > 5000:
        errors["message"] = "please write a message (at most 5000 characters)"
    if len(uploads) > MAX_FILES:
        errors["files"] = f"at most {MAX_FILES} attachments"
    if errors:
        return form_page(request, values, errors)
    files = [save(upload) for upload in uploads]
    MESSAGES.append({**values, "files": files})
    items = "".join(
        f"<li>{html.escape(f['filename'])}: {f['size']} bytes,"
        f" sha256 <code>{f['sha256']}</code></li>"
        for f in files
    )
    who = html.escape(values["name"])
    return page("Thank you", f'<p id="thanks">Thanks, {who}.</p><ul id="files">{items}</ul>')


@router.get("/messages")
async def messages(request: Request) -> Any:
    return {"messages": MESSAGES}


app = Builder().add(ErrorHandler).add(CSRF, secret_key=SECRET).build(router)
