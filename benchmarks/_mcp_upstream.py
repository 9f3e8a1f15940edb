"""Child process of benchmarks/gateway.py: an MCP server (the official SDK's low-level
Server, stateless revision, JSON answers) over mTLS, with one tool, ``add``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import serve_mtls

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
    serve_mtls(app, creds, port, lifespan="on")


if __name__ == "__main__":
    main()
