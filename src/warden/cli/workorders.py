"""``warden workorder ...``: just-in-time, task-scoped grants."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors, print_json
from warden.policy.workorders import WorkOrder, WorkOrderStore, parse_constraint

app = typer.Typer(no_args_is_help=True)


def _store() -> WorkOrderStore:
    return WorkOrderStore(State.authority().store)


@app.command()
@handle_errors
def create(
    agent: Annotated[str, typer.Option(help="The agent the work order is for")],
    ticket: Annotated[str, typer.Option(help="The task's ticket id")],
    action: Annotated[list[str], typer.Option(help="Action, repeatable (http:POST, ...)")],
    resource: Annotated[list[str], typer.Option(help="TYPE:ID or TYPE:PREFIX*, repeatable")],
    constraint: Annotated[
        list[str] | None,
        typer.Option(help="rows<=100, format in csv,json, path^=/r/, acct~=[0-9]{8}, x=1"),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Seconds it lives")] = 3600,
    max_uses: Annotated[int, typer.Option(help="Requests it covers")] = 1,
    reason: Annotated[str, typer.Option(help="Why")] = "",
) -> None:
    """Issue a work order."""
    authority = State.authority()
    spiffe_id = authority.agents.get(agent).spiffe_id
    order = _store().create(
        agent=spiffe_id,
        ticket=ticket,
        actions=action,
        resources=resource,
        constraints=[parse_constraint(c) for c in constraint or []],
        ttl_s=ttl,
        max_uses=max_uses,
        issued_by="cli",
        reason=reason,
    )
    console.print(
        f"[green]Issued[/] {order.id} for {agent} ({ticket}), "
        f"{order.max_uses} use(s) until {order.expires_at:%Y-%m-%d %H:%M:%S}Z"
    )


def _row(order: WorkOrder) -> list[str]:
    return [
        order.id,
        order.agent.rsplit("/", 1)[-1],
        order.ticket,
        ", ".join(sorted(order.actions)),
        ", ".join(order.resources),
        f"{order.uses}/{order.max_uses}",
        order.status,
        f"{order.expires_at:%Y-%m-%d %H:%M}",
    ]


@app.command("list")
@handle_errors
def list_orders(
    agent: Annotated[str | None, typer.Option(help="Only this agent's")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open ones")] = False,
) -> None:
    """List work orders."""
    spiffe_id = State.authority().agents.get(agent).spiffe_id if agent else None
    table = Table(title="work orders")
    for column in ("id", "agent", "ticket", "actions", "resources", "uses", "status", "expires"):
        table.add_column(column)
    for order in _store().list(agent=spiffe_id, open_only=open_only):
        table.add_row(*_row(order))
    console.print(table)


@app.command()
@handle_errors
def show(order_id: str) -> None:
    """Show one work order."""
    print_json(_store().get(order_id).to_dict())


@app.command()
@handle_errors
def close(order_id: str, reason: Annotated[str, typer.Option(help="Why")] = "") -> None:
    """Close a work order: the very next request it covered is denied."""
    order = _store().close(order_id, reason or "closed from the CLI")
    console.print(f"{order.id}: {order.status}")
