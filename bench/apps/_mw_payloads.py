"""Payloads shared by the middleware benchmark apps (same bytes on both sides)."""

import json
import random

_rng = random.Random(1)
_WORDS = "alpha beta gamma delta event stream server client header body chunk frame".split()


def _json_body(target: int) -> bytes:
    records, size = [], 2
    while size < target:
        record = {
            "id": len(records),
            "name": f"user-{len(records)}",
            "email": f"user{len(records)}@example.com",
            "score": _rng.randint(0, 100000),
            "tags": _rng.sample(_WORDS, 3),
            "active": _rng.random() < 0.5,
        }
        size += len(json.dumps(record)) + 1
        records.append(record)
    return json.dumps(records).encode()


JSON_BODY = _json_body(64 * 1024)  # ~64 KiB
_line = lambda: (" ".join(_rng.choice(_WORDS) for _ in range(12)) + "\n").encode()  # noqa: E731
_text = b"".join(_line() for _ in range(20000))
TEXT_CHUNKS = [_text[i * 65536 : (i + 1) * 65536] for i in range(16)]  # 16 x 64 KiB = 1 MiB
PLAIN = b"Hello, world!"
