"""Bundle activation: a bad bundle never replaces the active one."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from tests.unit.policy.conftest import write_bundle
from warden.policy.administrator import PolicyAdministrator
from warden.policy.bundle import BundleFiles, compile_bundle, project
from warden.policy.engine import PolicyEngine, shadow_report
from warden.policy.errors import BundleRejected, PolicyPackInvalid
from warden.policy.model import DecisionRequest
from warden.policy.signing import generate_signing_key, load_public_key, sign_bundle
from warden.store import Store

OPEN = '@id("open") permit (principal, action, resource);'
TESTS = """
fixtures: {agents: [{name: bot}]}
cases:
  - name: reads are allowed
    request: {subject: bot, action: http:GET, resource: {type: Endpoint, id: x}}
    want: {decision: allow}
"""


def events(store: Store) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from warden.store import schema

    with store.begin() as conn:
        rows = conn.execute(select(schema.policy_events).order_by(schema.policy_events.c.id))
        return [(r.outcome, r.reason) for r in rows]


def test_good_bundle_activates(tmp_path: Path, store: Store) -> None:
    admin = PolicyAdministrator(store)
    bundle = admin.activate(write_bundle(tmp_path / "b", OPEN, tests=TESTS))
    assert admin.active is bundle and bundle.version == 1
    assert events(store)[-1][0] == "activated"


@pytest.mark.parametrize(
    ("policies", "tests", "why"),
    [
        ("permit (principal, action, resource", None, "do not parse"),
        (
            "permit (principal, action, resource) when { resource.nonexistent == 1 };",
            None,
            "schema validation failed",
        ),
        ('@id("none") forbid (principal, action, resource);', TESTS, r"policy test\(s\) fail"),
    ],
)
def test_bad_bundles_never_replace_the_active_one(
    tmp_path: Path, store: Store, policies: str, tests: str | None, why: str
) -> None:
    admin = PolicyAdministrator(store)
    good = admin.activate(write_bundle(tmp_path / "good", OPEN, tests=TESTS))
    with pytest.raises(BundleRejected, match=why):
        admin.activate(write_bundle(tmp_path / "bad", policies, version=2, tests=tests))
    assert admin.active is good
    assert events(store)[-1][0] == "rejected"


def test_signatures(tmp_path: Path, store: Store) -> None:
    private, public = generate_signing_key()
    _, other_public = generate_signing_key()
    admin = PolicyAdministrator(
        store, trusted_keys=[load_public_key(public)], require_signature=True
    )
    unsigned = write_bundle(tmp_path / "unsigned", OPEN, tests=TESTS)
    with pytest.raises(BundleRejected, match="not signed"):
        admin.activate(unsigned)
    signed = write_bundle(tmp_path / "signed", OPEN, tests=TESTS)
    sign_bundle(signed, private)
    assert admin.activate(signed).version == 1
    # Tampered after signing: any file changed breaks it.
    tampered = write_bundle(tmp_path / "tampered", OPEN, version=2, tests=TESTS)
    sign_bundle(tampered, private)
    (tampered / "policies.cedar").write_text(OPEN + "\n// changed")
    with pytest.raises(BundleRejected, match="changed after it was signed"):
        admin.activate(tampered)
    # Signed by a key Warden does not trust.
    foreign = PolicyAdministrator(
        store, trusted_keys=[load_public_key(other_public)], require_signature=True
    )
    with pytest.raises(BundleRejected, match="no trusted key"):
        foreign.check(signed)
    assert admin.active is not None and admin.active.version == 1


def test_no_rollback(tmp_path: Path, store: Store) -> None:
    admin = PolicyAdministrator(store)
    admin.activate(write_bundle(tmp_path / "v2", OPEN, version=2, tests=TESTS))
    with pytest.raises(BundleRejected, match="no rollback"):
        admin.activate(write_bundle(tmp_path / "v1", OPEN, version=1, tests=TESTS))
    same_version = write_bundle(tmp_path / "v2b", OPEN + "\n// other", version=2, tests=TESTS)
    with pytest.raises(BundleRejected, match="no rollback"):
        admin.activate(same_version)
    # A restarted administrator remembers the last version (it is in the store).
    fresh = PolicyAdministrator(store)
    with pytest.raises(BundleRejected):
        fresh.activate(write_bundle(tmp_path / "v1b", OPEN, version=1, tests=TESTS))
    assert fresh.activate(write_bundle(tmp_path / "v3", OPEN, version=3, tests=TESTS))


def test_tar_gz_bundles(tmp_path: Path, store: Store) -> None:
    source = write_bundle(tmp_path / "src", OPEN, tests=TESTS)
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=".")
    assert PolicyAdministrator(store).activate(archive).name == "test"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"permit (principal, action, resource);"
        info = tarfile.TarInfo("../../escape.cedar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(PolicyPackInvalid, match="unsafe member"):
        BundleFiles.read(evil)


def test_hot_reload(tmp_path: Path, store: Store) -> None:
    path = write_bundle(tmp_path / "live", OPEN, tests=TESTS)
    admin = PolicyAdministrator(store)
    admin.activate(path)
    admin.watch(path, interval_s=0.05)
    try:
        (path / "policies.cedar").write_text(
            OPEN + '\n@id("x") forbid (principal, action, resource) when { false };'
        )
        (path / "manifest.yaml").write_text("name: test\nversion: 2\n")
        deadline = time.monotonic() + 5
        while admin.active is None or admin.active.version != 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (path / "policies.cedar").write_text("broken (")  # rejected; v2 stays
        (path / "manifest.yaml").write_text("name: test\nversion: 3\n")
        time.sleep(0.5)
        assert admin.active.version == 2
    finally:
        admin.stop()


def test_shadow_flips_are_counted_never_enforced(tmp_path: Path, store: Store) -> None:
    from warden.clock import utcnow
    from warden.identity.feed import append_change
    from warden.store import schema

    with store.begin() as conn:
        conn.execute(
            schema.agents.insert().values(
                id="a",
                name="bot",
                spiffe_id="spiffe://example.org/agent/bot",
                owner="o",
                purpose="",
                labels={},
                selectors=[],
                groups=[],
                max_svid_ttl_s=3600,
                status="active",
                credential_epoch=0,
                created_at=utcnow(),
                updated_at=utcnow(),
                status_reason="",
            )
        )
        append_change(
            conn,
            spiffe_id="spiffe://example.org/agent/bot",
            change="status",
            status="active",
            epoch=0,
        )
    admin = PolicyAdministrator(store)
    admin.activate(write_bundle(tmp_path / "active", OPEN, tests=TESTS))
    admin.set_shadow(
        write_bundle(
            tmp_path / "candidate",
            OPEN
            + """
        @id("no-posts") forbid (principal, action == Action::"http:POST", resource);""",
        )
    )
    engine = PolicyEngine(store, admin)
    for action in ("http:GET", "http:POST", "http:POST"):
        decision = engine.decide(
            DecisionRequest.from_dict(
                {
                    "subject": {"type": "Agent", "id": "spiffe://example.org/agent/bot"},
                    "action": {"name": action},
                    "resource": {"type": "Endpoint", "id": "x"},
                }
            )
        )
        assert decision.allowed  # the shadow never decides
    report = shadow_report(store)
    assert report["counts"] == {"allow->deny": 2, "deny->allow": 0}
    assert report["recent"][0]["shadow_reasons"][0]["policy"] == "no-posts"


def test_context_projection_paths(tmp_path: Path) -> None:
    bundle = compile_bundle(
        BundleFiles.read(
            write_bundle(
                tmp_path / "proj",
                """
        permit (principal, action, resource)
          when { context.risk.score < 5 && context.args has rows && context.authn == "mtls" };
    """,
            )
        )
    )
    assert bundle.context_paths == {"risk": {"score": True}, "args": {"rows": True}, "authn": True}
    context = {
        "risk": {"score": 1, "level": "low"},
        "args": {"rows": 3, "x": 1},
        "authn": "mtls",
        "tool": "t",
    }
    assert project(context, bundle.context_paths) == {
        "risk": {"score": 1},
        "args": {"rows": 3},
        "authn": "mtls",
    }


def test_processes_activating_together_agree(tmp_path: Path, store: Store) -> None:
    """Gateways and control planes start together on one store: the same bundle activates
    everywhere, and a stale one never rolls the recorded version back."""
    from concurrent.futures import ThreadPoolExecutor

    bundle = write_bundle(tmp_path / "v1", OPEN, tests=TESTS)
    admins = [PolicyAdministrator(store) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda a: a.activate(bundle).revision, admins))
    assert len(set(results)) == 1
    newer = write_bundle(tmp_path / "v2", OPEN, version=2, tests=TESTS)
    PolicyAdministrator(store).activate(newer)
    with pytest.raises(BundleRejected, match="no rollback"):
        PolicyAdministrator(store).activate(bundle)
