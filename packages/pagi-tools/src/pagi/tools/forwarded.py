"""Who the client is when requests come through proxies.

Theory of operation
-------------------
A proxy in front of the app adds what it saw: the address of its own peer,
the scheme and the host the client asked for. It does so in ``Forwarded``
(RFC 7239, one element per hop, ``for=``/``proto=``/``host=``) or in the
older ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` headers. Each proxy
*appends*, so the right-most entries were written by the proxies nearest
the app and the left-most ones by whoever sent the request first, which may
be the client itself writing anything it likes.

The one safe reading is therefore: start from the right, skip every hop
that is a proxy we trust, and stop at the first hop that is not. That hop
is the client. Trust is only given at all when the direct peer (the
connection's own address) is a trusted proxy.

:class:`TrustedProxies` holds the trust list (addresses, CIDR networks or
``*``); :func:`parse_forwarded` splits a ``Forwarded`` header into
elements; :func:`resolve_forwarded` applies the rule above to a request's
headers and returns a :class:`ForwardedInfo`. The
:class:`~pagi.tools.middleware.proxy_headers.ProxyHeaders` middleware uses
it. (``pagi-server --proxy-headers`` applies the same rule with its own
small copy, because the server may not import the toolkit.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "SCHEMES",
    "ForwardedInfo",
    "TrustedProxies",
    "parse_forwarded",
    "resolve_forwarded",
    "split_node",
]

#: The schemes a proxy may claim; anything else is ignored.
SCHEMES = frozenset({"http", "https", "ws", "wss"})

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """A set of proxy addresses: single addresses, CIDR networks, or ``*`` for any.

    Raises ``ValueError`` naming the entry that is neither.
    """

    __slots__ = ("_seen", "any", "networks")

    #: How many answers :meth:`trusts` remembers (parsing an address costs microseconds).
    MEMORY = 1024

    def __init__(self, entries: Iterable[str]) -> None:
        self.any = False
        self.networks: list[_Network] = []
        self._seen: dict[str, bool] = {}
        if isinstance(entries, str):
            entries = entries.split(",")
        for raw in entries:
            item = str(raw).strip()
            if not item:
                continue
            if item == "*":
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None

    def trusts(self, host: str | None) -> bool:
        """True if ``host`` (an address as text) is one of the trusted proxies."""
        if host is None:
            return False
        if self.any:
            return True
        known = self._seen.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            answer = False
        else:
            answer = any(address in network for network in self.networks)
        if len(self._seen) >= self.MEMORY:
            self._seen.clear()  # clients' addresses can be many; start over rather than grow
        self._seen[host] = answer
        return answer


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Split a ``Forwarded`` value into one dict per element, keys lower-case.

    ``'for=192.0.2.1;proto=https, for="[2001:db8::1]:4711"'`` ->
    ``[{"for": "192.0.2.1", "proto": "https"}, {"for": "[2001:db8::1]:4711"}]``.
    Commas and semicolons inside quoted strings are kept.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pair: list[str] = []
    quoted = False
    escaped = False

    def finish_pair() -> None:
        text = "".join(pair)
        pair.clear()
        name, sep, raw = text.partition("=")
        if sep and name.strip():
            current.setdefault(name.strip().lower(), _unquote(raw))

    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in ",;":
            finish_pair()
            if char == ",":
                elements.append(current)
                current = {}
            continue
        pair.append(char)
    finish_pair()
    elements.append(current)
    return [element for element in elements if element]


def split_node(node: str) -> tuple[str, int | None]:
    """``"192.0.2.1:80"`` -> ``("192.0.2.1", 80)``; ``"[::1]:80"`` -> ``("::1", 80)``.

    Obfuscated identifiers (``_hidden``) and ``unknown`` come back as they are.
    """
    node = node.strip()
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if node.count(":") == 1:
        host, _, port = node.partition(":")
        return host, int(port) if port.isdigit() else None
    return node, None


class ForwardedInfo(NamedTuple):
    """What the trusted proxies said: each field ``None`` when they did not say it."""

    client: tuple[str, int] | None = None
    scheme: str | None = None
    host: str | None = None


_WANTED = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_NOTHING = ForwardedInfo()


def _last(values: Sequence[str]) -> str | None:
    # Several proxies may each add one header, or one proxy a list: the
    # nearest proxy's value is the last one.
    if not values:
        return None
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return items[-1] if items else None


def resolve_forwarded(
    headers: Iterable[tuple[bytes, bytes]], trusted: TrustedProxies
) -> ForwardedInfo:
    """Apply the right-to-left rule to a request's headers (the peer is already trusted).

    ``Forwarded`` wins over ``X-Forwarded-*`` when both are present. The
    scheme is lower-cased and kept only if it is ``http``, ``https``,
    ``ws`` or ``wss``.
    """
    found: dict[bytes, list[str]] = {}
    for name, value in headers:
        if name in _WANTED:
            found.setdefault(name, []).append(value.decode("latin-1"))
    if not found:
        return _NOTHING
    forwarded = found.get(b"forwarded", [])
    xff = found.get(b"x-forwarded-for", [])
    xfp = found.get(b"x-forwarded-proto", [])
    xfh = found.get(b"x-forwarded-host", [])
    if forwarded:
        elements = [e for value in forwarded for e in parse_forwarded(value) if "for" in e]
        if not elements:
            return _NOTHING
        chosen = elements[0]
        for element in reversed(elements):
            if not trusted.trusts(split_node(element["for"])[0]):
                chosen = element
                break
        host, port = split_node(chosen["for"])
        proto = chosen.get("proto", "").lower()
        return ForwardedInfo(
            client=(host, port or 0),
            scheme=proto if proto in SCHEMES else None,
            host=chosen.get("host") or None,
        )
    client: tuple[str, int] | None = None
    hops = [part.strip() for value in xff for part in value.split(",") if part.strip()]
    if hops:
        chosen_hop = hops[0]
        for hop in reversed(hops):
            if not trusted.trusts(split_node(hop)[0]):
                chosen_hop = hop
                break
        host, port = split_node(chosen_hop)
        client = (host, port or 0)
    proto = (_last(xfp) or "").lower()
    return ForwardedInfo(client=client, scheme=proto if proto in SCHEMES else None, host=_last(xfh))
