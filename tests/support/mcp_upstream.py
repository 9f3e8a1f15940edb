"""A real MCP server for the gateway's tests and benchmark: the official SDK's low-level
``Server`` over Streamable HTTP, on uvicorn with mTLS (client certificates required) behind
``warden.upstream.RequireDecision``, so only calls the gateway decided reach it.

Its tools: ``add``; ``export_customers`` (rows, destination); ``payroll_lookup``; ``report``
(4 KiB of text); ``lookup_patients`` (count: that many FHIR Patients, as JSON text);
``confirm_payment``, which asks the agent to confirm (elicitation: a request on the stream in
the handshake era, an input request in the stateless revision); and ``tool_00`` ...
``tool_09``, listed five to a page. Descriptions can be changed while it runs (a "rug pull").
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server

from tests.support.creds import write_svid
from warden.identity.authority import IdentityAuthority
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context
from warden.upstream import DecisionVerifier, RequireDecision

PAGE = 5


def _schema(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
        "required": list(properties),
    }


class McpUpstream:
    """``stateless=True`` serves only the 2026-07-28 revision (no sessions)."""

    def __init__(
        self,
        authority: IdentityAuthority,
        root: Path,
        *,
        name: str = "finance-tools",
        stateless: bool = False,
        require_decision: bool = True,
    ) -> None:
        self.spiffe_id = f"spiffe://{authority.trust_domain}/svc/{name}"
        issued = authority.issuer.issue_service_x509(
            name, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        self.creds = write_svid(root / f"mcp-{name}", issued, authority.ca.bundle.to_pem())
        self.descriptions = {
            "add": "Add two numbers.",
            "export_customers": "Export customer rows to a destination.",
            "payroll_lookup": "Look up an employee's payroll record.",
            "confirm_payment": "Pay an amount after the user confirms.",
            "report": "A long report (4 KiB of text).",
            "lookup_patients": "Look up patients (FHIR Patient resources).",
            **{f"tool_{i:02d}": f"Filler tool {i}." for i in range(10)},
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.elicited: list[Any] = []
        server: Server[Any] = Server(
            name, on_list_tools=self._list_tools, on_call_tool=self._call_tool
        )
        app: Any = server.streamable_http_app(stateless_http=stateless, json_response=stateless)
        if require_decision:
            verifier = DecisionVerifier.from_bundle_file(self.creds / "bundle.pem", self.spiffe_id)
            app = RequireDecision(app, verifier)
        context = server_ssl_context(
            certfile=self.creds / "svid.pem",
            keyfile=self.creds / "key.pem",
            ca_file=self.creds / "bundle.pem",
            require_client_cert=True,
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            http=MtlsHttpToolsProtocol,
            ssl_certfile=str(self.creds / "svid.pem"),
            ssl_context_factory=lambda _c, _d: context,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mcp"

    def tool(self, name: str) -> types.Tool:
        schemas = {
            "add": _schema(a="integer", b="integer"),
            "export_customers": _schema(rows="integer", destination="string"),
            "payroll_lookup": _schema(employee="string"),
            "confirm_payment": _schema(amount="integer"),
            "lookup_patients": _schema(count="integer"),
        }
        return types.Tool(
            name=name,
            description=self.descriptions[name],
            input_schema=schemas.get(name, _schema()),
        )

    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> Any:
        names = list(self.descriptions)
        start = int(params.cursor) if params is not None and params.cursor else 0
        page = names[start : start + PAGE]
        more = start + PAGE < len(names)
        return types.ListToolsResult(
            tools=[self.tool(n) for n in page], next_cursor=str(start + PAGE) if more else None
        )

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        arguments = dict(params.arguments or {})
        self.calls.append((params.name, arguments))
        if params.name == "add":
            return _text(str(int(arguments["a"]) + int(arguments["b"])))
        if params.name == "report":
            return _text("r" * 4096)
        if params.name == "confirm_payment":
            return await self._confirm(ctx, params, arguments)
        if params.name == "lookup_patients":
            patients = [
                {
                    "resourceType": "Patient",
                    "id": f"p{i}",
                    "birthDate": "1970-01-01",
                    "region": "eu",
                }
                for i in range(int(arguments.get("count", 1)))
            ]
            return _text(json.dumps(patients))
        return _text(f"{params.name} done")

    async def _confirm(
        self, ctx: Any, params: types.CallToolRequestParams, arguments: dict[str, Any]
    ) -> Any:
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        message = f"Pay {arguments.get('amount')}?"
        if ctx.protocol_version == "2026-07-28":  # stateless: ask within the result
            if params.input_responses:
                self.elicited.append(params.input_responses)
                return _text("paid")
            return types.InputRequiredResult(
                input_requests={
                    "confirm": types.ElicitRequest(
                        params=types.ElicitRequestFormParams(
                            message=message, requested_schema=schema
                        )
                    )
                }
            )
        answer = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        self.elicited.append(answer)
        return _text("paid" if answer.action == "accept" else "not paid")

    def start(self) -> McpUpstream:
        thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def mcp_route(upstream: McpUpstream, prefix: str = "/mcp/finance") -> dict[str, Any]:
    """The route of the finance tool server, as it appears in a route file."""
    return {
        "name": "finance-tools",
        "prefix": prefix,
        "protocol": "mcp",
        "upstream": upstream.url,
        "upstream_id": upstream.spiffe_id,
        "resource": {
            "type": "Tool",
            "id": "finance-tools",
            "properties": {"domain": "finance", "classification": "internal"},
        },
        "mcp": {
            "tools": {
                "export_customers": {"classification": "pii"},
                "payroll_lookup": {"tags": ["payroll"]},
            }
        },
    }


def clinical_route(upstream: McpUpstream, prefix: str = "/mcp/clinical") -> dict[str, Any]:
    """The same server as a clinical tool server: healthcare, PHI, in the EU."""
    return {
        "name": "clinical-tools",
        "prefix": prefix,
        "protocol": "mcp",
        "upstream": upstream.url,
        "upstream_id": upstream.spiffe_id,
        "resource": {
            "type": "Tool",
            "id": "clinical-tools",
            "properties": {"domain": "healthcare", "classification": "phi", "region": "eu"},
        },
    }
