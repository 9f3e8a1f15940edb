"""``POST /v1/sandbox/runs``: code an agent wrote, decided, run in the jail, recorded.

An agent asks for itself (its SVID over mutual TLS); an operator the admin pack lets run code
names the agent it runs for. Code and input files are uploaded bytes, never server paths.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.sandbox.limits import Limits
from warden.sandbox.service import Sandbox, SandboxUnavailable
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str | None = Field(default=None, max_length=63, description="operators only")
    code: str = Field(min_length=1, description="Python source, UTF-8")
    files: dict[str, str] = Field(default_factory=dict, description="name -> base64 content")
    limits: dict[str, int] = Field(default_factory=dict)
    backend: str | None = Field(default=None, pattern="^(auto|bwrap|wasm)$")


def sandbox_router(
    authority: IdentityAuthority, authorizer: AdminAuthorizer, sandbox: Sandbox
) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/sandbox/runs", response_model=None)
    def run(request: Request, body: RunBody) -> Any:
        caller = require(request, authority, authorizer, "sandbox.run", CONTROL_PLANE)
        if caller.kind == "Agent":
            if body.agent not in (None, caller.name):
                raise HTTPException(403, {"error": "an agent runs code as itself"})
            subject = caller.spiffe_id
        else:
            if not body.agent:
                raise HTTPException(400, {"error": "agent_required"})
            subject = authority.agents.get(body.agent).spiffe_id
        try:
            files = {
                name: base64.b64decode(data, validate=True) for name, data in body.files.items()
            }
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(
                400, {"error": "invalid_file", "message": "files are base64"}
            ) from exc
        limits = Limits.asked(body.limits)
        try:
            outcome = sandbox.run(
                subject, body.code.encode(), files=files, limits=limits, backend=body.backend
            )
        except SandboxUnavailable as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, status_code=503)
        answer = outcome.to_dict()
        if outcome.execution is not None:
            answer["files"] = {
                name: base64.b64encode(data).decode()
                for name, data in outcome.execution.outputs.items()
            }
        return JSONResponse(answer, status_code=200 if outcome.decision.allowed else 403)

    return router
