"""A real upstream service on 127.0.0.1 for gateway tests and benchmarks: uvicorn with mTLS
(client certificates required), trusting only calls that carry a valid X-Warden-Decision."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from tests.support.creds import write_svid
from warden.enforce.routes import RouteTable, parse_routes
from warden.identity.authority import IdentityAuthority
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context
from warden.upstream import DecisionRejected, DecisionVerifier

PAYLOAD = {
    "records": [{"id": i, "name": f"customer {i}", "ssn": f"000-00-{i:04d}"} for i in range(12)]
}


class Upstream:
    """``require_decision=False`` gives a plain mTLS service (the benchmark's direct baseline)."""

    def __init__(
        self,
        authority: IdentityAuthority,
        root: Path,
        *,
        name: str = "ledger",
        require_decision: bool = True,
        present_as: str | None = None,
    ) -> None:
        self.spiffe_id = f"spiffe://{authority.trust_domain}/svc/{name}"
        issued = authority.issuer.issue_service_x509(
            present_as or name, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        self.creds = write_svid(root / f"upstream-{name}", issued, authority.ca.bundle.to_pem())
        self.verifier = DecisionVerifier.from_bundle_file(self.creds / "bundle.pem", self.spiffe_id)
        self.require_decision = require_decision
        self.seen: list[dict[str, Any]] = []
        self.on_decision: Callable[[str], None] | None = None
        # Last path segment -> (content type, body): what a test has this service answer.
        self.answers: dict[str, tuple[str, bytes]] = {}
        context = server_ssl_context(
            certfile=self.creds / "svid.pem",
            keyfile=self.creds / "key.pem",
            ca_file=self.creds / "bundle.pem",
            require_client_cert=True,
        )
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            http=MtlsHttpToolsProtocol,
            ssl_certfile=str(self.creds / "svid.pem"),
            ssl_context_factory=lambda _c, _d: context,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def named_url(self) -> str:
        """By host name: what a cookie jar would keep cookies for (it keeps none for an IP)."""
        return f"https://localhost:{self.port}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if scope["path"].endswith("/slow"):
            await asyncio.sleep(1.0)
        path = scope["raw_path"].decode() + (
            "?" + scope["query_string"].decode() if scope["query_string"] else ""
        )
        status, answer = 200, dict(PAYLOAD)
        if self.require_decision:
            try:
                claims = self.verifier.verify(
                    headers.get("x-warden-decision"), scope["method"], path, body
                )
                answer = {
                    **PAYLOAD,
                    "agent": claims["sub"],
                    "decision_id": claims["wdn"],
                    "api_key": headers.get("x-api-key"),
                }
                if self.on_decision is not None:  # what a test checks as the request arrives
                    self.on_decision(claims["wdn"])
            except DecisionRejected as exc:
                status, answer = 403, {"error": exc.code}
        self.seen.append(
            {
                "path": path,
                "headers": headers,
                "all_headers": [(k.decode(), v.decode()) for k, v in scope["headers"]],
                "status": status,
            }
        )
        data = json.dumps(answer).encode()
        content_type = b"application/json"
        canned = self.answers.get(scope["path"].rsplit("/", 1)[-1])
        if canned is not None and status == 200:
            content_type, data = canned[0].encode(), canned[1]
        extra: list[tuple[bytes, bytes]] = []
        if scope["path"].endswith("/set-cookie"):  # a session cookie for whoever called
            extra.append((b"set-cookie", b"session=" + answer.get("agent", "").encode()))
        if scope["path"].endswith("/gzip"):  # compressed whatever the client asked for
            data = gzip.compress(data)
            extra.append((b"content-encoding", b"gzip"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(data)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def start(self) -> Upstream:
        thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True


FINANCE = {"domain": "finance", "classification": "internal"}


def ledger_route(upstream: Upstream, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """One route, /ledger -> ``upstream``, as it appears in a route file."""
    return {
        "prefix": "/ledger",
        "upstream": upstream.url,
        "upstream_id": upstream.spiffe_id,
        "resource": {
            "type": "Endpoint",
            "id": "ledger/invoices",
            "properties": properties if properties is not None else FINANCE,
        },
    }


def ledger_routes(upstream: Upstream, properties: dict[str, Any] | None = None) -> RouteTable:
    return parse_routes({"routes": [ledger_route(upstream, properties)]})
