"""TLS introspection: the ``tls`` scope extension, client certificates included.

Run with a certificate and key (and ``--ssl-ca-certs`` to ask clients for
certificates). Every response is JSON: the scheme, and what
``scope["extensions"]["tls"]`` says about the connection (protocol version,
cipher suite, the client's certificate subject and chain length, and any
verification error). On a plaintext connection the extension is absent.
"""

import json

TLS_VERSIONS = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


def describe(scope):
    tls = scope.get("extensions", {}).get("tls")
    if tls is None:
        return {"scheme": scope.get("scheme", "http"), "tls": None}
    version = tls["tls_version"]
    suite = tls["cipher_suite"]
    return {
        "scheme": scope["scheme"],
        "tls": {
            "version": TLS_VERSIONS.get(version, version),
            "cipher_suite": f"0x{suite:04x}" if suite is not None else None,
            "server_cert_sent": tls["server_cert"] is not None,
            "client_cert_name": tls["client_cert_name"],
            "client_cert_chain_length": len(tls["client_cert_chain"]),
            "client_cert_error": tls["client_cert_error"],
        },
    }


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    body = json.dumps(describe(scope), indent=2).encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
