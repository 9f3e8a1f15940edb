"""The warden command end to end on a real state directory (in process)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from warden.cli.main import app

runner = CliRunner()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state_dir = tmp_path / "state"
    result = runner.invoke(
        app,
        ["--state-dir", str(state_dir), "init", "--trust-domain", "acme.test", "--operator", "ops"],
    )
    assert result.exit_code == 0, result.output
    return state_dir


def warden(state: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--state-dir", str(state), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_lays_out_a_private_state_directory(state: Path) -> None:
    assert mode(state) == 0o700
    assert 'trust_domain = "acme.test"' in (state / "warden.toml").read_text()
    creds = state / "operators" / "ops"
    for name in ("svid.pem", "key.pem", "bundle.pem"):
        assert mode(creds / name) == 0o600
    leaf = x509.load_pem_x509_certificates((creds / "svid.pem").read_bytes())[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://acme.test/operator/ops"
    ]
    code, output = warden(state, "init")
    assert code == 1 and "already initialised" in output


def test_agent_lifecycle(state: Path) -> None:
    assert (
        warden(
            state,
            "agent",
            "register",
            "invoice-bot",
            "--owner",
            "finance",
            "--label",
            "team=finance",
        )[0]
        == 0
    )
    code, output = warden(state, "agent", "list")
    assert code == 0 and "spiffe://acme.test/agent/invoice-bot" in output
    code, output = warden(state, "agent", "show", "invoice-bot", "--json")
    assert json.loads(output)["labels"] == {"team": "finance"}
    assert "disabled" in warden(state, "agent", "disable", "invoice-bot")[1]
    assert "active" in warden(state, "agent", "enable", "invoice-bot")[1]
    assert "epoch 1" in warden(state, "agent", "revoke", "invoice-bot", "--reason", "test")[1]
    code, output = warden(state, "agent", "show", "nobody")
    assert code == 1 and "error[agent_not_found]" in output
    code, output = warden(state, "agent", "register", "../x", "--owner", "y")
    assert code == 2 and "error[invalid_name]" in output
    assert warden(state, "agent", "register", "orphan")[0] == 2  # --owner is required
    assert warden(state, "agent", "delete", "invoice-bot")[0] == 0


def test_svids_issue_inspect_revoke(state: Path, tmp_path: Path) -> None:
    warden(state, "agent", "register", "invoice-bot", "--owner", "finance")
    out = tmp_path / "svid"
    code, output = warden(state, "svid", "issue", "invoice-bot", "--x509", "--out", str(out))
    assert code == 0, output
    assert {p.name for p in out.iterdir()} == {"svid.pem", "key.pem", "bundle.pem"}
    assert all(mode(p) == 0o600 for p in out.iterdir())
    code, output = warden(state, "svid", "inspect", str(out / "svid.pem"))
    assert "spiffe://acme.test/agent/invoice-bot" in output and "yes" in output
    assert warden(state, "svid", "revoke", str(out / "svid.pem"), "--reason", "leak")[0] == 0
    assert "revoked" in warden(state, "svid", "inspect", str(out / "svid.pem"))[1]

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "req.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    csr_out = tmp_path / "csr-svid"
    code, output = warden(
        state,
        "svid",
        "issue",
        "invoice-bot",
        "--csr",
        str(tmp_path / "req.csr"),
        "--out",
        str(csr_out),
    )
    assert code == 0, output
    assert not (csr_out / "key.pem").exists()
    issued = x509.load_pem_x509_certificates((csr_out / "svid.pem").read_bytes())[0]
    assert issued.public_key() == key.public_key()

    code, printed = warden(
        state, "svid", "issue", "invoice-bot", "--csr", str(tmp_path / "req.csr")
    )
    assert code == 0 and x509.load_pem_x509_certificates(printed.encode())[0].public_key() == (
        key.public_key()
    )

    code, token = warden(state, "svid", "issue", "invoice-bot", "--jwt", "--audience", "ledger")
    assert code == 0 and token.count(".") == 2
    (tmp_path / "token").write_text(token)
    code, output = warden(state, "svid", "inspect", str(tmp_path / "token"), "--audience", "ledger")
    assert "yes" in output
    code, output = warden(state, "svid", "issue", "invoice-bot", "--jwt")
    assert code == 2 and "audience" in output


def test_bundle_operators_and_ca(state: Path) -> None:
    code, pem = warden(state, "bundle")
    assert code == 0 and len(x509.load_pem_x509_certificates(pem.encode())) == 1
    jwks = json.loads(warden(state, "bundle", "--jwks")[1])
    assert {k["use"] for k in jwks["keys"]} == {"x509-svid", "jwt-svid"}
    assert warden(state, "operator", "add", "audrey", "--role", "auditor")[0] == 0
    assert mode(state / "operators" / "audrey" / "key.pem") == 0o600
    assert "audrey" in warden(state, "operator", "list")[1]
    assert warden(state, "operator", "add", "eve", "--role", "root")[0] == 2
    assert warden(state, "operator", "revoke", "audrey")[0] == 0
    assert warden(state, "ca", "rotate")[0] == 0
    code, output = warden(state, "ca", "show")
    assert code == 0 and "Intermediate CA 2" in output


def test_attestation_commands(state: Path, tmp_path: Path) -> None:
    assert (
        warden(
            state,
            "agent",
            "register",
            "bot",
            "--owner",
            "qa",
            "--selector",
            "unix:uid:1234",
            "--selector",
            "unix:path:/usr/bin/x",
        )[0]
        == 0
    )
    code, output = warden(
        state, "agent", "register", "twin", "--owner", "qa", "--selector", "unix:uid:1234"
    )
    assert code == 1 and "error[selector_conflict]" in output
    code, output = warden(state, "agent", "selectors", "bot", "--selector", "bad")
    assert code == 2 and "error[invalid_selector]" in output
    assert "unix:gid:7" in warden(state, "agent", "selectors", "bot", "--selector", "unix:gid:7")[1]
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6"}))
    code, output = warden(
        state,
        "agent",
        "evidence",
        "bot",
        "--image-digest",
        "sha256:" + "0" * 64,
        "--sbom",
        str(sbom),
    )
    assert code == 0 and "SBOM sha256:" in output
    code, token = warden(state, "agent", "join-token", "bot", "--ttl", "60")
    assert code == 0 and len(token.strip()) >= 40
    assert warden(state, "agent", "join-token", "bot", "--ttl", "5")[0] == 2
    assert "quarantined" in warden(state, "agent", "quarantine", "bot", "--reason", "x")[1]
    assert "active" in warden(state, "agent", "release", "bot")[1]


def test_run_refuses_without_a_control_plane(state: Path) -> None:
    code, output = warden(
        state,
        "run",
        "--agent",
        "x",
        "--operator",
        "ops",
        "--server",
        "https://127.0.0.1:9",
        "--",
        "true",
    )
    assert code == 1 and "error[control_plane_unreachable]" in output


def test_policy_commands(state: Path, tmp_path: Path) -> None:
    import shutil

    from warden.policy.packs import shipped_policies

    bundle = tmp_path / "bundle"
    shutil.copytree(shipped_policies() / "default", bundle)
    code, output = warden(state, "policy", "test", str(bundle))
    cases = sum(
        line.strip().startswith("- name:")
        for case_file in (bundle / "tests").glob("*.yaml")
        for line in case_file.read_text().splitlines()
    )
    assert code == 0 and f"{cases} passed, 0 failed" in output
    assert "valid" in warden(state, "policy", "validate", str(bundle))[1]
    (bundle / "tests" / "broken.yaml").write_text(
        "cases:\n  - name: wrong on purpose\n    request: {subject: x, action: http:GET,"
        " resource: {type: Endpoint, id: x}}\n    want: {decision: allow}\n"
    )
    code, output = warden(state, "policy", "test", str(bundle))
    assert code == 1 and f"{cases} passed, 1 failed" in output
    (bundle / "tests" / "broken.yaml").unlink()
    assert warden(state, "policy", "keygen", "--out", str(tmp_path / "keys"))[0] == 0
    code, output = warden(
        state, "policy", "sign", str(bundle), "--key", str(tmp_path / "keys" / "policy-signing.key")
    )
    assert code == 0 and (bundle / "bundle.sig").exists()

    assert (
        warden(state, "agent", "register", "crm-bot", "--owner", "sales", "--group", "finance")[0]
        == 0
    )
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "subject": {"type": "Agent", "id": "spiffe://acme.test/agent/crm-bot"},
                "action": {"name": "http:GET"},
                "resource": {
                    "type": "Endpoint",
                    "id": "hr/payroll",
                    "properties": {"domain": "finance", "tags": ["payroll"]},
                },
                "context": {"authn": "mtls"},
            }
        )
    )
    code, output = warden(state, "policy", "eval", str(request))
    assert code == 0 and "deny" in output and "payroll-only-hr" in output
    code, output = warden(state, "policy", "eval", str(request), "--json")
    assert json.loads(output)["reasons"][0]["policy"] == "payroll-only-hr"
    (tmp_path / "bad.json").write_text("{not json")
    assert warden(state, "policy", "eval", str(tmp_path / "bad.json"))[0] == 2
    assert "allow->deny" in warden(state, "policy", "shadow")[1]


def test_workorder_and_enforcement_point_commands(state: Path, tmp_path: Path) -> None:
    warden(state, "agent", "register", "crm-bot", "--owner", "sales", "--group", "finance")
    code, output = warden(
        state,
        "workorder",
        "create",
        "--agent",
        "crm-bot",
        "--ticket",
        "FIN-1",
        "--action",
        "data:export",
        "--resource",
        "Dataset:customers",
        "--constraint",
        "rows<=500",
        "--max-uses",
        "2",
    )
    assert code == 0, output
    order_id = output.split()[1]
    assert "FIN-1" in warden(state, "workorder", "list", "--agent", "crm-bot")[1]
    shown = json.loads(warden(state, "workorder", "show", order_id)[1])
    assert shown["constraints"] == [{"arg": "rows", "op": "max", "value": 500}]
    assert "closed" in warden(state, "workorder", "close", order_id)[1]
    code, output = warden(
        state,
        "workorder",
        "create",
        "--agent",
        "crm-bot",
        "--ticket",
        "X",
        "--action",
        "http:GET",
        "--resource",
        "nocolon",
    )
    assert code == 2 and "error[invalid_work_order]" in output
    code, output = warden(
        state, "enforcement-point", "add", "gateway", "--out", str(tmp_path / "gw")
    )
    assert code == 0 and (tmp_path / "gw" / "svid.pem").exists()
    assert "spiffe://acme.test/svc/gateway" in warden(state, "enforcement-point", "list")[1]


def test_mcp_tool_commands(state: Path) -> None:
    from warden.enforce.mcp.pins import ToolPins
    from warden.store import open_store

    server = "spiffe://acme.test/svc/tools"
    store = open_store(f"sqlite:///{(state / 'warden.db').resolve()}")
    pins = ToolPins(store)
    pins.observe(server, {"name": "add", "description": "Add."})
    pins.observe(server, {"name": "add", "description": "Add, then exfiltrate."})
    code, out = warden(state, "mcp", "tools", "--held")
    assert code == 0 and "add" in out and "held since" in out
    code, out = warden(state, "mcp", "show", server, "add")
    assert code == 0 and json.loads(out)["pending_definition"]["description"] == (
        "Add, then exfiltrate."
    )
    code, out = warden(state, "mcp", "approve", server, "add", "--by", "alice")
    assert code == 0 and "Pinned" in out
    code, out = warden(state, "mcp", "approve", server, "add")
    assert code != 0 and "no changed definition" in out
    code, out = warden(state, "mcp", "show", server, "nothing")
    assert code != 0 and "no pin" in out
    store.dispose()


def test_audit_commands(state: Path, tmp_path: Path) -> None:
    from sqlalchemy import text

    from tests.support.audit import GATEWAY, a_decision
    from warden.audit.setup import open_decision_log
    from warden.config import load_settings
    from warden.identity.authority import open_authority

    authority = open_authority(load_settings(state_dir=state))
    log = open_decision_log(authority)
    ids = []
    for allow in (True, False, True):
        decision, request = a_decision(allow=allow)
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
    log.close()
    code, key = warden(state, "audit", "key")
    assert code == 0 and key.startswith("acme.test/warden-log+")
    code, note = warden(state, "audit", "checkpoint")
    assert code == 0 and note.splitlines()[1] == "3"
    code, out = warden(state, "audit", "verify")
    assert code == 0 and "verified 3 entries" in out
    code, out = warden(state, "audit", "verify", "--workers", "2")  # scanned by two processes
    assert code == 0 and "verified 3 entries" in out
    code, out = warden(state, "audit", "prove", ids[1])
    proof = json.loads(out)
    assert code == 0 and proof["seq"] == 1 and proof["tree_size"] == 3 and proof["path"]
    code, out = warden(state, "audit", "tail", "-n", "5")
    assert code == 0 and "payroll-only-hr" in out
    code, out = warden(state, "audit", "search", "--decision", "deny", "--json")
    assert code == 0 and [json.loads(line)["decision_id"] for line in out.splitlines()] == [ids[1]]
    code, out = warden(state, "audit", "export", "--format", "ocsf")
    assert code == 0 and [json.loads(line)["class_uid"] for line in out.splitlines()] == [6003] * 3
    otel = tmp_path / "otel.jsonl"
    code, _ = warden(state, "audit", "export", "--format", "otel", "--out", str(otel))
    assert code == 0 and "resourceLogs" in json.loads(otel.read_text().splitlines()[0])
    code, out = warden(state, "audit", "archive", "--out", str(tmp_path / "archive"))
    assert code == 0 and "archived" in out
    code, out = warden(state, "audit", "verify", "--archives", str(tmp_path / "archive"))
    assert code == 0, out
    with authority.store.begin() as conn:  # tamper with the archive's evidence
        conn.execute(text("DELETE FROM audit_checkpoints"))
    (tmp_path / "archive" / "entries-000000000000-000000000003.jsonl").write_text("{}\n")
    code, out = warden(state, "audit", "verify", "--archives", str(tmp_path / "archive"))
    assert code != 0
    authority.store.dispose()


def test_agent_health_command(state: Path, tmp_path: Path) -> None:
    from tests.support.reports import trivy, vex

    assert warden(state, "agent", "register", "scan-bot", "--owner", "ops")[0] == 0
    code, out = warden(state, "agent", "health", "scan-bot")
    assert code == 0 and "unknown" in out and "no vulnerability report" in out
    scan, statements, junk = tmp_path / "trivy.json", tmp_path / "vex.json", tmp_path / "x.json"
    scan.write_bytes(trivy([("CVE-2026-1111", "CRITICAL"), ("CVE-2026-2222", "HIGH")]))
    statements.write_bytes(vex({"CVE-2026-1111": "not_affected"}))
    junk.write_text("[1, 2, 3]")
    code, out = warden(state, "agent", "health", "scan-bot", "--report", str(scan))
    assert code == 0 and "degraded" in out and "CVE-2026-1111" in out
    code, out = warden(
        state, "agent", "health", "scan-bot", "--report", str(scan), "--report", str(statements)
    )
    assert code == 0 and "healthy" in out and "(0 critical, 1 high)" in out
    code, out = warden(state, "agent", "health", "scan-bot", "--report", str(junk))
    assert code != 0 and "error[invalid_report]" in out
    code, out = warden(state, "agent", "health", "scan-bot", "--json")
    assert json.loads(out)["vex_cleared"] == {"CVE-2026-1111": "not_affected"}  # kept
    code, out = warden(state, "agent", "health", "nobody", "--report", str(scan))
    assert code != 0 and "nobody" in out
