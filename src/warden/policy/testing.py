"""Policy tests, like ``opa test``: YAML cases (request -> wanted decision, reasons,
obligations) that ship inside a bundle and must pass before it becomes active.

A test file::

    fixtures:
      trust_domain: example.org          # default
      now: "2026-03-02T10:00:00Z"        # default: now
      defaults: {risk: {score: 100}, health: {status: healthy}, dlp: {}}
      agents:
        - {name: invoice-bot, owner: finance-team, groups: [finance]}
        - {name: triage-bot, owner: care-team, groups: [healthcare], health: null}  # unknown
      work_orders:
        - {id: wo-1, agent: invoice-bot, ticket: FIN-1, actions: ["data:export"],
           resources: ["Dataset:customers"], constraints: [{arg: rows, op: max, value: 100}]}
    cases:
      - name: invoice agents never read payroll
        request:
          subject: invoice-bot                    # an agent name, or {type, id}
          action: http:GET                        # or {name: ...}
          resource: {type: Endpoint, id: hr/payroll, properties: {tags: [payroll]}}
          context: {authn: mtls}
        want: {decision: deny, reasons: [payroll-only-hr]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from warden.clock import utcnow
from warden.policy.bundle import CompiledBundle
from warden.policy.decide import decide
from warden.policy.model import DecisionRequest, InvalidDecisionRequest
from warden.policy.snapshot import AgentFacts, PolicySnapshot, Signal
from warden.policy.workorders import Constraint, WorkOrder

SIGNALS = ("risk", "health", "dlp")


@dataclass
class CaseResult:
    file: str
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    got: dict[str, Any] = field(default_factory=dict)


def run_bundle_tests(bundle: CompiledBundle) -> list[CaseResult]:
    """Run every test file in the bundle."""
    results: list[CaseResult] = []
    for name in sorted(bundle.tests):
        results.extend(run_test_file(bundle, name, bundle.tests[name]))
    return results


def run_test_file(bundle: CompiledBundle, name: str, raw: bytes) -> list[CaseResult]:
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        return [CaseResult(name, "(file)", False, [f"not YAML: {exc}"])]
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        return [CaseResult(name, "(file)", False, ["a test file has a list of cases"])]
    fixtures = document.get("fixtures") or {}
    results = []
    for index, case in enumerate(document["cases"]):
        case_name = str(case.get("name", f"case {index + 1}")) if isinstance(case, dict) else ""
        try:
            results.append(_run_case(bundle, name, case_name, fixtures, case))
        except (KeyError, TypeError, ValueError, InvalidDecisionRequest) as exc:
            results.append(CaseResult(name, case_name, False, [f"malformed case: {exc}"]))
    return results


def _run_case(
    bundle: CompiledBundle, file: str, name: str, fixtures: dict[str, Any], case: dict[str, Any]
) -> CaseResult:
    merged = {**fixtures, **(case.get("fixtures") or {})}
    trust_domain = str(merged.get("trust_domain", "example.org"))
    now_text = merged.get("now")
    now = datetime.fromisoformat(str(now_text).replace("Z", "+00:00")) if now_text else utcnow()
    snapshot = fixture_snapshot(bundle, merged, trust_domain, now)
    request = DecisionRequest.from_dict(_request(case["request"], trust_domain))
    decision = decide(request, snapshot, now=now, decision_id="test")
    want = case.get("want") or {}
    problems: list[str] = []
    got = decision.to_dict()
    if want.get("decision") not in ("allow", "deny"):
        problems.append("want.decision must be allow or deny")
    elif decision.decision != want["decision"]:
        problems.append(f"decision: want {want['decision']}, got {decision.decision}")
    if "reasons" in want:
        got_ids = sorted(r.policy for r in decision.reasons)
        if got_ids != sorted(want["reasons"]):
            problems.append(f"reasons: want {sorted(want['reasons'])}, got {got_ids}")
    if "obligations" in want and sorted(decision.obligations) != sorted(want["obligations"]):
        problems.append(
            f"obligations: want {sorted(want['obligations'])}, got {sorted(decision.obligations)}"
        )
    if "work_order" in want:
        wanted = want["work_order"]
        if (
            (wanted is True and decision.work_order is None)
            or (wanted in (False, None) and decision.work_order is not None)
            or (isinstance(wanted, str) and decision.work_order != wanted)
        ):
            problems.append(f"work_order: want {wanted}, got {decision.work_order}")
    if decision.errors:
        got["errors"] = list(decision.errors)
    return CaseResult(file, name, not problems, problems, got)


def _request(data: dict[str, Any], trust_domain: str) -> dict[str, Any]:
    request = dict(data)
    subject = request.get("subject")
    if isinstance(subject, str):
        spiffe_id = (
            subject
            if subject.startswith("spiffe://")
            else (f"spiffe://{trust_domain}/agent/{subject}")
        )
        request["subject"] = {"type": "Agent", "id": spiffe_id}
    if isinstance(request.get("action"), str):
        request["action"] = {"name": request["action"]}
    return request


def fixture_snapshot(
    bundle: CompiledBundle, fixtures: dict[str, Any], trust_domain: str, now: datetime
) -> PolicySnapshot:
    """A snapshot made of test fixtures."""
    defaults = fixtures.get("defaults") or {}
    agents: dict[str, AgentFacts] = {}
    signals: dict[str, dict[str, Signal]] = {s: {} for s in SIGNALS}
    for agent in fixtures.get("agents") or []:
        spiffe_id = f"spiffe://{trust_domain}/agent/{agent['name']}"
        agents[spiffe_id] = AgentFacts.of(
            spiffe_id,
            str(agent.get("owner", "owner")),
            agent.get("labels") or {},
            list(agent.get("groups") or []),
            str(agent.get("status", "active")),
        )
        for signal in SIGNALS:
            values = agent[signal] if signal in agent else defaults.get(signal)
            if values is not None:
                age = timedelta(seconds=float(values.get("age_s", 0)))
                signals[signal][spiffe_id] = Signal(values, now - age)
    orders: dict[str, list[WorkOrder]] = {}
    for order in fixtures.get("work_orders") or []:
        spiffe_id = f"spiffe://{trust_domain}/agent/{order['agent']}"
        orders.setdefault(spiffe_id, []).append(
            WorkOrder(
                id=str(order.get("id", "wo-test")),
                agent=spiffe_id,
                ticket=str(order["ticket"]),
                actions=frozenset(order["actions"]),
                resources=tuple(order["resources"]),
                constraints=tuple(
                    Constraint(c["arg"], c["op"], c["value"])
                    for c in order.get("constraints") or []
                ),
                not_before=now - timedelta(seconds=60),
                expires_at=now + timedelta(seconds=float(order.get("expires_in_s", 3600))),
                max_uses=int(order.get("max_uses", 1)),
                uses=int(order.get("uses", 0)),
                status=str(order.get("status", "open")),
                issued_by="test",
                created_at=now,
            )
        )
    return PolicySnapshot(
        bundle=bundle,
        agents=agents,
        work_orders={k: tuple(v) for k, v in orders.items()},
        risk=signals["risk"],
        health=signals["health"],
        dlp=signals["dlp"],
    )
