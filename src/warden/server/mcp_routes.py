"""Pinned MCP tool definitions: list them, approve a changed one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from warden.enforce.mcp.pins import ToolPins
from warden.identity.authority import IdentityAuthority
from warden.policy.admin import AdminAuthorizer
from warden.server.auth import require

CONTROL_PLANE = ("ControlPlane", "warden")


class ApproveTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: str = Field(max_length=2048, description="the MCP server's SPIFFE ID")
    tool: str = Field(max_length=128)


def mcp_router(authority: IdentityAuthority, authorizer: AdminAuthorizer) -> APIRouter:
    router = APIRouter()
    pins = ToolPins(authority.store)

    @router.get("/v1/mcp/tools")
    def list_tools(
        request: Request, held: Annotated[bool, Query(description="only held ones")] = False
    ) -> dict[str, Any]:
        require(request, authority, authorizer, "mcp.read", CONTROL_PLANE)
        return {"tools": [p.to_dict() for p in pins.list(held_only=held)]}

    @router.post("/v1/mcp/tools/approve")
    def approve(request: Request, body: ApproveTool) -> dict[str, Any]:
        by = require(request, authority, authorizer, "mcp.approve", CONTROL_PLANE)
        return pins.approve(body.server, body.tool, by.spiffe_id).to_dict()

    return router
