"""Attestation end to end: `warden run` launches, pid reuse, container joins, events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from warden.clock import utcnow
from warden.identity.attestation.container import sbom_digest
from warden.identity.attestation.events import recent_attempts
from warden.identity.attestation.unix import ProcessRef, boot_id, process_start_time
from warden.identity.authority import IdentityAuthority
from warden.identity.errors import AttestationFailed
from warden.server.run import ControlPlaneServer
from warden.stack import write_operator_credential

WARDEN = str(Path(sys.executable).parent / "warden")
CHILD = textwrap.dedent(
    """
    from spiffe import WorkloadApiClient
    with WorkloadApiClient(default_timeout=10) as client:
        print(client.fetch_x509_svid().spiffe_id, flush=True)
    """
)
SBOM = json.dumps(
    {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "library", "name": "requests", "version": "2.32.3"}],
    }
).encode()
IMAGE = "sha256:" + "ab" * 32


@pytest.fixture
def plane(sqlite_authority: IdentityAuthority) -> Iterator[ControlPlaneServer]:
    sqlite_authority.operators.add("admin", role="admin", created_by="test")
    write_operator_credential(sqlite_authority, "admin")
    server = ControlPlaneServer(sqlite_authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def warden_run(plane: ControlPlaneServer, agent: str) -> subprocess.Popen[str]:
    state = plane.authority.settings.state_dir
    return subprocess.Popen(
        [
            WARDEN,
            "--state-dir",
            str(state),
            "run",
            "--agent",
            agent,
            "--server",
            plane.url.replace("127.0.0.1", "localhost"),
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_agents_same_uid_and_interpreter_get_their_own_identities(
    plane: ControlPlaneServer,
) -> None:
    plane.authority.agents.register("alpha", owner="qa")
    plane.authority.agents.register("beta", owner="qa")
    runs = {name: warden_run(plane, name) for name in ("alpha", "beta")}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == f"spiffe://example.org/agent/{name}"
    methods = {
        (e["agent_name"], e["method"], e["outcome"]) for e in recent_attempts(plane.authority.store)
    }
    assert {("alpha", "launcher", "issued"), ("beta", "launcher", "issued")} <= methods


def test_launch_needs_an_active_agent_and_an_operator(plane: ControlPlaneServer) -> None:
    plane.authority.agents.register("gamma", owner="qa")
    plane.authority.agents.disable("gamma")
    proc = warden_run(plane, "gamma")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "agent_not_active" in err


def test_process_outside_any_binding_gets_nothing_and_pid_reuse_is_refused(
    sqlite_authority: IdentityAuthority,
) -> None:
    authority = sqlite_authority
    authority.agents.register("delta", owner="qa")
    me = ProcessRef.of(os.getpid())
    # A binding for an earlier process that had this pid (another start time) is worthless.
    authority.launches.bind(
        "delta", ProcessRef(me.boot_id, me.pid, me.start_time - 1), created_by="test"
    )
    with pytest.raises(AttestationFailed, match="no registered agent"):
        authority.attestor.attest(os.getpid(), os.getuid(), os.getgid())
    binding = authority.launches.bind("delta", me, created_by="test")
    agent, evidence = authority.attestor.attest(os.getpid(), os.getuid(), os.getgid())
    assert agent.name == "delta" and evidence.process == me
    authority.launches.end(binding)
    with pytest.raises(AttestationFailed):
        authority.attestor.attest(os.getpid(), os.getuid(), os.getgid())


def test_process_identity_survives_only_as_long_as_the_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ref = ProcessRef.of(proc.pid)
    assert ref.is_alive() and ref.boot_id == boot_id()
    assert process_start_time(proc.pid) == ref.start_time
    proc.kill()
    proc.wait()
    assert not ref.is_alive()
    with pytest.raises(AttestationFailed, match="gone"):
        ProcessRef.of(proc.pid)


def test_container_join(plane: ControlPlaneServer, tmp_path: Path) -> None:
    authority = plane.authority
    authority.agents.register("pricing-bot", owner="retail")
    authority.containers.set_evidence("pricing-bot", image_digest=IMAGE, sbom=SBOM)
    assert authority.containers.sbom("pricing-bot") == SBOM.decode()
    (tmp_path / "sbom.json").write_bytes(SBOM)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(authority.ca.bundle.to_pem())
    server = plane.url.replace("127.0.0.1", "localhost")

    def join(token: str, image: str, out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                WARDEN,
                "join",
                "--token",
                token,
                "--image-digest",
                image,
                "--sbom",
                str(tmp_path / "sbom.json"),
                "--bundle",
                str(bundle),
                "--out",
                str(tmp_path / out),
                "--server",
                server,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    token = authority.containers.create_join_token("pricing-bot", created_by="test")
    ok = join(token, IMAGE, "ok")
    assert ok.returncode == 0, ok.stderr
    chain = (tmp_path / "ok" / "svid.pem").read_bytes()
    from cryptography import x509

    verified = authority.verifier.verify_x509(x509.load_pem_x509_certificates(chain))
    assert str(verified.spiffe_id) == "spiffe://example.org/agent/pricing-bot"
    assert oct((tmp_path / "ok" / "key.pem").stat().st_mode & 0o777) == "0o600"

    reused = join(token, IMAGE, "again")
    assert reused.returncode != 0 and "attestation_failed" in reused.stderr
    wrong = join(
        authority.containers.create_join_token("pricing-bot", created_by="test"),
        "sha256:" + "cd" * 32,
        "wrong",
    )
    assert wrong.returncode != 0 and not (tmp_path / "wrong").exists()
    reasons = [e["reason"] for e in recent_attempts(authority.store, 3)]
    assert reasons == ["image digest mismatch", "join token already used", ""]


def test_container_tokens_expire_and_evidence_is_checked(
    sqlite_authority: IdentityAuthority,
) -> None:
    containers = sqlite_authority.containers
    sqlite_authority.agents.register("bot", owner="qa")
    with pytest.raises(Exception, match="CycloneDX"):
        containers.set_evidence("bot", image_digest=IMAGE, sbom=b'{"bomFormat": "SPDX"}')
    with pytest.raises(Exception, match="digest"):
        containers.set_evidence("bot", image_digest="latest", sbom=SBOM)
    containers.set_evidence("bot", image_digest=IMAGE, sbom=SBOM)
    old = containers.create_join_token("bot", created_by="t", now=utcnow() - timedelta(hours=1))
    with pytest.raises(AttestationFailed, match="expired"):
        containers.redeem(old, image_digest=IMAGE, sbom_digest_value=sbom_digest(SBOM))
    token = containers.create_join_token("bot", created_by="t")
    with pytest.raises(AttestationFailed, match="SBOM digest mismatch"):
        containers.redeem(token, image_digest=IMAGE, sbom_digest_value=sbom_digest(b"{}"))
    with pytest.raises(AttestationFailed, match="unknown"):
        containers.redeem("forged", image_digest=IMAGE, sbom_digest_value=sbom_digest(SBOM))
