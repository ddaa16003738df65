"""Which protocol a new connection speaks: the one place that picks a driver.

A connection arrives with, at most, what TLS negotiated:

* ALPN ``h2`` (RFC 9113 3.2): the HTTP/2 driver from the first byte;
* anything else (ALPN ``http/1.1``, no ALPN, cleartext): the HTTP/1.1
  driver. If HTTP/2 is enabled and the very first bytes of a cleartext or
  non-ALPN connection are the HTTP/2 connection preface (prior knowledge,
  RFC 9113 3.3), the HTTP/1.1 driver hands the connection back, with the
  bytes it read, and it continues as HTTP/2.

The HTTP/1.1 ``Upgrade: h2c`` dance is deprecated by RFC 9113 and not
offered. A WebSocket upgrade is not a change of driver: the HTTP/1.1 driver
runs it as a WebSocket carrier itself.

Adding a protocol (HTTP/3, say) means a driver module and a branch here.
"""

from __future__ import annotations

from typing import Literal

import anyio.abc

from pagi.server.context import ServerContext
from pagi.server.protocols.http1 import H1Connection
from pagi.server.protocols.http2 import H2Connection
from pagi.server.scope import ConnectionInfo

__all__ = ["Protocol", "choose_protocol", "serve_connection"]

Protocol = Literal["http/1.1", "h2"]


def choose_protocol(alpn: str | None, *, http2: bool) -> Protocol:
    """The driver to start with, given the ALPN protocol TLS negotiated (if any)."""
    return "h2" if http2 and alpn == "h2" else "http/1.1"


async def serve_connection(
    ctx: ServerContext,
    stream: anyio.abc.ByteStream,
    info: ConnectionInfo,
    *,
    alpn: str | None = None,
) -> None:
    """Serve one accepted (and, if TLS, handshaken) connection to its end."""
    if choose_protocol(alpn, http2=ctx.config.http2) == "h2":
        with ctx.track_connection("h2"):
            await H2Connection(ctx, stream, info).run()
        return
    with ctx.track_connection("http/1.1"):
        handoff = await H1Connection(ctx, stream, info).run()
    if handoff is not None:  # the prior-knowledge preface: it speaks HTTP/2
        with ctx.track_connection("h2"):
            await H2Connection(ctx, stream, info, initial=handoff).run()
