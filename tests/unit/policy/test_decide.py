"""decide(): forbid overrides permit, default deny, errors deny, totality, determinism."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.policy.conftest import DEFAULT, write_bundle
from warden.policy.bundle import BundleFiles, compile_bundle
from warden.policy.decide import decide
from warden.policy.model import DecisionRequest
from warden.policy.snapshot import AgentFacts, PolicySnapshot, Signal
from warden.policy.testing import fixture_snapshot

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
AGENT = "spiffe://example.org/agent/bot"


def snapshot_for(bundle_dir: Path, **kw: object) -> PolicySnapshot:
    bundle = compile_bundle(BundleFiles.read(bundle_dir))
    facts = {AGENT: AgentFacts.of(AGENT, "owner", {}, ["finance"], "active")}
    good = {AGENT: Signal({"score": 10, "status": "healthy"}, NOW)}
    return PolicySnapshot(bundle, facts, {}, good, good, good, **kw)  # type: ignore[arg-type]


def request(action: str = "http:GET", **props: object) -> DecisionRequest:
    return DecisionRequest.from_dict(
        {
            "subject": {"type": "Agent", "id": AGENT},
            "action": {"name": action},
            "resource": {"type": "Endpoint", "id": "x", "properties": props},
            "context": {"authn": "mtls"},
        }
    )


def test_forbid_overrides_permit(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        """
        @id("open") permit (principal, action, resource);
        @id("closed") @reason("no deletes")
        forbid (principal, action in Action::"delete", resource);
    """,
    )
    snapshot = snapshot_for(bundle)
    assert decide(request(), snapshot, now=NOW).allowed
    denied = decide(request("http:DELETE"), snapshot, now=NOW)
    assert not denied.allowed
    assert [(r.policy, r.message) for r in denied.reasons] == [("closed", "no deletes")]


def test_default_deny(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        """
        @id("reads") permit (principal, action in Action::"read", resource);
    """,
    )
    decision = decide(request("http:POST"), snapshot_for(bundle), now=NOW)
    assert decision.decision == "deny"
    assert decision.reasons[0].policy == "default-deny"


def test_an_erroring_forbid_denies(tmp_path: Path) -> None:
    # The forbid reads an argument that is text where a number is compared: Cedar skips the
    # erroring forbid and would let the permit win. Warden denies.
    bundle = write_bundle(
        tmp_path / "b",
        """
        @id("open") permit (principal, action, resource);
        @id("cap") forbid (principal, action, resource)
          when { context.args has limit && context.args.limit > 100 };
    """,
    )
    snapshot = snapshot_for(bundle)
    bad = DecisionRequest.from_dict(
        {
            "subject": {"type": "Agent", "id": AGENT},
            "action": {"name": "http:GET"},
            "resource": {"type": "Endpoint", "id": "x"},
            "context": {"args": {"limit": "lots"}},
        }
    )
    decision = decide(bad, snapshot, now=NOW)
    assert decision.decision == "deny"
    assert decision.reasons[0].policy == "evaluation_error"
    assert decision.errors  # Cedar's own message, kept for the decision record


def test_an_empty_policy_set_denies_everything(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", "")
    decision = decide(request(), snapshot_for(bundle), now=NOW)
    assert (decision.decision, decision.reasons[0].policy) == ("deny", "no_policies")


def test_unknown_or_inactive_subjects_and_actions(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", '@id("open") permit (principal, action, resource);')
    snapshot = snapshot_for(bundle)
    stranger = DecisionRequest.from_dict(
        {
            "subject": {"type": "Agent", "id": "spiffe://example.org/agent/nobody"},
            "action": {"name": "http:GET"},
            "resource": {"type": "Endpoint", "id": "x"},
        }
    )
    assert decide(stranger, snapshot, now=NOW).reasons[0].policy == "unknown_subject"
    assert decide(request("http:BREW"), snapshot, now=NOW).reasons[0].policy == "unknown_action"
    quarantined = PolicySnapshot(
        snapshot.bundle, {AGENT: AgentFacts.of(AGENT, "o", {}, [], "quarantined")}
    )
    assert decide(request(), quarantined, now=NOW).reasons[0].policy == "subject_not_active"


def test_obligations_and_revision_are_named(tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "b",
        """
        @id("capped") @reason("capped read") @obligation("max_records:5, redact:ssn")
        permit (principal, action in Action::"read", resource);
    """,
    )
    snapshot = snapshot_for(bundle)
    decision = decide(request(), snapshot, now=NOW)
    assert decision.obligations == ("max_records:5", "redact:ssn")
    assert decision.policy_revision == snapshot.bundle.revision
    assert decision.policy_revision.startswith("sha256:")
    body = decision.to_dict()
    assert set(body) == {
        "decision_id",
        "decision",
        "reasons",
        "obligations",
        "risk",
        "policy_revision",
        "work_order",
        "health",
        "at",
    }


def test_callers_cannot_supply_live_inputs() -> None:
    """Risk, health, DLP and work orders come from Warden, never from the request."""
    bundle = compile_bundle(BundleFiles.read(DEFAULT))
    snapshot = fixture_snapshot(
        bundle, {"agents": [{"name": "bot", "groups": ["finance"]}]}, "example.org", NOW
    )
    forged = DecisionRequest.from_dict(
        {
            "subject": {"type": "Agent", "id": AGENT},
            "action": {"name": "http:GET"},
            "resource": {
                "type": "Endpoint",
                "id": "crm/x",
                "properties": {"domain": "finance", "classification": "pii"},
            },
            "context": {
                "authn": "mtls",
                "risk": {"score": 0, "status": "known"},
                "health": {"status": "healthy"},
                "dlp": {"status": "known"},
                "work_order": {"present": True},
            },
        }
    )
    decision = decide(forged, snapshot, now=NOW)
    assert decision.decision == "deny"
    assert "sensitive-needs-known-state" in {r.policy for r in decision.reasons}


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
DEFAULT_SNAPSHOT = fixture_snapshot(
    compile_bundle(BundleFiles.read(DEFAULT)),
    {
        "defaults": {"risk": {"score": 100}, "health": {"status": "healthy"}, "dlp": {}},
        "agents": [{"name": "bot", "groups": ["finance", "healthcare", "retail"]}],
    },
    "example.org",
    NOW,
)


@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(
        [
            "http:GET",
            "http:POST",
            "http:DELETE",
            "data:export",
            "mcp:tools/call",
            "config:write",
            "nope",
        ]
    )
    | st.text(max_size=12),
    resource_type=st.sampled_from(["Endpoint", "Dataset", "Tool", "Agent"]) | st.text(max_size=8),
    properties=st.dictionaries(
        st.sampled_from(["classification", "domain", "region", "tags", "other"]), JSON, max_size=5
    ),
    context=st.dictionaries(
        st.sampled_from(
            ["authn", "args", "destination_region", "bulk", "delegation", "tool", "risk"]
        ),
        JSON,
        max_size=6,
    ),
)
def test_decide_is_total_and_deterministic(
    action: str, resource_type: str, properties: dict[str, object], context: dict[str, object]
) -> None:
    body = {
        "subject": {"type": "Agent", "id": AGENT},
        "action": {"name": action or "x"},
        "resource": {"type": resource_type or "x", "id": "r", "properties": properties},
        "context": context,
    }
    request = DecisionRequest.from_dict(body)
    first = decide(request, DEFAULT_SNAPSHOT, now=NOW, decision_id="d")
    second = decide(request, DEFAULT_SNAPSHOT, now=NOW, decision_id="d")
    assert first.decision in ("allow", "deny")
    assert first.to_dict() == second.to_dict()


def test_remembered_answers_never_cross_identities(tmp_path: Path) -> None:
    """Answers are remembered per group only when no policy uses the agent's identity."""
    other = "spiffe://example.org/agent/other"
    for policies, other_allowed in (
        ('@id("a") permit (principal == Agent::"' + AGENT + '", action, resource);', False),
        (
            '@id("a") permit (principal, action, resource) when { principal.owner == "owner" };',
            False,
        ),
        ('@id("a") permit (principal in Group::"finance", action, resource);', True),
        (
            '@id("a") permit (principal, action, resource) when { [principal].contains(principal)'
            ' && principal.labels.contains("k=v") };',
            False,
        ),
    ):
        bundle = compile_bundle(
            BundleFiles.read(write_bundle(tmp_path / str(hash(policies)), policies))
        )
        facts = {
            AGENT: AgentFacts.of(AGENT, "owner", {"k": "v"}, ["finance"], "active"),
            other: AgentFacts.of(other, "someone", {}, ["finance"], "active"),
        }
        snapshot = PolicySnapshot(bundle, facts)
        mine = request()
        theirs = DecisionRequest.from_dict(
            {**mine.to_dict(), "subject": {"type": "Agent", "id": other}}
        )
        assert decide(mine, snapshot, now=NOW).allowed
        assert decide(theirs, snapshot, now=NOW).allowed is other_allowed, policies
        assert decide(mine, snapshot, now=NOW).allowed


def test_self_configuration_is_judged_per_agent() -> None:
    bundle = compile_bundle(BundleFiles.read(DEFAULT))
    snapshot = fixture_snapshot(
        bundle,
        {
            "defaults": {"risk": {"score": 1}, "health": {"status": "healthy"}, "dlp": {}},
            "agents": [
                {"name": "bot", "groups": ["finance"]},
                {"name": "ops", "groups": ["finance"]},
            ],
        },
        "example.org",
        NOW,
    )

    def config(subject: str, target: str) -> DecisionRequest:
        return DecisionRequest.from_dict(
            {
                "subject": {"type": "Agent", "id": f"spiffe://example.org/agent/{subject}"},
                "action": {"name": "config:write"},
                "resource": {"type": "Agent", "id": f"spiffe://example.org/agent/{target}"},
                "context": {"authn": "mtls"},
            }
        )

    assert decide(config("bot", "bot"), snapshot, now=NOW).reasons[0].policy == (
        "no-self-configuration"
    )
    assert decide(config("ops", "bot"), snapshot, now=NOW).reasons[0].policy == "default-deny"
    assert decide(config("ops", "ops"), snapshot, now=NOW).reasons[0].policy == (
        "no-self-configuration"
    )
