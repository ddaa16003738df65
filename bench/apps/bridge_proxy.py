"""pagi.tools.proxy.Proxy in front of the upstream named by BRIDGE_UPSTREAM (http://host:port)."""

import os

from pagi.tools.proxy import Proxy

app = Proxy(os.environ["BRIDGE_UPSTREAM"], timeout=60.0)
