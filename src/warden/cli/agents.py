"""``warden agent ...``: the agent registry from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors, print_json
from warden.errors import UntrustedInputError
from warden.identity.registry import STATUSES, Agent

app = typer.Typer(no_args_is_help=True)
STATUS_STYLE = {"active": "green", "disabled": "yellow", "quarantined": "magenta", "revoked": "red"}


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
    selector: Annotated[
        list[str] | None, typer.Option(help="Attestation selector TYPE:KEY:VALUE, repeatable")
    ] = None,
    group: Annotated[list[str] | None, typer.Option(help="Policy group, repeatable")] = None,
) -> None:
    """Register an agent: spiffe://<trust-domain>/agent/NAME."""
    agent = State.authority().agents.register(
        name,
        owner=owner,
        purpose=purpose,
        labels=_labels(label or []),
        max_svid_ttl_s=max_ttl,
        selectors=selector or [],
        groups=group or [],
    )
    console.print(f"[green]Registered[/] {agent.spiffe_id} (owner {agent.owner})")


@app.command("list")
@handle_errors
def list_agents(
    status: Annotated[str | None, typer.Option(help="active, disabled or revoked")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List agents."""
    if status is not None and status not in STATUSES:
        raise UntrustedInputError(f"status is one of {', '.join(STATUSES)}", code="invalid_status")
    agents = State.authority().agents.list(status=status)
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
        "quarantine": "Contain an agent: none of its credentials work until it is released.",
        "release": "End an agent's quarantine.",
    }[action]
    app.command(action)(command)


for _action in ("disable", "enable", "revoke", "quarantine", "release"):
    _change(_action)


@app.command()
@handle_errors
def delete(name: str) -> None:
    """Delete an agent; its SPIFFE ID is not reused until its credentials have expired."""
    agent = State.authority().agents.delete(name)
    console.print(f"[red]Deleted[/] {agent.spiffe_id}")


@app.command()
@handle_errors
def selectors(
    name: str,
    selector: Annotated[list[str] | None, typer.Option(help="TYPE:KEY:VALUE, repeatable")] = None,
) -> None:
    """Replace an agent's attestation selectors (none: it matches no Unix caller)."""
    agent = State.authority().agents.set_selectors(name, selector or [])
    console.print(f"{agent.spiffe_id}: {', '.join(agent.selectors) or 'no selectors'}")


@app.command()
@handle_errors
def evidence(
    name: str,
    image_digest: Annotated[str, typer.Option(help="sha256:... of the container image")],
    sbom: Annotated[Path, typer.Option(help="The image's CycloneDX SBOM (JSON)")],
) -> None:
    """Record the container evidence a join must present (the SBOM is kept)."""
    digest = State.authority().containers.set_evidence(
        name, image_digest=image_digest, sbom=sbom.read_bytes()
    )
    console.print(f"{name}: image {image_digest}, SBOM {digest}")


@app.command("join-token")
@handle_errors
def join_token(
    name: str, ttl: Annotated[int, typer.Option(help="Seconds the token lives")] = 600
) -> None:
    """Print a one-time join token for the agent's container launcher."""
    typer.echo(State.authority().containers.create_join_token(name, ttl_s=ttl, created_by="cli"))


@app.command()
@handle_errors
def groups(
    name: str,
    group: Annotated[list[str] | None, typer.Option(help="Policy group, repeatable")] = None,
) -> None:
    """Replace an agent's policy groups."""
    agent = State.authority().agents.update(name, groups=group or [])
    console.print(f"{agent.spiffe_id}: {', '.join(agent.groups) or 'no groups'}")


HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "compromised": "red", "unknown": "white"}


@app.command()
@handle_errors
def health(
    name: str,
    report: Annotated[
        list[Path] | None,
        typer.Option(help="A CycloneDX (with VEX), Grype or Trivy JSON report (repeatable)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show an agent's workload health, or ingest its vulnerability reports first."""
    from warden.trust.health import HealthBook, health_rules

    authority = State.authority()
    book = HealthBook(authority.store, rules=health_rules(authority.settings))
    if report:
        found = book.ingest(name, [path.read_bytes() for path in report], by="cli")
    else:
        found = book.of_name(name)
    if json_out:
        print_json({"agent": name, **found.to_dict()})
        return
    style = HEALTH_STYLE.get(found.status, "white")
    console.print(
        f"{name}: [{style}]{found.status}[/] ({found.critical} critical, {found.high} high)"
    )
    for reason in found.reasons:
        console.print(f"  - {reason}")
