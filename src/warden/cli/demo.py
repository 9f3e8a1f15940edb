"""``warden demo``: a walk-through of what Warden does today, on a fresh state directory.

Everything is real: the CA, the store, the control plane on 127.0.0.1 with mTLS, the calls.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.panel import Panel
from rich.table import Table

from warden.cli.common import console
from warden.config import load_settings
from warden.identity.authority import IdentityAuthority, file_key_manager
from warden.identity.ca import CertificateAuthority, FileKeyManager, IssuedX509
from warden.identity.errors import CredentialRejected
from warden.identity.issuer import IssuedJwt
from warden.policy.model import DecisionRequest
from warden.policy.workorders import Constraint
from warden.store import open_store
from warden.transport.uvicorn_mtls import client_ssl_context

TRUST_DOMAIN = "demo.example"
LEDGER = f"spiffe://{TRUST_DOMAIN}/svc/ledger"


def _step(number: int, title: str) -> None:
    console.rule(f"[bold cyan]{number}. {title}")


def run_demo(
    keep: Annotated[
        Path | None, typer.Option(help="Keep the demo's state in this directory")
    ] = None,
) -> None:
    """Initialise a trust domain, register agents, issue and verify SVIDs, call the API."""
    state_dir = keep or Path(tempfile.mkdtemp(prefix="warden-demo-"))
    try:
        _walk_through(state_dir)
    finally:
        if keep is None:
            shutil.rmtree(state_dir, ignore_errors=True)


def _walk_through(state_dir: Path) -> None:
    from warden.server.run import ControlPlaneServer

    console.print(
        Panel.fit("Warden walk-through: identities for agents, on 127.0.0.1", style="bold")
    )
    authority, alice = _init(state_dir)
    _register(authority)
    svid, token = _issue_and_verify(authority)
    server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        as_alice = _call_the_api(authority, server.url, state_dir, alice, svid)
        _revoke(authority, server.url, as_alice, svid, token)
        _rotate(authority)
        _attest(state_dir, server.url)
        _decide(authority, server)
    finally:
        server.stop()
        authority.store.dispose()
    console.print(Panel.fit("[green]Done.[/] Next: `warden --help`, and README.md", style="bold"))


def _init(state_dir: Path) -> tuple[IdentityAuthority, Path]:
    from warden.stack import write_operator_credential

    _step(1, "init: a trust domain, its CA (root + intermediate), the first operator")
    settings = load_settings(state_dir=state_dir, trust_domain=TRUST_DOMAIN, api_port=0)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(settings.database)
    keys = FileKeyManager.create(state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, TRUST_DOMAIN)
    authority = IdentityAuthority.from_parts(settings, store, file_key_manager(settings))
    authority.operators.add("alice", role="admin", created_by="demo")
    alice = write_operator_credential(authority, "alice")
    root = authority.ca.bundle.x509_authorities[0]
    console.print(f"root CA: {root.subject.rfc4514_string()}")
    console.print(f"operator alice (admin), credential in {alice}")
    return authority, alice


def _register(authority: IdentityAuthority) -> None:
    _step(2, "register agents, each with an accountable owner")
    for name, owner, purpose in (
        ("invoice-bot", "finance-team", "reconciles supplier invoices"),
        ("claims-bot", "claims-team", "triages insurance claims"),
    ):
        agent = authority.agents.register(name, owner=owner, purpose=purpose)
        console.print(f"{agent.spiffe_id}  owner={agent.owner}")


def _issue_and_verify(authority: IdentityAuthority) -> tuple[IssuedX509, IssuedJwt]:
    _step(3, "issue an X.509-SVID and a JWT-SVID; verify both")
    svid = authority.issuer.issue_agent_x509("invoice-bot")
    verified = authority.verifier.verify_x509([svid.cert, *svid.chain])
    table = Table(show_header=False, box=None)
    table.add_row("X.509-SVID", f"serial {svid.serial_hex[:16]}...")
    table.add_row("  SPIFFE ID", str(verified.spiffe_id))
    table.add_row("  expires", str(verified.expires_at))
    token = authority.issuer.issue_agent_jwt("invoice-bot", [LEDGER])
    jwt_ok = authority.verifier.verify_jwt(token.token, LEDGER)
    table.add_row("JWT-SVID", f"jti {jwt_ok.credential_id}, aud {jwt_ok.audience[0]}")
    try:
        authority.verifier.verify_jwt(token.token, f"spiffe://{TRUST_DOMAIN}/svc/payroll")
    except CredentialRejected as exc:
        table.add_row("  for another audience", f"[red]rejected[/]: {exc.code}")
    console.print(table)
    return svid, token


def _call_the_api(
    authority: IdentityAuthority, url: str, state_dir: Path, alice: Path, svid: IssuedX509
) -> ssl.SSLContext:
    _step(4, "the control plane over mTLS: operators may, agents and strangers may not")
    ca_file = alice / "bundle.pem"
    agent_dir = state_dir / "agents" / "invoice-bot"
    agent_dir.mkdir(parents=True)
    (agent_dir / "svid.pem").write_bytes(svid.cert_chain_pem())
    (agent_dir / "key.pem").write_bytes(svid.key_pem())
    as_alice = client_ssl_context(
        ca_file=ca_file, certfile=alice / "svid.pem", keyfile=alice / "key.pem"
    )
    as_agent = client_ssl_context(
        ca_file=ca_file, certfile=agent_dir / "svid.pem", keyfile=agent_dir / "key.pem"
    )
    calls = Table("caller", "call", "status", "answer")
    for who, context in (
        ("alice (operator)", as_alice),
        ("invoice-bot (agent)", as_agent),
        ("no certificate", client_ssl_context(ca_file=ca_file)),
    ):
        with httpx.Client(verify=context, base_url=url, timeout=10) as client:
            response = client.get("/v1/agents")
            answer = response.json()
            summary = f"{len(answer['agents'])} agents" if response.status_code == 200 else answer
            calls.add_row(who, "GET /v1/agents", str(response.status_code), str(summary))
    console.print(calls)
    return as_alice


def _revoke(
    authority: IdentityAuthority,
    url: str,
    as_alice: ssl.SSLContext,
    svid: IssuedX509,
    token: IssuedJwt,
) -> None:
    _step(5, "revoke invoice-bot: its credentials die on the next check")
    with httpx.Client(verify=as_alice, base_url=url, timeout=10) as client:
        client.post("/v1/agents/invoice-bot/revoke", json={"reason": "demo"})
    checks: list[tuple[str, Callable[[], object]]] = [
        ("X.509-SVID", lambda: authority.verifier.verify_x509([svid.cert, *svid.chain])),
        ("JWT-SVID", lambda: authority.verifier.verify_jwt(token.token, LEDGER)),
    ]
    for label, check in checks:
        try:
            check()
            console.print(f"{label}: [red]still accepted (unexpected)[/]")
        except CredentialRejected as exc:
            console.print(f"{label}: [green]rejected[/] ({exc.code})")


def _rotate(authority: IdentityAuthority) -> None:
    _step(6, "rotate the intermediate: claims-bot keeps its identity")
    claims = authority.issuer.issue_agent_x509("claims-bot")
    authority.ca.rotate_intermediate()
    still = authority.verifier.verify_x509([claims.cert, *claims.chain])
    fresh = authority.issuer.issue_agent_x509("claims-bot")
    console.print(f"old SVID still verifies: {still.spiffe_id}")
    console.print(f"new SVID issued by: {fresh.chain[0].subject.rfc4514_string()}")
    console.print(f"JWT keys in the bundle: {len(authority.ca.bundle.jwt_authorities)}")


WORKLOAD = """
from spiffe import WorkloadApiClient
try:
    with WorkloadApiClient(default_timeout=10) as client:
        print("got", client.fetch_x509_svid().spiffe_id)
except Exception as exc:
    print("refused:", str(exc).split(": ")[-1])
"""


def _attest(state_dir: Path, url: str) -> None:
    _step(7, "a workload proves what it is: `warden run` binds its process to an agent")
    settings = load_settings(state_dir=state_dir)
    warden = [sys.executable, "-m", "warden.cli.main", "--state-dir", str(state_dir)]
    env = {**os.environ, "SPIFFE_ENDPOINT_SOCKET": f"unix://{settings.workload_socket_path}"}
    launched = subprocess.run(
        [
            *warden,
            "run",
            "--agent",
            "claims-bot",
            "--operator",
            "alice",
            "--server",
            url.replace("127.0.0.1", "localhost"),
            "--",
            sys.executable,
            "-c",
            WORKLOAD,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    console.print(f"warden run --agent claims-bot -- python ...: {launched.stdout.strip()}")
    stranger = subprocess.run(
        [sys.executable, "-c", WORKLOAD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    console.print(f"the same program started by hand: {stranger.stdout.strip()}")


# What a clean Trivy scan of the agent's image says: no findings.
CLEAN_SCAN = json.dumps(
    {
        "SchemaVersion": 2,
        "ArtifactName": "registry.example/agents/crm-bot:1.0",
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": ["registry.example/agents/crm-bot@sha256:" + "ab" * 32]},
        "Results": [{"Target": "crm-bot (debian 12.8)", "Class": "os-pkgs", "Vulnerabilities": []}],
    }
).encode()


def _decide(authority: IdentityAuthority, server: Any) -> None:
    _step(8, "every request decided by policy-as-code: the default pack, a work order")
    engine = server.policy
    crm = authority.agents.register("crm-bot", owner="sales-team", groups=["finance"])
    server.risk.flag(crm.spiffe_id, 120, "first use of a new tool")
    server.health.ingest("crm-bot", [CLEAN_SCAN], by="demo")
    engine.set_signals("dlp", {crm.spiffe_id: {}})

    def ask(
        label: str, action: str, rtype: str, rid: str, props: dict[str, Any], args: dict[str, Any]
    ) -> None:
        request = DecisionRequest.from_dict(
            {
                "subject": {"type": "Agent", "id": crm.spiffe_id},
                "action": {"name": action},
                "resource": {"type": rtype, "id": rid, "properties": props},
                "context": {"authn": "mtls", "args": args},
            }
        )
        decision = engine.reserve(engine.decide(request))
        colour = "green" if decision.allowed else "red"
        why = ", ".join(r.policy for r in decision.reasons)
        extra = f" (work order {decision.work_order})" if decision.work_order else ""
        console.print(f"{label:44} [{colour}]{decision.decision}[/] by {why}{extra}")

    pii = {"domain": "finance", "classification": "pii"}
    ask(
        "read the invoice ledger",
        "http:GET",
        "Endpoint",
        "ledger/invoices",
        {"domain": "finance"},
        {},
    )
    ask(
        "read payroll",
        "http:GET",
        "Endpoint",
        "hr/payroll",
        {"domain": "finance", "tags": ["payroll"]},
        {},
    )
    ask(
        "export 100 customers",
        "data:export",
        "Dataset",
        "customers",
        pii,
        {"rows": 100, "destination": "s3://finance-exports"},
    )
    engine.work_orders.create(
        agent=crm.spiffe_id,
        ticket="FIN-1042",
        actions=["data:export"],
        resources=["Dataset:customers"],
        max_uses=1,
        issued_by="alice",
        constraints=[
            Constraint("rows", "max", 500),
            Constraint("destination", "one_of", ["s3://finance-exports"]),
        ],
    )
    engine.reload_work_orders()
    console.print(
        "alice issues work order FIN-1042: one export, at most 500 rows, to s3://finance-exports"
    )
    ask(
        "export 100 customers to a paste site",
        "data:export",
        "Dataset",
        "customers",
        pii,
        {"rows": 100, "destination": "https://paste.example.net"},
    )
    ask(
        "export 100 customers",
        "data:export",
        "Dataset",
        "customers",
        pii,
        {"rows": 100, "destination": "s3://finance-exports"},
    )
    ask(
        "export 100 customers again",
        "data:export",
        "Dataset",
        "customers",
        pii,
        {"rows": 100, "destination": "s3://finance-exports"},
    )
