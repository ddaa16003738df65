"""Static files: the ``StaticFiles`` middleware and the ``Directory`` app on one folder.

* ``/static/...``: ``StaticFiles`` over ``public/``: ``ETag`` and
  ``Last-Modified`` (``304`` on a matching ``If-None-Match``), byte ranges
  (``206``, ``416`` past the end), ``index.html`` for a folder, and the
  ``.br``/``.gz`` sibling of a file sent instead when the client accepts
  that coding (``Vary: Accept-Encoding`` on such files either way).
* ``/files/...``: the same folder through the ``Directory`` app, which
  lists folders (HTML, or JSON for ``Accept: application/json``).
* ``/``: redirects to ``/static/``.

Unsafe paths are refused, not served: ``..`` is a ``403``, a NUL byte a
``400``, hidden names a ``404``; a symlink may not lead out of the folder.
Set ``STATIC_ROOT`` to serve another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from pagi.tools import RedirectResponse, Request, Router
from pagi.tools.apps import Directory
from pagi.tools.middleware import Builder, StaticFiles

ROOT = Path(os.environ.get("STATIC_ROOT") or Path(__file__).resolve().parent / "public")

router = Router()


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse("/static/")


router.mount("/files", Directory(ROOT, index=()))  # always a listing for folders

app = Builder().add(StaticFiles, root=ROOT, prefix="/static").build(router)
