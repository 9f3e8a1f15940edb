"""Re-provisioning: a reconciliation agent changes a vendor's routing number through the
gateway; the default playbook revokes it, the operator's hook starts a fresh instance under a
new identity through `warden run`, and that instance works, while the old one stays refused."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from tests.support.gateway import with_settings
from tests.support.upstream import FINANCE, Upstream
from warden.enforce.routes import parse_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.server.run import ControlPlaneServer
from warden.stack import write_operator_credential

HOOK = Path(__file__).parent.parent / "support" / "reprovision_hook.py"


@pytest.fixture
def stack(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> Iterator[tuple[IdentityAuthority, ControlPlaneServer, GatewayServer, Path]]:
    result = tmp_path / "fresh-instance.json"
    base = sqlite_authority
    base.operators.add("admin", role="admin", created_by="test")
    write_operator_credential(base, "admin")
    plane = ControlPlaneServer(base, host="127.0.0.1", port=0).start_in_thread()
    upstream = Upstream(base, tmp_path).start()
    with socket.socket() as probe:  # the hook's command names the gateway: its port first
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    gateway_url = f"https://localhost:{port}"
    authority = with_settings(
        base,
        response_hooks={
            "restart-agent": [
                sys.executable, str(HOOK), plane.url.replace("127.0.0.1", "localhost"),
                gateway_url, str(result),
            ]
        },
    )  # fmt: skip
    routes = parse_routes(
        {
            "routes": [
                {
                    "prefix": "/ledger",
                    "upstream": upstream.url,
                    "upstream_id": upstream.spiffe_id,
                    "resource": {"type": "Endpoint", "id": "ledger/vendors", "properties": FINANCE},
                    "args": {"body": ["vendor", "routing_number"]},
                }
            ]
        }
    )
    gateway = GatewayServer(authority, routes=routes, host="127.0.0.1", port=port)
    gateway.start_in_thread()
    try:
        yield authority, plane, gateway, result
    finally:
        gateway.stop()
        upstream.stop()
        plane.stop()


def test_a_changed_routing_number_replaces_the_agent_with_a_fresh_identity(
    stack: tuple[IdentityAuthority, ControlPlaneServer, GatewayServer, Path], tmp_path: Path
) -> None:
    authority, _plane, gateway, result = stack
    old = authority.agents.register(
        "recon-bot", owner="qa", groups=["finance"], labels={"role": "reconciliation"}
    )
    creds = write_svid(
        tmp_path / "recon",
        authority.issuer.issue_agent_x509("recon-bot"),
        authority.ca.bundle.to_pem(),
    )
    with httpx.Client(
        base_url=gateway.url, timeout=10, verify=context_for(creds, creds / "bundle.pem")
    ) as client:
        usual = {"vendor": "acme", "routing_number": "111000025"}
        assert client.post("/ledger/vendors", json=usual).status_code == 200
        changed = {"vendor": "acme", "routing_number": "021000021"}
        assert client.post("/ledger/vendors", json=changed).status_code == 200  # decided, then seen
        assert gateway.response is not None
        # The risk engine learns of a request after its answer: wait for the run it trips.
        deadline = time.monotonic() + 30
        while not gateway.response.runs.list(agent="recon-bot"):
            assert time.monotonic() < deadline, "no playbook ran"
            time.sleep(0.05)
        gateway.response.wait_idle(30)
        refused = client.get("/ledger/invoices")
        assert refused.status_code == 401  # every credential of the old identity is dead
    (run,) = gateway.response.runs.list(agent="recon-bot")
    assert run["playbook"] == "payment-destination-change"
    assert [(s["action"], s["outcome"]) for s in run["steps"]] == [
        ("revoke", "done"),
        ("reprovision", "done"),
        ("incident", "done"),
    ]
    assert authority.agents.get("recon-bot").status == "revoked"  # kept for investigation
    fresh = authority.agents.get("recon-bot-r1")
    assert fresh.status == "active" and fresh.owner == old.owner and fresh.groups == ["finance"]
    assert fresh.labels["role"] == "reconciliation" and fresh.labels["replaces"] == "recon-bot"
    hook_env = dict(
        line.split("=", 1) for line in Path(str(result) + ".hook").read_text().splitlines()
    )
    assert hook_env["WARDEN_AGENT"] == "recon-bot-r1"
    assert hook_env["WARDEN_PREVIOUS_AGENT"] == "recon-bot"
    deadline = time.monotonic() + 60
    while not result.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert result.exists(), Path(str(result) + ".err").read_text()
    got = json.loads(result.read_text())
    assert got == {"spiffe_id": fresh.spiffe_id, "status": 200}
