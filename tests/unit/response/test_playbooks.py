"""Playbook bundles: the schema refuses what is wrong and says where; signatures and versions
are checked like policy bundles; the shipped defaults are valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from warden.audit.reader import LogReader
from warden.audit.setup import open_decision_log
from warden.identity.authority import IdentityAuthority
from warden.policy.bundle import BundleFiles
from warden.policy.errors import BundleRejected, PolicyPackInvalid
from warden.policy.packs import shipped_playbooks
from warden.policy.signing import generate_signing_key, load_public_key, sign_bundle
from warden.response.engine import ResponseEngine
from warden.response.playbooks import Notify, Restrict, compile_playbooks

DEFAULT = shipped_playbooks() / "default"


def bundle_with(root: Path, playbook: str, version: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.yaml").write_text(f"name: t\nversion: {version}\n")
    (root / "one.yaml").write_text(playbook)
    return root


def test_the_shipped_playbooks_are_valid() -> None:
    bundle = compile_playbooks(BundleFiles.read(DEFAULT))
    assert {p.name for p in bundle.playbooks} == {
        "high-risk-contain",
        "phi-exfiltration",
        "compromised-workload",
        "payment-destination-change",
        "payroll-attempt",
        "destructive-attempt",
    }
    restrict = bundle.by_name("compromised-workload")
    assert restrict is not None and isinstance(restrict.actions[0].terms, Restrict)
    assert restrict.actions[0].terms.until == "clean_report"
    assert bundle.unconfigured(["security"], []) == [
        "payment-destination-change: hook 'restart-agent'"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\ntrigger: {manual: {}}\nactions: [{quarantine: {}}]\nextra: 1\n", "extra"),
        (
            "name: x\ntrigger: {risk: {at_least: 800}, manual: {}}\nactions: [{revoke: {}}]\n",
            "exactly one",
        ),
        ("name: x\ntrigger: {}\nactions: [{revoke: {}}]\n", "exactly one"),
        ("name: x\ntrigger: {manual: {}}\nactions: [{explode: {}}]\n", "unknown action"),
        ("name: x\ntrigger: {manual: {}}\nactions: [{revoke: {}, quarantine: {}}]\n", "one key"),
        ("name: x\ntrigger: {manual: {}}\nactions: [{throttle: {rate: fast}}]\n", "rate"),
        ("name: x\ntrigger: {manual: {}}\nactions: []\n", "actions"),
        ("name: x\ntrigger: {risk: {at_least: 5000}}\nactions: [{revoke: {}}]\n", "at_least"),
        ("name: x\ntrigger: {manual: {}}\nactions: [{restrict: {classes: [secret]}}]\n", "classes"),
        ("name: X Y\ntrigger: {manual: {}}\nactions: [{revoke: {}}]\n", "name"),
        (
            "name: x\ntrigger: {manual: {}}\nwhen: {weekdays: [9]}\nactions: [{revoke: {}}]\n",
            "weekdays",
        ),
        (
            "name: x\ntrigger: {manual: {}}\nactions: [{reprovision: {hook: 'rm -rf /'}}]\n",
            "hook",
        ),
        ("name: x\ntrigger: {manual: {}}\nactions: [{notify: {url: 'http://x'}}]\n", "url"),
        ("{not yaml", "not YAML"),
    ],
)
def test_a_bad_playbook_is_refused_with_where(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(PolicyPackInvalid) as caught:
        compile_playbooks(BundleFiles.read(bundle_with(tmp_path / "b", text)))
    assert "one.yaml" in caught.value.message
    assert problem in caught.value.message


def test_a_bundle_needs_a_manifest_with_a_version_and_unique_names(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / "one.yaml").write_text("name: x\ntrigger: {manual: {}}\nactions: [{revoke: {}}]\n")
    with pytest.raises(PolicyPackInvalid, match="manifest"):
        compile_playbooks(BundleFiles.read(root))
    (root / "manifest.yaml").write_text("name: t\nversion: one\n")
    with pytest.raises(PolicyPackInvalid, match="integer version"):
        compile_playbooks(BundleFiles.read(root))
    (root / "manifest.yaml").write_text("name: t\nversion: 1\n")
    shutil.copy(root / "one.yaml", root / "two.yaml")
    with pytest.raises(PolicyPackInvalid, match="two playbooks"):
        compile_playbooks(BundleFiles.read(root))


def test_webhooks_are_named_never_given(tmp_path: Path) -> None:
    text = "name: x\ntrigger: {manual: {}}\nactions: [{notify: {webhook: security}}]\n"
    bundle = compile_playbooks(BundleFiles.read(bundle_with(tmp_path / "b", text)))
    terms = bundle.playbooks[0].actions[0].terms
    assert isinstance(terms, Notify) and terms.webhook == "security"
    assert bundle.unconfigured([], []) == ["x: webhook 'security'"]


def test_signed_and_versioned_like_policy_bundles(
    sqlite_authority: IdentityAuthority, tmp_path: Path
) -> None:
    private, public = generate_signing_key()
    trusted = [load_public_key(public)]
    log = open_decision_log(sqlite_authority)
    engine = ResponseEngine(
        sqlite_authority, log, runner="test", trusted_keys=trusted, require_signature=True
    )
    try:
        text = "name: x\ntrigger: {manual: {}}\nactions: [{quarantine: {}}]\n"
        unsigned = bundle_with(tmp_path / "v2", text, version=2)
        with pytest.raises(BundleRejected, match="not signed"):
            engine.activate(unsigned)
        sign_bundle(unsigned, private)
        assert engine.activate(unsigned).version == 2
        # Tampered after signing: refused, the active bundle stays.
        (unsigned / "one.yaml").write_text(text.replace("quarantine", "revoke"))
        with pytest.raises(BundleRejected, match="changed after it was signed"):
            engine.activate(unsigned)
        assert engine.active is not None and engine.active.version == 2
        # Another key's signature: refused.
        other, _ = generate_signing_key()
        forged = bundle_with(tmp_path / "v3", text, version=3)
        sign_bundle(forged, other)
        with pytest.raises(BundleRejected, match="no trusted key"):
            engine.activate(forged)
        # An older version, properly signed: refused (no rollback).
        older = bundle_with(tmp_path / "v1", text, version=1)
        sign_bundle(older, private)
        with pytest.raises(BundleRejected, match="does not follow"):
            engine.activate(older)
        newer = bundle_with(tmp_path / "v3b", text, version=3)
        sign_bundle(newer, private)
        assert engine.activate(newer).version == 3
    finally:
        engine.close()
        log.close()
    activated = [e["version"] for e in LogReader(sqlite_authority.store).search(kind="response")]
    assert activated == [3, 2]  # each activation is on record
