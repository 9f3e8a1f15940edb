"""The demo's upstream services: real HTTPS servers on 127.0.0.1 with generated data, each
trusting only requests the gateway decided (mTLS with a client certificate from the trust
domain, and a valid ``X-Warden-Decision`` bound to this service, its method, path and body).

- finance: customers (PII), invoices with routing numbers, payroll;
- healthcare: FHIR-like Patient resources, in the EU, and a US archive;
- retail: inventory and prices;
- store: backups, audit logs and agents' configuration;
- trials: a pharma study's data.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from warden.identity.authority import IdentityAuthority
from warden.identity.ca.keys import write_private_file
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context
from warden.upstream import DecisionVerifier, RequireDecision

Handler = Callable[[str, str, dict[str, list[str]], bytes], tuple[int, Any]]


def _rng(seed: str) -> random.Random:
    return random.Random(seed)  # noqa: S311 (generated demo data, not secrets)


def customers(n: int = 2000) -> list[dict[str, Any]]:
    rng = _rng("customers")
    first = ["Ada", "Bo", "Cy", "Di", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
    last = ["Berg", "Cole", "Diaz", "Eko", "Fry", "Gale", "Hahn", "Ito", "Jung", "Kerr"]
    return [
        {
            "id": f"C{i:05d}",
            "name": f"{rng.choice(first)} {rng.choice(last)}",
            "email": f"customer{i}@example.com",
            "country": rng.choice(["DE", "FR", "NL", "IE"]),
            "balance_eur": round(rng.uniform(0, 50_000), 2),
        }
        for i in range(n)
    ]


def invoices(n: int = 200) -> list[dict[str, Any]]:
    rng = _rng("invoices")
    return [
        {
            "id": f"INV-{i:05d}",
            "customer": f"C{rng.randrange(2000):05d}",
            "amount_eur": round(rng.uniform(50, 9_000), 2),
            "routing_number": f"{rng.randrange(10**8, 10**9)}",
            "status": rng.choice(["open", "paid", "overdue"]),
        }
        for i in range(n)
    ]


def patients(n: int = 60) -> list[dict[str, Any]]:
    rng = _rng("patients")
    return [
        {
            "resourceType": "Patient",
            "id": f"pat-{i:04d}",
            "identifier": [{"system": "urn:demo:mrn", "value": f"MRN{100000 + i}"}],
            "name": [{"family": rng.choice(["Meyer", "Rossi", "Novak"]), "given": ["Sam"]}],
            "birthDate": f"19{rng.randrange(40, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(9)}",
            "gender": rng.choice(["female", "male", "other"]),
        }
        for i in range(n)
    ]


def prices(n: int = 50) -> list[dict[str, Any]]:
    rng = _rng("prices")
    return [
        {
            "sku": f"SKU-{i:04d}",
            "price_eur": round(rng.uniform(1, 500), 2),
            "stock": rng.randrange(0, 400),
        }
        for i in range(n)
    ]


@dataclass
class Service:
    """One upstream: its SPIFFE ID (``svc/<name>``), a handler, and a uvicorn server."""

    name: str
    handler: Handler
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) it served
    port: int = 0

    def spiffe_id(self, trust_domain: str) -> str:
        return f"spiffe://{trust_domain}/svc/{self.name}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = parse_qs(scope.get("query_string", b"").decode())
        self.seen.append((scope["method"], scope["path"]))
        status, answer = self.handler(scope["method"], scope["path"], query, body)
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def start(self, authority: IdentityAuthority, directory: Path) -> Service:
        issued = authority.issuer.issue_service_x509(
            self.name, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert, key, bundle = directory / "svid.pem", directory / "key.pem", directory / "bundle.pem"
        for path, data in (
            (cert, issued.cert_chain_pem()),
            (key, issued.key_pem()),
            (bundle, authority.ca.bundle.to_pem()),
        ):
            path.unlink(missing_ok=True)
            write_private_file(path, data)
        verifier = DecisionVerifier.from_bundle_file(bundle, self.spiffe_id(authority.trust_domain))
        context = server_ssl_context(
            certfile=cert, keyfile=key, ca_file=bundle, require_client_cert=True
        )
        config = uvicorn.Config(
            RequireDecision(self.app, verifier),
            host="127.0.0.1",
            port=0,
            http=MtlsHttpToolsProtocol,
            ssl_certfile=str(cert),
            ssl_context_factory=lambda _c, _d: context,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()), daemon=True, name=self.name
        )
        thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._thread = thread
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving (a service that never started has nothing to stop)."""
        thread = getattr(self, "_thread", None)
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout=5)


def _limit(query: dict[str, list[str]], default: int = 20) -> int:
    try:
        return max(0, min(int(query.get("limit", [default])[0]), 100_000))
    except ValueError:
        return default


def finance() -> Service:
    people, bills = customers(), invoices()

    def handle(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if path.startswith("/finance/customers"):
            return 200, {"customers": people[: _limit(query)]}
        if path.startswith("/finance/invoices"):
            if method in ("PATCH", "PUT", "POST") and body:
                change = json.loads(body)
                return 200, {"updated": change.get("id"), "routing_number": "changed"}
            return 200, {"invoices": bills[: _limit(query)]}
        if path.startswith("/finance/payroll"):
            return 200, {"payroll": [{"employee": "E001", "salary_eur": 71_000}]}
        return 404, {"error": "not_found"}

    return Service("finance", handle)


def healthcare() -> Service:
    records = patients()

    def handle(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if path.startswith("/ehr/formulary"):
            return 200, {"formulary": [{"drug": "amoxicillin", "form": "tablet"}]}
        if path.startswith("/ehr/Patient") or path.startswith("/ehr-us/Patient"):
            if method == "POST":
                return 201, {"stored": len(json.loads(body or b"[]"))}
            bundle = records[: _limit(query, 1)]
            return 200, {"resourceType": "Bundle", "entry": [{"resource": p} for p in bundle]}
        return 404, {"error": "not_found"}

    return Service("healthcare", handle)


def retail() -> Service:
    items = prices()

    def handle(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if path.startswith("/retail/prices"):
            return 200, {"prices": items[: _limit(query, 10)]}
        if path.startswith("/retail/inventory"):
            return 200, {"items": [{"sku": i["sku"], "stock": i["stock"]} for i in items]}
        return 404, {"error": "not_found"}

    return Service("retail", handle)


def store() -> Service:
    def handle(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if method == "DELETE":
            return 200, {"deleted": path}
        if method in ("PUT", "POST"):
            return 200, {"written": path}
        return 200, {"objects": [f"{path}/2026-12-0{d}.tar.zst" for d in range(1, 4)]}

    return Service("store", handle)


def trials() -> Service:
    def handle(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"study": "PH-301", "arms": 3, "enrolled": 412, "interim": "blinded"}

    return Service("trials", handle)


def all_services() -> list[Service]:
    return [finance(), healthcare(), retail(), store(), trials()]
