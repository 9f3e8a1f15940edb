"""``warden agent ...``: the agent registry from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors, print_json
from warden.errors import UntrustedInputError
from warden.identity.registry import Agent

app = typer.Typer(no_args_is_help=True)
STATUS_STYLE = {"active": "green", "disabled": "yellow", "revoked": "red"}


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UntrustedInputError(f"label {pair!r} is not KEY=VALUE", code="invalid_labels")
        labels[key] = value
    return labels


def _show(agent: Agent) -> None:
    table = Table(show_header=False, box=None)
    for key, value in agent.to_dict().items():
        text = str(value)
        if key == "status":
            text = f"[{STATUS_STYLE.get(text, 'white')}]{text}[/]"
        table.add_row(f"[bold]{key}[/]", text)
    console.print(table)


@app.command()
@handle_errors
def register(
    name: str,
    owner: Annotated[str, typer.Option(help="Accountable person or team (required)")],
    purpose: Annotated[str, typer.Option(help="What the agent is for")] = "",
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    max_ttl: Annotated[int | None, typer.Option(help="Maximum X.509-SVID TTL, seconds")] = None,
) -> None:
    """Register an agent: spiffe://<trust-domain>/agent/NAME."""
    agent = State.authority().agents.register(
        name, owner=owner, purpose=purpose, labels=_labels(label or []), max_svid_ttl_s=max_ttl
    )
    console.print(f"[green]Registered[/] {agent.spiffe_id} (owner {agent.owner})")


@app.command("list")
@handle_errors
def list_agents(
    status: Annotated[str | None, typer.Option(help="active, disabled or revoked")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List agents."""
    if status not in (None, "active", "disabled", "revoked"):
        raise UntrustedInputError("status is active, disabled or revoked", code="invalid_status")
    agents = State.authority().agents.list(status=status)  # type: ignore[arg-type]
    if json_out:
        print_json([a.to_dict() for a in agents])
        return
    table = Table(title=f"{len(agents)} agent(s)")
    for column in ("name", "SPIFFE ID", "owner", "status", "epoch", "max TTL"):
        table.add_column(column)
    for a in agents:
        table.add_row(
            a.name,
            a.spiffe_id,
            a.owner,
            f"[{STATUS_STYLE.get(a.status, 'white')}]{a.status}[/]",
            str(a.credential_epoch),
            f"{a.max_svid_ttl_s}s",
        )
    console.print(table)


@app.command()
@handle_errors
def show(name: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one agent."""
    agent = State.authority().agents.get(name)
    if json_out:
        print_json(agent.to_dict())
    else:
        _show(agent)


def _change(action: str) -> None:
    @handle_errors
    def command(
        name: str, reason: Annotated[str, typer.Option(help="Why, for the record")] = ""
    ) -> None:
        agent = getattr(State.authority().agents, action)(name, reason or "from the CLI")
        console.print(
            f"{agent.spiffe_id}: [{STATUS_STYLE[agent.status]}]{agent.status}[/] "
            f"(credential epoch {agent.credential_epoch})"
        )

    command.__doc__ = {
        "disable": "Suspend an agent; its credentials work again once enabled.",
        "enable": "Make a disabled or revoked agent active (a revoked one needs new SVIDs).",
        "revoke": "Revoke every credential the agent holds (bumps its credential epoch).",
    }[action]
    app.command(action)(command)


for _action in ("disable", "enable", "revoke"):
    _change(_action)


@app.command()
@handle_errors
def delete(name: str) -> None:
    """Delete an agent; its SPIFFE ID is not reused until its credentials have expired."""
    agent = State.authority().agents.delete(name)
    console.print(f"[red]Deleted[/] {agent.spiffe_id}")
