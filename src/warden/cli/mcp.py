"""``warden mcp ...``: the MCP tool definitions the gateways have pinned, and approving a
changed one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors, print_json
from warden.enforce.mcp.pins import ToolPins

app = typer.Typer(no_args_is_help=True)


def _pins() -> ToolPins:
    return ToolPins(State.authority().store)


@app.command()
@handle_errors
def tools(
    held: Annotated[bool, typer.Option("--held", help="Only changed definitions")] = False,
) -> None:
    """List pinned tool definitions; held ones changed and wait for approval."""
    table = Table(title="pinned MCP tools")
    for column in ("server", "tool", "status", "pinned by", "digest"):
        table.add_column(column)
    for pin in _pins().list(held_only=held):
        status = f"[red]held since {pin.pending_since:%Y-%m-%d %H:%M}[/]" if pin.held else "pinned"
        table.add_row(pin.server, pin.tool, status, pin.pinned_by, pin.digest[:12])
    console.print(table)


@app.command()
@handle_errors
def show(server: str, tool: str) -> None:
    """Show a tool's pinned definition and, when held, the changed one."""
    print_json(_pins().get(server, tool).to_dict())


@app.command()
@handle_errors
def approve(
    server: str,
    tool: str,
    by: Annotated[str, typer.Option(help="Who approves (recorded with the pin)")] = "cli",
) -> None:
    """Pin a held tool's changed definition: listed and callable again."""
    pin = _pins().approve(server, tool, by)
    console.print(f"[green]Pinned[/] {tool} on {server} ({pin.digest[:12]}), by {by}")
