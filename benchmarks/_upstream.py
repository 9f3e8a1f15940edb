"""Child process of the gateway benchmarks: an mTLS upstream returning 1 KB of JSON, or at
``.../records`` a page of 50 realistic CRM customers (benchmarks/_records.py, about 20 KB)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn

from _records import document
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context

BODY = json.dumps(
    {"records": [{"id": i, "name": f"customer {i:03d}", "tier": "gold"} for i in range(24)]}
).encode()[:1024]
BODY = json.dumps({"data": BODY.decode(errors="ignore")[:990]}).encode()
RECORDS = document(50, patients=False)  # what a CRM answers


async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    while (await receive()).get("more_body"):
        pass
    body = RECORDS if scope["path"].endswith("/records") else BODY
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve_mtls(app: object, creds: Path, port: int, *, lifespan: str = "off") -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with mTLS (client certificates required)."""
    context = server_ssl_context(
        certfile=creds / "svid.pem",
        keyfile=creds / "key.pem",
        ca_file=creds / "bundle.pem",
        require_client_cert=True,
    )
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        http=MtlsHttpToolsProtocol,
        loop="uvloop",
        ssl_certfile=str(creds / "svid.pem"),
        log_level="warning",
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        ssl_context_factory=lambda _c, _d: context,
    )


def main() -> None:
    serve_mtls(app, Path(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    main()
