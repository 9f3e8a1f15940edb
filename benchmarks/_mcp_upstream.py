"""Child process of benchmarks/gateway.py: an MCP server (the official SDK's low-level
Server, stateless revision, JSON answers) over mTLS, with one tool, ``add``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server

from warden.transport.uvicorn_mtls import MtlsHttpToolsProtocol, server_ssl_context

ADD = types.Tool(
    name="add",
    description="Add two numbers.",
    input_schema={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[ADD])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    arguments = params.arguments or {}
    total = int(arguments["a"]) + int(arguments["b"])
    return types.CallToolResult(content=[types.TextContent(type="text", text=str(total))])


def main() -> None:
    creds, port = Path(sys.argv[1]), int(sys.argv[2])
    server: Server[Any] = Server("bench-tools", on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    context = server_ssl_context(
        certfile=creds / "svid.pem",
        keyfile=creds / "key.pem",
        ca_file=creds / "bundle.pem",
        require_client_cert=True,
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http=MtlsHttpToolsProtocol,
        loop="uvloop",
        ssl_certfile=str(creds / "svid.pem"),
        ssl_context_factory=lambda _c, _d: context,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
