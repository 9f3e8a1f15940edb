"""``decide()``: the policy decision point. Pure and synchronous: no I/O, never awaits, never
raises. Every error becomes a deny whose reasons say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from warden.clock import utcnow
from warden.policy.bundle import project
from warden.policy.model import Decision, DecisionRequest, Reason, new_decision_id
from warden.policy.snapshot import PolicySnapshot
from warden.policy.workorders import WorkOrder, matching_work_order

UNKNOWN_COUNT = 2**31 - 1  # what an unknown DLP window reads as: never a neutral zero
UNKNOWN_RISK = 1000
DLP_CLASSES = ("pii", "phi", "pci", "confidential")
AUTHN = ("mtls", "jwt")


def decide(
    request: DecisionRequest,
    snapshot: PolicySnapshot,
    *,
    now: datetime | None = None,
    decision_id: str | None = None,
) -> Decision:
    """Decide ``request`` against ``snapshot``. Always returns a :class:`Decision`."""
    now = now or utcnow()
    decision_id = decision_id or new_decision_id()
    revision = snapshot.bundle.revision
    risk_out: dict[str, Any] = {"score": UNKNOWN_RISK, "level": "unknown", "factors": []}
    try:
        bundle = snapshot.bundle
        if bundle.empty:
            return _deny(
                decision_id,
                revision,
                now,
                "no_policies",
                "the active policy bundle has no policies",
                risk_out,
            )
        facts = snapshot.agents.get(request.subject_id)
        if request.subject_type != "Agent" or facts is None:
            return _deny(
                decision_id,
                revision,
                now,
                "unknown_subject",
                "the subject is not a registered agent",
                risk_out,
            )
        if facts.status != "active":
            return _deny(
                decision_id,
                revision,
                now,
                "subject_not_active",
                f"the agent is {facts.status}",
                risk_out,
            )
        if request.action not in bundle.action_parents:
            return _deny(
                decision_id,
                revision,
                now,
                "unknown_action",
                f"action {request.action!r} is not in the policy schema",
                risk_out,
            )
        args = request.context.get("args", {})
        if not isinstance(args, dict):
            return _deny(
                decision_id,
                revision,
                now,
                "invalid_request",
                "context.args must be an object",
                risk_out,
            )
        order = matching_work_order(
            snapshot.work_orders.get(request.subject_id, ()),
            action=request.action,
            resource_type=request.resource.type,
            resource_id=request.resource.id,
            args=args,
            now=now,
        )
        risk, risk_out = _risk(snapshot.fresh_signal(snapshot.risk, request.subject_id, now))
        health = _health(snapshot.fresh_signal(snapshot.health, request.subject_id, now))
        context = _context(request, snapshot, args, risk, health, order, now, bundle.context_paths)
        result = snapshot.evaluate(facts, request.action, request.resource, context)
        errors = result.errors
        if errors:
            # Cedar skips a policy whose evaluation errors: an erroring forbid could let a
            # permit win. Any error denies.
            return replace(
                _deny(
                    decision_id,
                    revision,
                    now,
                    "evaluation_error",
                    "a policy could not be evaluated",
                    risk_out,
                    errors,
                ),
                health=health,
            )
        determining = [bundle.meta[p] for p in result.reasons if p in bundle.meta]
        if result.allowed:
            obligations = tuple(dict.fromkeys(o for m in determining for o in m.obligations))
            allowed = Decision(
                decision_id=decision_id,
                decision="allow",
                reasons=tuple(Reason(m.id, "permit", m.reason) for m in determining),
                obligations=obligations,
                risk=risk_out,
                policy_revision=revision,
                work_order=order.id if order is not None else None,
                at=now,
                health=health,
            )
            # What a playbook holds the agent to: a restriction, a throttle, an approval.
            held = facts.containment
            return allowed if held is None else held.apply(allowed, request)
        reasons = tuple(Reason(m.id, "forbid", m.reason) for m in determining) or (
            Reason("default-deny", "forbid", "no policy permits this request"),
        )
        return Decision(
            decision_id=decision_id,
            decision="deny",
            reasons=reasons,
            obligations=(),
            risk=risk_out,
            policy_revision=revision,
            work_order=None,
            at=now,
            health=health,
        )
    except Exception as exc:  # fail closed, and keep the error for the record
        return _deny(
            decision_id,
            revision,
            now,
            "evaluation_error",
            "the decision could not be made",
            risk_out,
            (f"{type(exc).__name__}: {exc}"[:2000],),
        )


def _deny(
    decision_id: str,
    revision: str,
    now: datetime,
    policy: str,
    message: str,
    risk: dict[str, Any],
    errors: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        decision_id=decision_id,
        decision="deny",
        reasons=(Reason(policy, "forbid", message),),
        obligations=(),
        risk=risk,
        policy_revision=revision,
        work_order=None,
        at=now,
        errors=errors,
    )


def risk_level(score: int) -> str:
    if score >= 800:
        return "critical"
    if score >= 600:
        return "high"
    if score >= 300:
        return "medium"
    return "low"


def _risk(values: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Cedar record, the decision's risk block)."""
    if values is None:
        return (
            {"score": UNKNOWN_RISK, "level": "unknown", "status": "unknown", "factors": []},
            {"score": UNKNOWN_RISK, "level": "unknown", "factors": []},
        )
    score = max(0, min(1000, int(values.get("score", UNKNOWN_RISK))))
    factors = [[str(f[0]), int(f[1])] for f in values.get("factors", [])]
    level = risk_level(score)
    # Cedar sees the score in steps of ten (thresholds are round numbers): a score fading by
    # a point every few seconds would otherwise make every decision a memo miss.
    return (
        {
            "score": score - score % 10,
            "level": level,
            "status": "known",
            "factors": [f[0] for f in factors],
        },
        {"score": score, "level": level, "factors": factors},
    )


def _context(
    request: DecisionRequest,
    snapshot: PolicySnapshot,
    args: dict[str, Any],
    risk: dict[str, Any],
    health: dict[str, Any],
    order: WorkOrder | None,
    now: datetime,
    paths: dict[str, Any] | None,
) -> dict[str, Any]:
    """The Cedar context: what the caller may state (authn, source, tool, args, destination,
    delegation) and what only Warden knows (time, risk, health, DLP, the work order). Only the
    attributes the bundle's policies read are built (``paths``; None: all of them)."""
    given = request.context
    agent = request.subject_id
    wanted = CONTEXT_KEYS if paths is None else paths
    context: dict[str, Any] = {}
    if "authn" in wanted:
        authn = given.get("authn")
        context["authn"] = authn if authn in AUTHN else "unknown"
    if "source_ip" in wanted:
        context["source_ip"] = str(given.get("source_ip", ""))
    if "time" in wanted:
        context["time"] = {"hour": now.hour, "weekday": now.weekday()}
    if "risk" in wanted:
        context["risk"] = risk
    if "health" in wanted:
        context["health"] = health
    if "dlp" in wanted:
        context["dlp"] = _dlp(snapshot.fresh_signal(snapshot.dlp, agent, now))
    if "work_order" in wanted:
        context["work_order"] = (
            {"present": True, "id": order.id, "ticket": order.ticket}
            if order is not None
            else {"present": False, "id": "", "ticket": ""}
        )
    if "tool" in wanted:
        context["tool"] = str(given.get("tool", ""))
    if "args" in wanted:
        context["args"] = args
    if "destination_region" in wanted:
        context["destination_region"] = str(given.get("destination_region", ""))
    if "delegation" in wanted:
        chain = given.get("delegation", [])
        context["delegation"] = [str(d) for d in chain] if isinstance(chain, list) else []
    if "bulk" in wanted:
        context["bulk"] = given.get("bulk") is True
    if "outbound" in wanted:
        context["outbound"] = _outbound(given.get("outbound"))
    if "sandbox" in wanted:
        sandbox = _sandbox(given.get("sandbox"))
        if sandbox is not None:  # optional: only a sandbox run states it
            context["sandbox"] = sandbox
    return context if paths is None else project(context, paths)


SANDBOX_TEXT = ("code_sha256", "backend")
SANDBOX_NUMBERS = ("code_bytes", "files", "cpu_s", "wall_s", "memory_mb", "file_mb", "processes")


def _sandbox(value: Any) -> dict[str, Any] | None:
    """A sandbox run's facts, whole and well typed, or None (then policies see no run)."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key in SANDBOX_TEXT:
        if not isinstance(value.get(key), str):
            return None
        out[key] = value[key][:128]
    for key in SANDBOX_NUMBERS:
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**31:
            return None
        out[key] = number
    return out


CONTEXT_KEYS = frozenset(
    {
        "authn",
        "source_ip",
        "time",
        "risk",
        "health",
        "dlp",
        "work_order",
        "tool",
        "args",
        "destination_region",
        "delegation",
        "sandbox",
        "bulk",
        "outbound",
    }
)
OUTBOUND_KEYS = ("records", "pii", "phi", "pci", "links")


def _outbound(values: Any) -> dict[str, int]:
    """What the request carries out; nothing stated is nothing carried."""
    given = values if isinstance(values, Mapping) else {}
    out = {}
    for key in OUTBOUND_KEYS:
        value = given.get(key, 0)
        out[key] = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return out


def _health(values: Mapping[str, Any] | None) -> dict[str, Any]:
    if values is None:
        return {"status": "unknown", "critical_vulns": UNKNOWN_COUNT, "high_vulns": UNKNOWN_COUNT}
    return {
        "status": str(values.get("status", "unknown")),
        "critical_vulns": int(values.get("critical_vulns", 0)),
        "high_vulns": int(values.get("high_vulns", 0)),
    }


def _dlp(values: Mapping[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {"status": "unknown" if values is None else "known"}
    for data_class in DLP_CLASSES:
        for window in ("minute", "hour"):
            key = f"{data_class}_per_{window}"
            record[key] = UNKNOWN_COUNT if values is None else int(values.get(key, 0))
    return record
