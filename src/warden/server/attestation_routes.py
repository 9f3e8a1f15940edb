"""Routes for attestation: launcher bindings, container evidence, join tokens, and the one
route a container launcher calls without a certificate (its join token is its credential)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from warden.identity.attestation.unix import ProcessRef
from warden.identity.authority import IdentityAuthority
from warden.identity.ca.authority import load_csr_public_key
from warden.policy.admin import AdminAuthorizer
from warden.server.auth import require


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Launch(_Body):
    agent: str = Field(max_length=63)
    boot_id: str = Field(max_length=64)
    pid: int = Field(gt=0, lt=2**31)
    start_time: int = Field(ge=0)


class Selectors(_Body):
    selectors: list[str] = Field(max_length=32)


class Evidence(_Body):
    image_digest: str = Field(max_length=128)
    sbom: str = Field(max_length=8 * 1024 * 1024, description="CycloneDX JSON, as text")


class JoinTokenRequest(_Body):
    ttl_s: int = 600


class ContainerJoin(_Body):
    token: str = Field(max_length=256)
    image_digest: str = Field(max_length=128)
    sbom_digest: str = Field(max_length=128)
    csr: str = Field(max_length=16_384)


def attestation_router(authority: IdentityAuthority, authorizer: AdminAuthorizer) -> APIRouter:
    router = APIRouter()

    def allow(request: Request, action: str, agent: str) -> str:
        return require(request, authority, authorizer, action, ("Agent", agent)).spiffe_id

    @router.post("/v1/launches", status_code=201)
    def launch(request: Request, body: Launch) -> dict[str, Any]:
        by = allow(request, "workload.launch", body.agent)
        process = ProcessRef(body.boot_id, body.pid, body.start_time)
        return {"id": authority.launches.bind(body.agent, process, created_by=by)}

    @router.post("/v1/launches/{binding_id}/end")
    def end_launch(request: Request, binding_id: str) -> dict[str, Any]:
        require(request, authority, authorizer, "workload.launch", ("ControlPlane", "warden"))
        return {"ended": authority.launches.end(binding_id)}

    @router.put("/v1/agents/{name}/selectors")
    def set_selectors(request: Request, name: str, body: Selectors) -> dict[str, Any]:
        allow(request, "agent.update", name)
        return authority.agents.set_selectors(name, body.selectors).to_dict()

    @router.put("/v1/agents/{name}/evidence")
    def set_evidence(request: Request, name: str, body: Evidence) -> dict[str, Any]:
        allow(request, "agent.update", name)
        digest = authority.containers.set_evidence(
            name, image_digest=body.image_digest, sbom=body.sbom.encode()
        )
        return {"agent": name, "image_digest": body.image_digest, "sbom_digest": digest}

    @router.post("/v1/agents/{name}/join-tokens", status_code=201)
    def join_token(request: Request, name: str, body: JoinTokenRequest) -> dict[str, Any]:
        by = allow(request, "svid.issue", name)
        token = authority.containers.create_join_token(name, ttl_s=body.ttl_s, created_by=by)
        return {"agent": name, "token": token, "ttl_s": body.ttl_s}

    @router.post("/v1/attest/container", status_code=201)
    def attest_container(body: ContainerJoin) -> dict[str, Any]:
        public_key = load_csr_public_key(body.csr.encode())
        name = authority.containers.redeem(
            body.token, image_digest=body.image_digest, sbom_digest_value=body.sbom_digest
        )
        issued = authority.issuer.issue_agent_x509(name, public_key=public_key)
        return {
            "spiffe_id": authority.agents.get(name).spiffe_id,
            "cert_chain_pem": issued.cert_chain_pem().decode(),
            "bundle_pem": authority.ca.bundle.to_pem().decode(),
        }

    return router
