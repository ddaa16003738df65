"""Write ``.gz`` and ``.br`` siblings for the text assets under ``public/``.

Run it after changing an asset (the test checks the siblings still decode
to the file next to them)::

    uv run python examples/static_files/precompress.py

``brotli`` comes with the workspace's dev dependencies (or
``pagi-tools[brotli]``). gzip is written with a fixed mtime so that running
this twice gives the same bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli

PUBLIC = Path(__file__).resolve().parent / "public"
SUFFIXES = {".html", ".css", ".js"}


def precompress(root: Path = PUBLIC) -> list[Path]:
    """Compress every text asset under ``root``; return the files written."""
    written = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in SUFFIXES:
            continue
        data = path.read_bytes()
        for suffix, packed in (
            (".gz", gzip.compress(data, compresslevel=9, mtime=0)),
            (".br", brotli.compress(data, quality=11)),
        ):
            sibling = path.with_name(path.name + suffix)
            sibling.write_bytes(packed)
            written.append(sibling)
    return written


if __name__ == "__main__":
    for written in precompress():
        print(written.relative_to(PUBLIC.parent), written.stat().st_size, "bytes")
