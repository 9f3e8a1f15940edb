"""The decision APIs: ``POST /v1/decide`` and the OpenID AuthZEN Authorization API 1.0
(evaluation, evaluations and its metadata document).

Only registered enforcement points may ask (mTLS with their SVID); each decision is reserved
(work-order uses), recorded with the enforcement point that asked, and only then answered.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from warden.audit.recorder import DecisionRecorder
from warden.errors import AuditError
from warden.identity.authority import IdentityAuthority
from warden.metrics import Metrics
from warden.policy.admin import AdminAuthorizer
from warden.policy.engine import PolicyEngine
from warden.policy.model import Decision, DecisionRequest, InvalidDecisionRequest
from warden.response.engine import ResponseEngine
from warden.risk.engine import RiskEngine
from warden.risk.observation import from_decision
from warden.server.auth import require

log = logging.getLogger("warden.server")
CONTROL_PLANE = ("ControlPlane", "warden")
MAX_EVALUATIONS = 100
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


def decision_router(
    authority: IdentityAuthority,
    authorizer: AdminAuthorizer,
    engine: PolicyEngine,
    recorder: DecisionRecorder,
    risk: RiskEngine | None = None,
    metrics: Metrics | None = None,
    response: ResponseEngine | None = None,
) -> APIRouter:
    router = APIRouter()

    def asker(request: Request) -> str:
        return require(request, authority, authorizer, "decision.request", CONTROL_PLANE).spiffe_id

    def decide(body: Any, enforcement_point: str) -> Decision:
        try:
            decision_request = DecisionRequest.from_dict(body)
        except InvalidDecisionRequest as exc:
            raise HTTPException(400, {"error": exc.code, "message": exc.message}) from exc
        started = time.perf_counter()
        decision = engine.reserve(engine.decide(decision_request))
        if metrics is not None:
            metrics.decided(decision.decision, time.perf_counter() - started)
        try:
            recorder.record(decision, decision_request, enforcement_point=enforcement_point)
        except AuditError as exc:
            log.error("%s", exc.message)
            raise HTTPException(
                503,
                {"error": "record_failed", "decision": "deny", "decision_id": decision.decision_id},
            ) from exc
        if response is not None:  # on record, as at the gateway: playbooks may act
            response.on_decision(decision_request, decision)
        if risk is not None and decision_request.subject_type == "Agent":
            # The asker enforces it and knows its answer; the risk engine learns the request.
            risk.observe(from_decision(decision_request, decision, risk.clock()))
        return decision

    @router.post("/v1/decide")
    def v1_decide(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return decide(body, asker(request)).to_dict()

    @router.post("/access/v1/evaluation")
    def evaluation(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return _authzen_answer(decide(_from_authzen(body), asker(request)))

    @router.post("/access/v1/evaluations")
    def evaluations(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        enforcement_point = asker(request)
        items = body.get("evaluations")
        if items is None:
            return _authzen_answer(decide(_from_authzen(body), enforcement_point))
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVALUATIONS:
            raise HTTPException(
                400, {"error": "invalid_request", "message": f"1 to {MAX_EVALUATIONS} evaluations"}
            )
        options = body.get("options") or {}
        semantic = options.get("evaluations_semantic", "execute_all")
        if semantic not in SEMANTICS:
            raise HTTPException(
                400,
                {
                    "error": "invalid_request",
                    "message": f"evaluations_semantic is one of {SEMANTICS}",
                },
            )
        answers: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                raise HTTPException(
                    400, {"error": "invalid_request", "message": "each evaluation is an object"}
                )
            merged = {
                key: item.get(key, body.get(key))
                for key in ("subject", "action", "resource", "context")
            }
            answer = _authzen_answer(decide(_from_authzen(merged), enforcement_point))
            answers.append(answer)
            if semantic == "deny_on_first_deny" and not answer["decision"]:
                break
            if semantic == "permit_on_first_permit" and answer["decision"]:
                break
        return {"evaluations": answers}

    @router.get("/.well-known/authzen-configuration")
    def metadata(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "policy_decision_point": base,
                "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
                "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
            }
        )

    return router


def _from_authzen(body: dict[str, Any]) -> dict[str, Any]:
    """AuthZEN's information model onto Warden's: subject types are case-insensitive and
    subject properties are never trusted (Warden knows its agents)."""
    subject = body.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("type"), str):
        subject = {
            "type": "Agent" if subject["type"].lower() == "agent" else subject["type"],
            "id": subject.get("id"),
        }
    return {
        "subject": subject,
        "action": body.get("action"),
        "resource": body.get("resource"),
        "context": body.get("context") or {},
    }


def _authzen_answer(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.allowed,
        "context": {
            "id": decision.decision_id,
            "reason_admin": {
                "reasons": [r.to_dict() for r in decision.reasons],
                "policy_revision": decision.policy_revision,
            },
            "obligations": list(decision.obligations),
            "work_order": decision.work_order,
        },
    }
