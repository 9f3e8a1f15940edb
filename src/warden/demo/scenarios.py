"""The seed's scenarios, each played by real agent processes against the world: what is
expected, what was observed, how long containment took and the decisions that show it.

Each scenario registers its agents, lets them behave normally first, then plays the attack
and reads the outcome from what the agent was answered and from Warden's own records (the
agent's status, incidents, alerts, work orders), never from the scenario's own assumptions.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from warden.audit.reader import LogReader
from warden.demo.world import World
from warden.policy.workorders import WorkOrderStore
from warden.response.records import Incidents
from warden.scim.tokens import ScimTokens

SCIM_AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
SCIM_WARDEN = "urn:warden:scim:schemas:extension:2.0:Agent"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass
class Outcome:
    observed: str
    ok: bool
    contain_s: float | None = None
    decisions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scenario:
    number: int
    title: str
    expected: str
    play: Callable[[World], Outcome]


def _get(label: str, path: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    return {"label": label, "method": "GET", "path": path, "count": count, **extra}


def _by(answers: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    return [a for a in answers if a.get("label") == label]


def _said(answers: list[dict[str, Any]]) -> str:
    """The first answer as people read it: its status and, for a refusal, why."""
    if not answers:
        return "no answer"
    first = answers[0]
    return f"{first['status']} ({first['reason']})" if first.get("reason") else str(first["status"])


def _ids(answers: list[dict[str, Any]]) -> list[str]:
    return [a["decision_id"] for a in answers if a.get("decision_id")][:3]


def _incident(world: World, agent: str) -> bool:
    return bool(Incidents(world.store).list(agent=agent))


def _contained_after(world: World, agent: str, answer: dict[str, Any]) -> float:
    """From the attack's answer to the containment's commit (the agent record's change)."""
    changed = world.authority.agents.get(agent).updated_at.timestamp()
    return max(0.0, changed - float(answer["at"]))


def _blocked_in(answers: list[dict[str, Any]]) -> float | None:
    """A request blocked at the gateway is contained by its own answer: its latency."""
    return answers[0]["ms"] / 1000 if answers else None


def _status(world: World, agent: str) -> str:
    return world.authority.agents.get(agent).status


def bulk_export(world: World) -> Outcome:
    world.register("fraud-bot", groups=["finance"], owner="risk-team")
    answers = world.run_agent(
        "fraud-bot",
        [
            _get("normal", "/finance/customers?limit=20", 5),
            _get("export", "/finance/customers?limit=5000"),
        ],
    )
    normal, export = _by(answers, "normal"), _by(answers, "export")
    ok = all(a["status"] == 200 for a in normal) and export and export[0]["status"] == 403
    reason = export[0]["reason"] if export else "no answer"
    # Flagged: the denial is on record with the policy that made it.
    reader = LogReader(world.store)
    entry = reader.decision(export[0]["decision_id"]) if ok else None
    flagged = (
        entry is not None
        and entry["decision"] == "deny"
        and [r["policy"] for r in entry["reasons"]] == ["customer-export-needs-work-order"]
    )
    return Outcome(
        f"{len(normal)} normal reads allowed; export {export[0]['status'] if export else '?'} "
        f"({reason})",
        bool(ok and flagged),
        _blocked_in(export) if ok else None,
        _ids(export),
    )


def _epoch(world: World, agent: str) -> int:
    return world.authority.agents.get(agent).credential_epoch


def payroll_from_new_address(world: World) -> Outcome:
    world.register("invoice-bot", groups=["finance"], owner="finance-team")
    epoch = _epoch(world, "invoice-bot")
    answers = world.run_agent(
        "invoice-bot",
        [
            _get("normal", "/finance/invoices?limit=10", 5),
            _get("payroll", "/finance/payroll", source="127.201.7.5"),
            _get("after", "/finance/invoices?limit=10", every_s=0.0, count=1),
        ],
    )
    payroll = _by(answers, "payroll")
    denied = bool(payroll) and payroll[0]["status"] == 403
    # Revoked: every credential it holds is dead (its epoch moved on). A playbook may also
    # quarantine it (at critical risk, the new address on top of payroll), which holds too.
    revoked_in = world.wait(lambda: _epoch(world, "invoice-bot") > epoch)
    alerted = world.wait(lambda: bool(world.alerts.about("invoice-bot")), 10) is not None
    # A new process of the revoked agent gets no identity; a request on the old one fails.
    again = world.run_agent("invoice-bot", [_get("retry", "/finance/invoices?limit=1")])
    refused = not again or again[0].get("status") in (-1, 0, 401, 403)
    ok = denied and revoked_in is not None and alerted and refused
    return Outcome(
        f"payroll {_said(payroll)}; credentials "
        f"{'revoked' if revoked_in is not None else 'still valid'}, "
        f"{_status(world, 'invoice-bot')}; owner alerted: {'yes' if alerted else 'no'}",
        ok,
        _contained_after(world, "invoice-bot", payroll[0]) if revoked_in is not None else None,
        _ids(payroll),
    )


def phi_exfiltration(world: World) -> Outcome:
    world.register("nurse-bot", groups=["healthcare"], owner="ward-7")
    # Pages of two records: the third page would take the minute's PHI past five.
    answers = world.run_agent("nurse-bot", [_get("read", "/ehr/Patient?limit=2", 8)])
    allowed = [a for a in answers if a["status"] == 200]
    blocked = [a for a in answers if a["status"] in (403, 429)]
    incident = world.wait(lambda: _incident(world, "nurse-bot")) is not None
    held = world.authority.agents.get("nurse-bot").containment or {}
    throttled = "throttle" in held
    ok = len(allowed) * 2 <= 5 and len(blocked) >= 4 and incident and throttled
    first_block = next((a for a in answers if a["status"] != 200), None)
    return Outcome(
        f"{len(allowed) * 2} records allowed, then {len(blocked)} requests blocked "
        f"({first_block['reason'] if first_block else '-'}); throttled: "
        f"{held.get('throttle', {}).get('rate', 'no')}; incident: {'yes' if incident else 'no'}",
        ok,
        _blocked_in(blocked) if first_block else None,
        _ids(blocked),
    )


def price_scraping(world: World) -> Outcome:
    world.register("pricing-bot", groups=["retail"], owner="retail-team")
    answers = world.run_agent("pricing-bot", [_get("scrape", "/retail/prices", 75)])
    throttled = [a for a in answers if a["status"] == 429]
    first = next((i for i, a in enumerate(answers) if a["status"] == 429), None)
    ok = bool(throttled) and first is not None and first <= 61
    return Outcome(
        f"{first if first is not None else len(answers)} requests served, "
        f"then {len(throttled)} answered 429",
        ok,
        _blocked_in(throttled) if ok else None,
        _ids(throttled),
    )


def vulnerable_container(world: World) -> Outcome:
    world.register("lab-bot", groups=["healthcare"], owner="lab-team")
    before = world.run_agent("lab-bot", [_get("phi", "/ehr/Patient?limit=1")])
    world.report_critical("lab-bot")
    restricted = world.run_agent(
        "lab-bot", [_get("phi", "/ehr/Patient?limit=1"), _get("other", "/ehr/formulary")]
    )
    world.report_clean("lab-bot")
    after = world.run_agent("lab-bot", [_get("phi", "/ehr/Patient?limit=1")])
    phi_denied = _by(restricted, "phi")[:1]
    other = _by(restricted, "other")[:1]
    ok = (
        bool(before) and before[0]["status"] == 200
        and bool(phi_denied) and phi_denied[0]["status"] == 403
        and bool(other) and other[0]["status"] == 200
        and bool(after) and after[0]["status"] == 200
    )  # fmt: skip
    return Outcome(
        f"PHI before {before[0]['status'] if before else '?'}, with the critical report "
        f"{_said(phi_denied)}, "
        f"non-sensitive {other[0]['status'] if other else '?'}, after a clean report "
        f"{after[0]['status'] if after else '?'}",
        ok,
        _blocked_in(phi_denied) if ok else None,
        _ids(phi_denied),
    )


def destructive_agent(world: World) -> Outcome:
    world.register("rogue-bot", groups=["ops"], owner="platform-team")
    answers = world.run_agent(
        "rogue-bot",
        [
            _get("normal", "/store/backups", 3),
            {"label": "delete", "method": "DELETE", "path": "/store/backups/2026-12-01"},
            {"label": "config", "method": "PUT", "path": "/store/agent-config/rogue-bot",
             "json": {"allow": "*"}},
        ],
    )  # fmt: skip
    delete, config = _by(answers, "delete"), _by(answers, "config")
    quarantined = world.wait(lambda: _status(world, "rogue-bot") == "quarantined")
    alerted = world.wait(lambda: bool(world.alerts.about("rogue-bot")), 10) is not None
    denied = (
        bool(delete)
        and delete[0]["status"] == 403
        and bool(config)
        and config[0]["status"] in (401, 403)
    )
    ok = denied and quarantined is not None and alerted
    return Outcome(
        f"delete {_said(delete)}, "
        f"config write {config[0]['status'] if config else '?'}; {_status(world, 'rogue-bot')}; "
        f"owner alerted: {'yes' if alerted else 'no'}",
        ok,
        _contained_after(world, "rogue-bot", delete[0]) if quarantined is not None else None,
        _ids(delete + config),
    )


def routing_number_change(world: World) -> Outcome:
    world.register(
        "recon-bot", groups=["finance"], owner="finance-team", labels={"role": "reconciliation"}
    )

    def post(label: str, routing: str, count: int = 1) -> dict[str, Any]:
        body = {"id": "INV-00007", "customer": "C00042", "routing_number": routing, "amount": 120}
        return {"label": label, "method": "POST", "path": "/finance/invoices", "json": body,
                "count": count}  # fmt: skip

    answers = world.run_agent(
        "recon-bot", [post("normal", "021000021", 4), post("change", "026009593")]
    )
    change = _by(answers, "change")
    revoked = world.wait(lambda: _status(world, "recon-bot") == "revoked", 10)
    fresh = world.wait(lambda: _fresh_answer(world, "recon-bot-r1") is not None, 30)
    incident = world.wait(lambda: _incident(world, "recon-bot")) is not None
    answer = _fresh_answer(world, "recon-bot-r1") or {}
    ok = revoked is not None and fresh is not None and answer.get("status") == 200 and incident
    return Outcome(
        f"routing number changed ({_said(change)}); {_status(world, 'recon-bot')}; fresh "
        f"instance recon-bot-r1 answered {answer.get('status', '-')}; incident: "
        f"{'yes' if incident else 'no'}",
        ok,
        _contained_after(world, "recon-bot", change[0]) if revoked is not None and change else None,
        _ids(change) + ([answer["decision_id"]] if answer.get("decision_id") else []),
    )


def _fresh_answer(world: World, agent: str) -> dict[str, Any] | None:
    """What the re-provisioned instance was answered (the hook writes it next to the plan)."""
    path = world.root / f"{agent}.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        found = json.loads(line)
        if found.get("label") == "fresh":
            return dict(found)
    return None


def work_order(world: World) -> Outcome:
    world.register("pharma-bot", groups=["pharma"], owner="research-team")
    orders = WorkOrderStore(world.store)
    spiffe_id = world.authority.agents.get("pharma-bot").spiffe_id
    before = world.run_agent("pharma-bot", [_get("study", "/trials/ph-301")])
    order = orders.create(
        agent=spiffe_id,
        ticket="PH-301",
        actions=["http:GET"],
        resources=["Endpoint:trials/ph-301"],
        constraints=[],
        ttl_s=600,
        max_uses=100,
        issued_by="spiffe://demo.example/operator/admin",
        reason="interim analysis",
    )
    world.deployment.settle()
    during = world.run_agent("pharma-bot", [_get("study", "/trials/ph-301", 2)])
    orders.close(order.id, "analysis done")
    world.deployment.settle()
    after = world.run_agent("pharma-bot", [_get("study", "/trials/ph-301")])
    ok = (
        bool(before) and before[0]["status"] == 403
        and all(a["status"] == 200 for a in during) and len(during) == 2
        and bool(after) and after[0]["status"] == 403
    )  # fmt: skip
    return Outcome(
        f"before the order {before[0]['status'] if before else '?'}, during "
        f"{[a['status'] for a in during]}, after it closed {after[0]['status'] if after else '?'}",
        ok,
        _blocked_in(after) if ok else None,
        _ids(during + after),
    )


def phi_to_another_region(world: World) -> Outcome:
    world.register("transfer-bot", groups=["healthcare"], owner="ward-7")
    answers = world.run_agent(
        "transfer-bot",
        [
            _get("read", "/ehr/Patient?limit=1"),
            {"label": "move", "method": "POST", "path": "/ehr-us/Patient",
             "json": [{"resourceType": "Patient", "id": "pat-0001"}]},
        ],
    )  # fmt: skip
    move = _by(answers, "move")
    ok = bool(move) and move[0]["status"] == 403 and move[0]["reason"] == "phi-stays-in-region"
    return Outcome(
        f"move to the US archive {move[0]['status'] if move else '?'} "
        f"({move[0]['reason'] if move else ''})",
        ok,
        _blocked_in(move) if ok else None,
        _ids(move),
    )


def scim_lifecycle(world: World) -> Outcome:
    tokens = ScimTokens(world.store)
    name = "hr-system"
    token = (
        tokens.rotate(name, by="demo")
        if _has_token(tokens, name)
        else tokens.create(name, by="demo")
    )
    bundle = world.deployment.bundle_file
    scim = httpx.Client(
        base_url=world.deployment.control_url + "/scim/v2",
        verify=ssl.create_default_context(cafile=str(bundle)),
        headers={"authorization": f"Bearer {token}", "content-type": "application/scim+json"},
        timeout=10,
    )
    with scim:
        made = scim.post(
            "/Agents",
            json={
                "schemas": [SCIM_AGENT, SCIM_WARDEN],
                "name": "scim-bot",
                "active": True,
                SCIM_WARDEN: {"owner": "people-team", "labels": [{"key": "region", "value": "eu"}]},
            },
        )
        if made.status_code != 201:
            return Outcome(f"SCIM create answered {made.status_code}", False)
        agent_id = made.json()["id"]
        group = scim.post(
            "/Groups",
            json={
                "schemas": [SCIM_GROUP],
                "displayName": "finance",
                "members": [{"value": agent_id, "type": "Agent"}],
            },
        )
        world.report_clean("scim-bot")
        working = world.run_agent("scim-bot", [_get("work", "/finance/invoices?limit=1", 2)])
        deleted = scim.delete(f"/Agents/{agent_id}")
    after = world.run_agent("scim-bot", [_get("after", "/finance/invoices?limit=1")])
    gone = not after or after[0].get("status") in (-1, 0, 401, 403)
    ok = (
        group.status_code == 201
        and [a["status"] for a in working] == [200, 200]
        and deleted.status_code == 204
        and gone
    )
    return Outcome(
        f"created over SCIM (201), worked {[a['status'] for a in working]}, deleted over SCIM "
        f"({deleted.status_code}), then {'no identity, no access' if gone else _said(after)}",
        ok,
        0.0 if ok else None,  # the DELETE answers once the agent is gone: nothing is left
        _ids(working),
    )


def _has_token(tokens: ScimTokens, name: str) -> bool:
    return any(t.name == name for t in tokens.list())


SANDBOX_CODE = """
import socket
print("mean of 1..100:", sum(range(1, 101)) / 100)
try:
    socket.create_connection(("127.0.0.1", 22), timeout=1)
    print("socket: opened")
except OSError as exc:
    print("socket: refused,", type(exc).__name__)
try:
    print("file:", open("/etc/shadow").read()[:20])
except OSError as exc:
    print("file: refused,", type(exc).__name__)
"""


def sandbox_run(world: World) -> Outcome:
    world.register("coder-bot", groups=["code"], owner="platform-team")
    answers = world.run_agent(
        "coder-bot",
        [{"label": "run", "method": "POST", "path": "/v1/sandbox/runs", "base": "control",
          "json": {"code": SANDBOX_CODE}, "keep_body": True}],
    )  # fmt: skip
    run = _by(answers, "run")
    body = run[0].get("body", {}) if run else {}
    out = str(body.get("stdout", ""))
    spiffe_id = world.authority.agents.get("coder-bot").spiffe_id
    world.deployment.seal()
    recorded = LogReader(world.store).search(agent=spiffe_id, kind="sandbox", limit=5)
    ok = (
        bool(run) and run[0]["status"] == 200
        and "mean of 1..100: 50.5" in out
        and "socket: refused" in out and "file: refused" in out
        and bool(recorded)
    )  # fmt: skip
    return Outcome(
        f"ran on {body.get('backend', '?')}: computed {'50.5' if '50.5' in out else '?'}; "
        f"socket {'refused' if 'socket: refused' in out else 'OPENED'}, host file "
        f"{'refused' if 'file: refused' in out else 'READ'}; "
        f"recorded: {'yes' if recorded else 'no'}",
        ok,
        _blocked_in(run) if ok else None,
        [str(body["decision_id"])] if body.get("decision_id") else [],
    )


SCENARIOS = [
    Scenario(1, "bulk export of customer data", "blocked and flagged", bulk_export),
    Scenario(2, "payroll from a new address", "denied, credentials revoked, owner alerted",
             payroll_from_new_address),
    Scenario(3, "more than five patient records a minute", "blocked, throttled, incident",
             phi_exfiltration),
    Scenario(4, "price scraping", "throttled", price_scraping),
    Scenario(5, "critical vulnerability in the container",
             "restricted to non-sensitive data, restored by a clean report", vulnerable_container),
    Scenario(6, "deleting backups, rewriting its configuration",
             "denied, quarantined, owner alerted", destructive_agent),
    Scenario(7, "a reconciliation agent changes routing numbers",
             "anomaly, revoked, a fresh instance provisioned, incident", routing_number_change),
    Scenario(8, "access tied to a work order", "works during the order, denied after", work_order),
    Scenario(9, "PHI to an unapproved region", "blocked", phi_to_another_region),
    Scenario(10, "an agent provisioned and deleted over SCIM",
             "an identity, work, then no access at all", scim_lifecycle),
    Scenario(11, "Python an agent wrote, in the sandbox",
             "computes; socket and host files refused, recorded", sandbox_run),
]  # fmt: skip
