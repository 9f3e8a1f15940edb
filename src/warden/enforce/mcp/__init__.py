"""MCP (the Model Context Protocol, Streamable HTTP transport) through the gateway."""
