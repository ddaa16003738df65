"""What the test client hands back for an HTTP request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pagi.tools.cookies import parse_cookie_header
from pagi.tools.headers import Headers
from pagi.tools.testing.connection import FakeConnection

__all__ = ["TestResponse"]


class TestResponse:
    """A finished response: status, headers, body, and what happened on the way.

    ``events`` are the app's raw send events, in order. ``exception`` is the
    app's exception when the client was told not to re-raise it (the
    response is then the 500 a server would send). ``connection`` is the
    request's :class:`FakeConnection`, for asserting on its final state.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        content: bytes,
        *,
        events: list[Mapping[str, Any]] | None = None,
        exception: BaseException | None = None,
        connection: FakeConnection | None = None,
        trailers: Headers | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.events = events or []
        self.exception = exception
        self.connection = connection
        self.trailers = trailers

    @property
    def charset(self) -> str:
        """The charset of ``Content-Type``, UTF-8 if none."""
        for param in (self.headers.get("content-type") or "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with :attr:`charset`."""
        return self.content.decode(self.charset)

    def json(self) -> Any:
        """The body parsed as JSON; the error shows status, type and the start of the body."""
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise ValueError(
                f"response is not JSON ({exc}); status {self.status_code}, "
                f"content-type {self.headers.get('content-type')!r}, body {self.content[:300]!r}"
            ) from None

    @property
    def cookies(self) -> dict[str, str]:
        """Name/value of every ``Set-Cookie`` in this response."""
        found: dict[str, str] = {}
        for value in self.headers.getlist("set-cookie"):
            found.update(parse_cookie_header(value.split(";", 1)[0]))
        return found

    @property
    def location(self) -> str | None:
        """The ``Location`` header."""
        return self.headers.get("location")

    @property
    def is_success(self) -> bool:
        """Status 2xx."""
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        """Status 3xx."""
        return 300 <= self.status_code < 400

    @property
    def is_error(self) -> bool:
        """Status 4xx or 5xx."""
        return self.status_code >= 400

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_code}>"
