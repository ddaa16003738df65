"""A small cookie jar for the test client: path, expiry, Secure and deletion."""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

from pagi.tools.conditional import parse_http_date

__all__ = ["CookieJar"]


@dataclass
class _Cookie:
    value: str
    path: str
    expires: float | None
    secure: bool


class CookieJar(MutableMapping[str, str]):
    """Cookies the client stores from ``Set-Cookie`` and sends back.

    Keyed by name (one host: the test server). A cookie is sent when the
    request path is under its ``Path``, it has not expired, and it is not
    ``Secure`` on a plain-http request. ``Max-Age=0`` or a past ``Expires``
    deletes it.
    """

    def __init__(self) -> None:
        self._cookies: dict[str, _Cookie] = {}

    def update_from(self, set_cookie_values: list[str], request_path: str) -> None:
        """Store the cookies of a response's ``Set-Cookie`` values."""
        for header in set_cookie_values:
            pair, *attrs = [part.strip() for part in header.split(";")]
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                continue
            default_path = request_path.rsplit("/", 1)[0] or "/"
            cookie = _Cookie(value.strip().strip('"'), default_path, None, False)
            for attr in attrs:
                key, _, arg = attr.partition("=")
                key = key.strip().lower()
                if key == "path" and arg.startswith("/"):
                    cookie.path = arg
                elif key == "max-age":
                    try:
                        cookie.expires = time.time() + int(arg)
                    except ValueError:
                        pass
                elif key == "expires" and cookie.expires is None:
                    cookie.expires = parse_http_date(arg)
                elif key == "secure":
                    cookie.secure = True
            if cookie.expires is not None and cookie.expires <= time.time():
                self._cookies.pop(name.strip(), None)
            else:
                self._cookies[name.strip()] = cookie

    def header_for(self, path: str, secure: bool) -> str | None:
        """The ``Cookie`` header value for a request to ``path``, or ``None``."""
        now = time.time()
        pairs = []
        for name, cookie in list(self._cookies.items()):
            if cookie.expires is not None and cookie.expires <= now:
                del self._cookies[name]
                continue
            prefix = cookie.path.rstrip("/")
            if (path == cookie.path or path.startswith(prefix + "/") or not prefix) and (
                secure or not cookie.secure
            ):
                pairs.append(f"{name}={cookie.value}")
        return "; ".join(pairs) or None

    def __getitem__(self, name: str) -> str:
        return self._cookies[name].value

    def __setitem__(self, name: str, value: str) -> None:
        self._cookies[name] = _Cookie(value, "/", None, False)

    def __delitem__(self, name: str) -> None:
        del self._cookies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cookies)

    def __len__(self) -> int:
        return len(self._cookies)
