"""Parse ``Cookie`` request headers and build ``Set-Cookie`` response headers.

Parsing is tolerant, as browsers are: pairs without ``=`` are skipped, and
surrounding double quotes are removed. Building is strict: a cookie name
must be an RFC 9110 token and a value must be RFC 6265 ``cookie-octet``s,
because a value with a ``;`` or a space would silently turn into a
different cookie (or attribute) on the client. Encode such values yourself
(for example with ``urllib.parse.quote``) and decode them when reading.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Literal

__all__ = ["SameSite", "format_set_cookie", "parse_cookie_header"]

SameSite = Literal["strict", "lax", "none", "Strict", "Lax", "None"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_ATTR_VALUE = re.compile(r"[^\x00-\x1f\x7f;]*")


def parse_cookie_header(header: str) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``; the first of repeated names wins."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


def format_set_cookie(
    key: str,
    value: str = "",
    *,
    max_age: int | None = None,
    expires: datetime | int | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> str:
    """Build one ``Set-Cookie`` value; raise ``ValueError`` for unsafe input.

    ``expires`` is a datetime (naive means UTC) or seconds from now.
    ``samesite="none"`` requires ``secure=True`` (browsers drop the cookie
    otherwise), and so does ``partitioned``.
    """
    if not _TOKEN.fullmatch(key):
        raise ValueError(f"cookie name {key!r} is not a token")
    if not _COOKIE_VALUE.fullmatch(value):
        raise ValueError(
            f"cookie value {value!r} has characters a cookie cannot carry "
            "(space, quote, comma, semicolon, backslash or non-ASCII); encode it first"
        )
    parts = [f"{key}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if expires is not None:
        if isinstance(expires, int):
            when = datetime.now(timezone.utc).timestamp() + expires
            expires = datetime.fromtimestamp(when, timezone.utc)
        elif expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        parts.append("Expires=" + format_datetime(expires.astimezone(timezone.utc), usegmt=True))
    for attr, text in (("Path", path), ("Domain", domain)):
        if text is not None:
            if not _ATTR_VALUE.fullmatch(text):
                raise ValueError(f"cookie {attr} {text!r} contains ';' or a control character")
            parts.append(f"{attr}={text}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        mode = samesite.lower()
        if mode not in ("strict", "lax", "none"):
            raise ValueError(f"samesite must be 'strict', 'lax' or 'none', not {samesite!r}")
        if mode == "none" and not secure:
            raise ValueError("samesite='none' needs secure=True; browsers reject it otherwise")
        parts.append(f"SameSite={mode.capitalize()}")
    if partitioned:
        if not secure:
            raise ValueError("partitioned cookies need secure=True")
        parts.append("Partitioned")
    return "; ".join(parts)
