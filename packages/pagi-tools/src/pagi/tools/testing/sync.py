"""A synchronous face for :class:`AsyncTestClient`, through an anyio blocking portal.

The app still runs on an event loop (asyncio by default, or trio), in a
portal thread; each call here hands a coroutine to that loop and waits.
Inside ``with TestClient(app) as client:`` one portal (and the lifespan)
lives for the whole block; outside it, each call opens a short-lived portal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from pagi.spec import App
from pagi.tools.sse import ServerSentEvent
from pagi.tools.testing.client import AsyncTestClient
from pagi.tools.testing.cookies import CookieJar
from pagi.tools.testing.http import StreamingTestResponse
from pagi.tools.testing.response import TestResponse
from pagi.tools.testing.sse import SSESession, SSEStreamEnded
from pagi.tools.testing.websocket import WebSocketSession

__all__ = ["SyncSSESession", "SyncStreamingResponse", "SyncWebSocketSession", "TestClient"]

T = TypeVar("T")
S = TypeVar("S")


class SyncStreamingResponse:
    """The synchronous view of a :class:`StreamingTestResponse`."""

    def __init__(self, portal: BlockingPortal, response: StreamingTestResponse) -> None:
        self._portal = portal
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.connection = response.connection
        self._chunks = response.aiter_bytes()

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield body chunks as they arrive."""
        while True:
            try:
                yield self._portal.call(self._chunks.__anext__)
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        """The rest of the body."""
        return b"".join(self.iter_bytes())

    def disconnect(self, reason: str = "client_closed") -> None:
        """Simulate the client going away."""
        self._portal.call(_call_sync, self._response.disconnect, reason)


async def _call_sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class SyncWebSocketSession:
    """The synchronous view of a :class:`WebSocketSession`."""

    def __init__(self, portal: BlockingPortal, session: WebSocketSession) -> None:
        self._portal = portal
        self.session = session

    def send_text(self, data: str) -> None:
        """Send a text message."""
        self._portal.call(self.session.send_text, data)

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        self._portal.call(self.session.send_bytes, data)

    def send_json(self, data: Any) -> None:
        """Send a JSON text message."""
        self._portal.call(self.session.send_json, data)

    def receive(self) -> Mapping[str, Any]:
        """See the async session's ``receive``."""
        return self._portal.call(self.session.receive)

    def receive_text(self) -> str:
        """The next text message."""
        return self._portal.call(self.session.receive_text)

    def receive_bytes(self) -> bytes:
        """The next binary message."""
        return self._portal.call(self.session.receive_bytes)

    def receive_json(self) -> Any:
        """The next message or event parsed as JSON."""
        return self._portal.call(self.session.receive_json)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side."""
        self._portal.call(self.session.close, code, reason)

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the app accepted."""
        return self.session.subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code, once closed."""
        return self.session.close_code


class SyncSSESession:
    """The synchronous view of an :class:`SSESession`."""

    def __init__(self, portal: BlockingPortal, session: SSESession) -> None:
        self._portal = portal
        self.session = session
        self.status_code = session.status_code
        self.headers = session.headers

    def receive(self) -> Mapping[str, Any] | None:
        """See the async session's ``receive``."""
        event: Mapping[str, Any] | None = self._portal.call(self.session.receive)
        return event

    def receive_event(self) -> ServerSentEvent:
        """The next event (see :meth:`SSESession.receive_event`)."""
        return self._portal.call(self.session.receive_event)

    def receive_json(self) -> Any:
        """The next message or event parsed as JSON."""
        return self._portal.call(self.session.receive_json)

    def __iter__(self) -> Iterator[ServerSentEvent]:
        while True:
            try:
                yield self.receive_event()
            except SSEStreamEnded:
                return

    def close(self) -> None:
        """Close from the client side."""
        self._portal.call(self.session.close)

    @property
    def comments(self) -> list[str]:
        """Comment texts received so far."""
        return self.session.comments


class TestClient:
    """Synchronous test client; the same options as :class:`AsyncTestClient` plus ``backend``."""

    __test__ = False

    def __init__(
        self,
        app: App,
        *,
        backend: Literal["asyncio", "trio"] = "asyncio",
        **options: Any,
    ) -> None:
        self.backend = backend
        self.async_client = AsyncTestClient(app, **options)
        self._stack: contextlib.ExitStack | None = None
        self._portal: BlockingPortal | None = None

    @property
    def cookies(self) -> CookieJar:
        """The client's cookie jar."""
        return self.async_client.cookies

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state."""
        return self.async_client.state

    def __enter__(self) -> TestClient:
        stack = contextlib.ExitStack()
        try:
            portal = stack.enter_context(start_blocking_portal(self.backend))
            stack.enter_context(portal.wrap_async_context_manager(self.async_client))
        except BaseException:
            stack.close()
            raise
        self._stack, self._portal = stack, portal
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._portal = self._stack, None, None
        if stack is not None:
            stack.close()

    @contextlib.contextmanager
    def _portal_ctx(self) -> Generator[BlockingPortal, None, None]:
        if self._portal is not None:
            yield self._portal
        else:
            with start_blocking_portal(self.backend) as portal:
                yield portal

    @contextlib.contextmanager
    def _blocking(
        self, manager: contextlib.AbstractAsyncContextManager[S]
    ) -> Generator[tuple[BlockingPortal, S], None, None]:
        """Enter the async context ``manager`` through the portal; yield both."""
        with self._portal_ctx() as portal, portal.wrap_async_context_manager(manager) as inner:
            yield portal, inner

    def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        with self._portal_ctx() as portal:
            return portal.call(lambda: fn(*args, **kwargs))

    def request(self, method: str, url: str, **kwargs: Any) -> TestResponse:
        """See :meth:`AsyncTestClient.request`."""
        return self._run(self.async_client.request, method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("GET", ...)``."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("HEAD", ...)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("OPTIONS", ...)``."""
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("POST", ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PUT", ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("PATCH", ...)``."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        """``request("DELETE", ...)``."""
        return self.request("DELETE", url, **kwargs)

    @contextlib.contextmanager
    def stream(
        self, method: str, url: str, **kwargs: Any
    ) -> Generator[SyncStreamingResponse, None, None]:
        """See :meth:`AsyncTestClient.stream`."""
        with self._blocking(self.async_client.stream(method, url, **kwargs)) as (portal, response):
            yield SyncStreamingResponse(portal, response)

    @contextlib.contextmanager
    def websocket(self, url: str, **kwargs: Any) -> Generator[SyncWebSocketSession, None, None]:
        """See :meth:`AsyncTestClient.websocket`."""
        with self._blocking(self.async_client.websocket(url, **kwargs)) as (portal, session):
            yield SyncWebSocketSession(portal, session)

    @contextlib.contextmanager
    def sse(self, url: str, **kwargs: Any) -> Generator[SyncSSESession, None, None]:
        """See :meth:`AsyncTestClient.sse`."""
        with self._blocking(self.async_client.sse(url, **kwargs)) as (portal, session):
            yield SyncSSESession(portal, session)
