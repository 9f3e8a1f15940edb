"""``run_python`` as an MCP tool, behind the gateway.

An MCP server (the official SDK's low-level server, Streamable HTTP) on mutual TLS with its
own SVID, behind :class:`warden.upstream.RequireDecision`: only calls the gateway decided
reach it, and the decision says which agent called. The tool call is then a sandbox run for
that agent: a second decision (``code:execute``, with the code's digest and the limits), the
execution, the record. The gateway decided ``mcp:tools/call`` first, argument by argument.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server

from warden.errors import UntrustedInputError
from warden.identity.authority import IdentityAuthority
from warden.sandbox.limits import BOUNDS, Limits
from warden.sandbox.service import Sandbox, SandboxUnavailable
from warden.server.run import ServerCredentials, write_server_credentials
from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context
from warden.upstream import DecisionVerifier, RequireDecision

NAME = "sandbox"
TOOL = types.Tool(
    name="run_python",
    description=(
        "Run a Python 3 script in Warden's sandbox (no network, a private work directory, "
        "bounded CPU, memory and time). Returns its standard output and error."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "the script"},
            "limits": {
                "type": "object",
                "properties": {name: {"type": "integer"} for name in BOUNDS},
                "additionalProperties": False,
            },
        },
        "required": ["code"],
        "additionalProperties": False,
    },
)


class SandboxMcpServer:
    """The MCP server of ``run_python``; ``url`` is what a gateway route points at."""

    def __init__(
        self, authority: IdentityAuthority, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.sandbox = sandbox
        self.spiffe_id = f"spiffe://{authority.trust_domain}/svc/{NAME}"
        self.credentials: ServerCredentials = write_server_credentials(
            authority, authority.settings.state_dir / "run" / NAME, host, name=NAME
        )
        server: Server[Any] = Server(
            NAME, on_list_tools=self._list_tools, on_call_tool=self._call_tool
        )
        app: Any = server.streamable_http_app(stateless_http=False, json_response=False)
        verifier = DecisionVerifier.from_bundle_file(self.credentials.ca_file, self.spiffe_id)
        context = server_ssl_context(
            certfile=self.credentials.certfile,
            keyfile=self.credentials.keyfile,
            ca_file=self.credentials.ca_file,
            require_client_cert=True,
        )
        self.host = host
        self._server = uvicorn.Server(
            uvicorn.Config(
                RequireDecision(app, verifier),
                host=host,
                port=port,
                http=MtlsHttpToolsProtocol,
                ssl_certfile=str(self.credentials.certfile),
                ssl_context_factory=lambda _c, _d: context,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        self.port = port

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/mcp"

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[TOOL])

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        if params.name != TOOL.name:
            return _error(f"no tool {params.name!r}")
        decided = getattr(ctx.request, "scope", {}).get("warden.decision") or {}
        subject = str(decided.get("sub", ""))
        if not subject:
            return _error("no decided caller")  # never reached behind RequireDecision
        arguments = dict(params.arguments or {})
        code = arguments.get("code")
        if not isinstance(code, str) or not code:
            return _error("code is a non-empty string")
        try:
            limits = Limits.asked(arguments.get("limits") or {})
            outcome = await asyncio.to_thread(
                self.sandbox.run, subject, code.encode(), limits=limits
            )
        except (UntrustedInputError, SandboxUnavailable) as exc:
            return _error(exc.message)
        if not outcome.decision.allowed:
            reasons = "; ".join(r.message for r in outcome.decision.reasons)
            return _error(f"not run ({outcome.decision.decision_id}): {reasons}")
        run = outcome.execution
        assert run is not None
        text = run.stdout.decode(errors="replace")
        if run.stderr:
            text += "\n[stderr]\n" + run.stderr.decode(errors="replace")
        text += f"\n[{run.reason}, exit {run.exit_code}, decision {outcome.decision.decision_id}]"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            is_error=run.reason != "ok",
        )

    def start_in_thread(self) -> SandboxMcpServer:
        thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        thread.start()
        while not self._server.started:
            threading.Event().wait(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True


def _error(words: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=words)], is_error=True)
