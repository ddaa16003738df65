"""Trusting ``X-Forwarded-For`` / ``X-Forwarded-Proto`` from known proxies.

With ``--proxy-headers``, a request that arrives *directly* from an address
in ``--forwarded-allow-ips`` (addresses or CIDR networks, or ``*``) gets its
``client`` and ``scheme`` from those headers. The client is the nearest
address in ``X-Forwarded-For`` that is not itself a trusted proxy, so a
client cannot spoof its address by sending its own header through a chain
of proxies that append to it. A connection over a Unix socket (no client
address) is trusted: only local processes allowed by the socket file's
permissions can reach it, which is the usual nginx ``proxy_pass
http://unix:...`` setup.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["ProxyTrust"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyTrust:
    """Which peers may set the client address and scheme, and how to apply them."""

    def __init__(self, allow: str) -> None:
        self.any = False
        self.networks: list[_Network] = []
        for item in (part.strip() for part in allow.split(",")):
            if not item:
                continue
            if item == "*":
                self.any = True
            else:
                self.networks.append(ipaddress.ip_network(item, strict=False))

    def trusts(self, host: str) -> bool:
        if self.any:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def apply(self, scope: dict[str, Any]) -> None:
        """Rewrite ``client`` and ``scheme`` in place if the peer is trusted."""
        client = scope.get("client")
        if client is not None and not self.trusts(client[0]):
            return
        forwarded_for = forwarded_proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value
        if forwarded_proto is not None:
            proto = forwarded_proto.decode("latin-1").split(",")[-1].strip().lower()
            if proto in ("http", "https", "ws", "wss"):
                if scope["type"] == "websocket":
                    proto = {"http": "ws", "https": "wss"}.get(proto, proto)
                else:
                    proto = {"ws": "http", "wss": "https"}.get(proto, proto)
                scope["scheme"] = proto
        if forwarded_for is not None:
            hops = [h.strip() for h in forwarded_for.decode("latin-1").split(",") if h.strip()]
            for hop in reversed(hops):
                if not self.trusts(hop):
                    scope["client"] = (hop, 0)
                    return
            if hops:
                scope["client"] = (hops[0], 0)
