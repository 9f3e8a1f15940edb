"""The control-plane API: agents, operators, SVIDs and the trust bundle.

Every route but the public bundle ones needs mTLS with an SVID and is authorised by the Cedar
admin pack. Route handlers are synchronous (FastAPI runs them in its thread pool) because the
store is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from warden import __version__
from warden.audit.recorder import DecisionRecorder
from warden.console.app import Console, create_console
from warden.errors import (
    ConflictError,
    NotFoundError,
    StoreError,
    UntrustedInputError,
    WardenError,
)
from warden.identity.attestation.container import MAX_SBOM_BYTES
from warden.identity.authority import IdentityAuthority
from warden.identity.ca.authority import load_csr_public_key
from warden.identity.errors import StatusUnavailable
from warden.identity.registry import OperatorRole, Status
from warden.metrics import Metrics
from warden.policy.admin import AdminAuthorizer
from warden.policy.engine import PolicyEngine
from warden.response.engine import ResponseEngine
from warden.risk.engine import RiskEngine
from warden.sandbox.service import Sandbox
from warden.scim.app import MOUNT as SCIM_MOUNT
from warden.scim.app import ScimApp
from warden.server.attestation_routes import attestation_router
from warden.server.audit_routes import audit_router
from warden.server.auth import require
from warden.server.decision_routes import decision_router
from warden.server.feed_routes import feed_router, policy_feed_router
from warden.server.health_routes import health_router
from warden.server.limits import BodyLimit
from warden.server.mcp_routes import mcp_router
from warden.server.mounts import WithPrefix
from warden.server.policy_routes import policy_router
from warden.server.response_routes import response_router
from warden.server.risk_routes import risk_router
from warden.server.sandbox_routes import sandbox_router
from warden.transport.path_guard import PathGuard
from warden.trust.health import HealthBook

log = logging.getLogger("warden.server")
CONTROL_PLANE = ("ControlPlane", "warden")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterAgent(_Body):
    name: str = Field(max_length=63)
    owner: str = Field(max_length=256)
    purpose: str = Field(default="", max_length=2000)
    labels: dict[str, str] = Field(default_factory=dict)
    max_svid_ttl_s: int | None = None


class StatusChange(_Body):
    reason: str = Field(default="", max_length=2000)


class X509Request(_Body):
    csr: str = Field(max_length=16_384, description="PEM CSR; the key never leaves the agent")
    ttl_s: int | None = None


class JwtRequest(_Body):
    audience: list[str] = Field(min_length=1, max_length=16)
    ttl_s: int | None = None


class AddOperator(_Body):
    name: str = Field(max_length=63)
    role: OperatorRole


def _error(status: int, code: str, message: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code}
    if message:
        body["message"] = message
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors with stable codes; detail of Warden's own faults stays in the log."""

    @app.exception_handler(WardenError)
    async def warden_error(_: Request, exc: WardenError) -> JSONResponse:
        # Callers here are authenticated operators: name the code and say what was wrong,
        # except for faults of Warden itself, whose detail stays in the log.
        if isinstance(exc, NotFoundError):
            return _error(404, exc.code, exc.message)
        if isinstance(exc, ConflictError):
            return _error(409, exc.code, exc.message)
        if isinstance(exc, UntrustedInputError):
            return _error(400, exc.code, exc.message)
        log.error("control-plane fault: %s: %s", exc.code, exc.message)
        if isinstance(exc, StatusUnavailable | StoreError):
            return _error(503, exc.code)
        return _error(500, exc.code)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "problem": e["msg"]}
            for e in exc.errors()[:10]
        ]
        return JSONResponse({"error": "invalid_request", "problems": problems}, 422)


def create_app(
    authority: IdentityAuthority,
    authorizer: AdminAuthorizer,
    engine: PolicyEngine | None = None,
    recorder: DecisionRecorder | None = None,
    health: HealthBook | None = None,
    risk: RiskEngine | None = None,
    metrics: Metrics | None = None,
    response: ResponseEngine | None = None,
    console: Console | None = None,
) -> Any:
    """The ASGI application of the control plane, wrapped in its body-size limit; with
    ``console``, the console at /console."""
    app = FastAPI(title="Warden control plane", version=__version__, docs_url=None, redoc_url=None)

    install_error_handlers(app)

    def allow(request: Request, action: str, resource: tuple[str, str] = CONTROL_PLANE) -> str:
        return require(request, authority, authorizer, action, resource).spiffe_id

    # -- public -----------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "trust_domain": authority.trust_domain,
            "status_sequence": authority.status.sequence,
        }

    @app.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return authority.ca.bundle.to_jwt_jwks()

    @app.get("/v1/bundle", response_model=None)
    def bundle(format: Literal["pem", "jwks"] = "pem") -> Any:
        if format == "jwks":
            return authority.ca.bundle.to_jwks()
        return PlainTextResponse(authority.ca.bundle.to_pem(), media_type="application/x-pem-file")

    # -- agents -----------------------------------------------------------------------------

    @app.get("/v1/agents")
    def list_agents(
        request: Request,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        allow(request, "agent.read")
        agents = authority.agents.list(status=status, limit=limit, offset=offset)
        return {"agents": [a.to_dict() for a in agents]}

    @app.post("/v1/agents", status_code=201)
    def register_agent(request: Request, body: RegisterAgent) -> dict[str, Any]:
        by = allow(request, "agent.register")
        agent = authority.agents.register(
            body.name,
            owner=body.owner,
            purpose=body.purpose,
            labels=body.labels,
            max_svid_ttl_s=body.max_svid_ttl_s,
        )
        log.info("agent %s registered by %s", agent.spiffe_id, by)
        return agent.to_dict()

    @app.get("/v1/agents/{name}")
    def show_agent(request: Request, name: str) -> dict[str, Any]:
        allow(request, "agent.read", ("Agent", name))
        return authority.agents.get(name).to_dict()

    def agent_change(change: str) -> Callable[..., dict[str, Any]]:
        action = "quarantine.release" if change == "release" else f"agent.{change}"

        def change_agent(
            request: Request, name: str, body: Annotated[StatusChange | None, Body()] = None
        ) -> dict[str, Any]:
            by = allow(request, action, ("Agent", name))
            reason = (body.reason if body else "") or f"by {by}"
            agent = getattr(authority.agents, change)(name, reason)
            return agent.to_dict()  # type: ignore[no-any-return]

        return change_agent

    # One route per change, not /{change}: a catch-all would shadow /health, /join-tokens.
    for change in ("disable", "enable", "revoke", "quarantine", "release"):
        app.add_api_route(
            f"/v1/agents/{{name}}/{change}",
            agent_change(change),
            methods=["POST"],
            name=f"agent_{change}",
        )

    @app.delete("/v1/agents/{name}")
    def delete_agent(request: Request, name: str) -> dict[str, Any]:
        allow(request, "agent.delete", ("Agent", name))
        return authority.agents.delete(name).to_dict()

    @app.post("/v1/agents/{name}/svids/x509", status_code=201)
    def issue_x509(request: Request, name: str, body: X509Request) -> dict[str, Any]:
        allow(request, "svid.issue", ("Agent", name))
        public_key = load_csr_public_key(body.csr.encode())
        issued = authority.issuer.issue_agent_x509(name, ttl_s=body.ttl_s, public_key=public_key)
        return {
            "spiffe_id": authority.agents.get(name).spiffe_id,
            "serial": issued.serial_hex,
            "expires_at": _iso(issued.cert.not_valid_after_utc),
            "cert_chain_pem": issued.cert_chain_pem().decode(),
            "bundle_pem": authority.ca.bundle.to_pem().decode(),
        }

    @app.post("/v1/agents/{name}/svids/jwt", status_code=201)
    def issue_jwt(request: Request, name: str, body: JwtRequest) -> dict[str, Any]:
        allow(request, "svid.issue", ("Agent", name))
        issued = authority.issuer.issue_agent_jwt(name, body.audience, ttl_s=body.ttl_s)
        return {
            "token": issued.token,
            "spiffe_id": issued.spiffe_id,
            "jti": issued.jti,
            "expires_at": _iso(issued.expires_at),
        }

    # -- operators --------------------------------------------------------------------------

    @app.get("/v1/operators")
    def list_operators(request: Request) -> dict[str, Any]:
        allow(request, "operator.read")
        return {"operators": [o.to_dict() for o in authority.operators.list()]}

    @app.post("/v1/operators", status_code=201)
    def add_operator(request: Request, body: AddOperator) -> dict[str, Any]:
        by = allow(request, "operator.manage", ("Operator", body.name))
        return authority.operators.add(body.name, role=body.role, created_by=by).to_dict()

    @app.post("/v1/operators/{name}/revoke")
    def revoke_operator(request: Request, name: str) -> dict[str, Any]:
        allow(request, "operator.manage", ("Operator", name))
        return authority.operators.revoke(name).to_dict()

    for router in _routers(
        authority, authorizer, engine, recorder, health, risk, metrics, response
    ):
        app.include_router(router)
    limits = BodyLimit(
        app,
        authority.settings.api_max_body_bytes,
        large=(("/evidence", "/health"), MAX_SBOM_BYTES + 65536),
    )
    # /scim/v2: the SCIM service provider, with SCIM's own errors and body bound.
    served = WithPrefix(limits, SCIM_MOUNT, ScimApp(authority, authorizer))
    if console is not None:  # /console: HTML pages with their own errors, in the body bound
        served = WithPrefix(served, "/console", BodyLimit(create_console(console), 65536))
    return PathGuard(served)


def _routers(
    authority: IdentityAuthority,
    authorizer: AdminAuthorizer,
    engine: PolicyEngine | None,
    recorder: DecisionRecorder | None,
    health: HealthBook | None,
    risk: RiskEngine | None,
    metrics: Metrics | None,
    response: ResponseEngine | None,
) -> list[APIRouter]:
    """The control plane's other parts, those this process runs."""
    routers = [
        feed_router(authority, authorizer),
        attestation_router(authority, authorizer),
        mcp_router(authority, authorizer),
        audit_router(authority, authorizer),
    ]
    if health is not None:
        routers.append(health_router(authority, authorizer, health))
    if engine is not None and recorder is not None:
        routers.append(
            decision_router(authority, authorizer, engine, recorder, risk, metrics, response)
        )
    if risk is not None:
        routers.append(risk_router(authority, authorizer, risk))
    if response is not None:
        routers.append(response_router(authority, authorizer, response))
    if engine is not None and recorder is not None:
        routers.append(sandbox_router(authority, authorizer, Sandbox(authority, engine, recorder)))
    if engine is not None:
        routers.append(policy_router(authority, authorizer, engine))
        routers.append(policy_feed_router(authority, authorizer, engine))
    return routers


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
