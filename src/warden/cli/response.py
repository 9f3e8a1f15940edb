"""``warden playbook|incident|approval ...``: automated response from the command line.

These act on the store directly, as the installation's administrator; what they change
reaches every enforcement point through the feed, and what they do is in the decision log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from warden.audit.reader import LogReader
from warden.audit.setup import open_decision_log
from warden.cli.common import State, console, handle_errors, print_json
from warden.policy.bundle import BundleFiles
from warden.policy.signing import load_public_key, verify_signature
from warden.response.playbooks import PlaybookBundle, compile_playbooks

if TYPE_CHECKING:
    from warden.response.engine import ResponseEngine

playbook_app = typer.Typer(no_args_is_help=True)
incident_app = typer.Typer(no_args_is_help=True)
approval_app = typer.Typer(no_args_is_help=True)

By = Annotated[str, typer.Option(help="Who acts (recorded)")]


@contextlib.contextmanager
def _engine() -> Iterator[ResponseEngine]:
    authority = State.authority()
    log = open_decision_log(authority)
    # Imported here: the engine pulls in the risk model, which every other command can skip.
    from warden.response.setup import open_response_engine

    engine = open_response_engine(authority, log, runner="cli")
    if engine is None:
        log.close()
        raise typer.BadParameter("response is switched off (response_enabled = false)")
    try:
        yield engine
    finally:
        engine.close()
        log.close()


def _compiled(path: Path | None) -> PlaybookBundle:
    authority = State.authority()
    settings = authority.settings
    from warden.response.setup import playbooks_path

    files = BundleFiles.read(path or playbooks_path(authority))
    keys = [load_public_key(p.read_bytes()) for p in settings.policy_signing_keys]
    if keys and (settings.policy_require_signature or "bundle.sig" in files.files):
        verify_signature(files, keys)
    return compile_playbooks(files)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- playbooks -------------------------------------------------------------------------------


@playbook_app.command("check")
@handle_errors
def check(
    path: Annotated[Path | None, typer.Argument(help="Bundle; default: configured")] = None,
) -> None:
    """Validate a playbook bundle (schema, names, signature when keys are configured)."""
    bundle = _compiled(path)
    table = Table(title=f"{bundle.name} v{bundle.version} ({bundle.revision[:19]})")
    for column in ("playbook", "trigger", "actions", "cooldown"):
        table.add_column(column)
    for p in bundle.playbooks:
        table.add_row(p.name, p.trigger.kind, ", ".join(p.action_kinds()), f"{p.cooldown_s:g} s")
    console.print(table)
    console.print(f"[green]valid[/]: {len(bundle.playbooks)} playbook(s)")
    settings = State.settings()
    for missing in bundle.unconfigured(settings.response_webhooks, settings.response_hooks):
        console.print(f"[yellow]not configured[/] (that action will not run): {missing}")


@playbook_app.command("trigger")
@handle_errors
def trigger(
    name: str,
    agent: Annotated[str, typer.Option(help="The agent to run it for")],
    reason: Annotated[str, typer.Option(help="Why (recorded)")],
    by: By = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run an active playbook for one agent now, whatever its trigger."""
    with _engine() as engine:
        result = engine.trigger(name, agent, by=by, reason=reason)
    if as_json:
        print_json(result.to_dict())
        return
    for step in result.steps:
        style = "green" if step.outcome in ("done", "already", "pending") else "red"
        console.print(f"[{style}]{step.outcome}[/] {step.action}: {step.detail}")
    if result.run is None:
        console.print(f"[yellow]not run[/]: {result.why_not}")


@playbook_app.command("runs")
@handle_errors
def runs(
    agent: Annotated[str | None, typer.Option(help="Only this agent")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent playbook runs, newest first."""
    from warden.response.records import Runs

    found = Runs(State.authority().store).list(agent=agent, limit=limit)
    if as_json:
        print_json({"runs": found})
        return
    table = Table(title="playbook runs")
    for column in ("started", "playbook", "agent", "trigger", "status", "steps"):
        table.add_column(column)
    for run in found:
        steps = ", ".join(f"{s['action']}:{s['outcome']}" for s in run["steps"])
        table.add_row(
            run["started_at"],
            run["playbook"],
            run["agent"],
            run["trigger"]["kind"],
            run["status"],
            steps,
        )
    console.print(table)


@playbook_app.command("dry-run")
@handle_errors
def dry_run(
    path: Annotated[Path | None, typer.Argument(help="Bundle; default: configured")] = None,
    last: Annotated[int, typer.Option(help="Replay this many log entries", min=1)] = 10_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay recorded events through a bundle and show what it would have done."""
    bundle = _compiled(path)
    authority = State.authority()
    from warden.response.dry_run import dry_run, not_replayable

    found, replayed = dry_run(LogReader(authority.store), bundle, authority.agents, last=last)
    skipped = not_replayable(bundle)
    if as_json:
        print_json(
            {"replayed": replayed, "would": [w.to_dict() for w in found], "not_replayed": skipped}
        )
        return
    table = Table(title=f"{bundle.name} v{bundle.version} over the last {replayed} entries")
    for column in ("at", "agent", "playbook", "trigger", "would"):
        table.add_column(column)
    for w in found:
        would = ", ".join(w.actions) if not w.why_not else f"[dim]no: {w.why_not}[/]"
        table.add_row(_when(w.at), w.agent, w.playbook, w.trigger, would)
    console.print(table)
    if skipped:
        console.print(f"not replayable from the log (detector or manual): {', '.join(skipped)}")


# -- incidents -------------------------------------------------------------------------------


@incident_app.command("list")
@handle_errors
def list_incidents(
    status: Annotated[Literal["open", "resolved"] | None, typer.Option()] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Incidents playbooks opened, newest first."""
    from warden.response.records import Incidents

    found = Incidents(State.authority().store).list(status=status, agent=agent)
    if as_json:
        print_json({"incidents": [i.to_dict() for i in found]})
        return
    table = Table(title="incidents")
    for column in ("id", "opened", "severity", "agent", "playbook", "title", "status"):
        table.add_column(column)
    for i in found:
        table.add_row(
            i.id,
            f"{i.opened_at:%Y-%m-%d %H:%M}",
            i.severity,
            i.agent,
            i.playbook,
            i.title,
            i.status,
        )
    console.print(table)


@incident_app.command("show")
@handle_errors
def show_incident(incident_id: str) -> None:
    """One incident: its trigger, the agent's decisions before it, its risk factors."""
    from warden.response.records import Incidents

    print_json(Incidents(State.authority().store).get(incident_id).to_dict())


@incident_app.command("resolve")
@handle_errors
def resolve_incident(
    incident_id: str,
    resolution: Annotated[str, typer.Option(help="How it was resolved")],
    by: By = "cli",
) -> None:
    """Close an incident, saying how."""
    with _engine() as engine:
        engine.resolve_incident(incident_id, by=by, resolution=resolution)
    console.print(f"[green]Resolved[/] {incident_id}")


# -- approvals -------------------------------------------------------------------------------


@approval_app.command("list")
@handle_errors
def list_approvals(
    status: Annotated[
        Literal["pending", "approved", "denied", "timed_out"] | None, typer.Option()
    ] = "pending",
    agent: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Requests parked for approval and releases waiting for one (pending by default)."""
    from warden.response.approvals import Approvals

    found = Approvals(State.authority().store).list(status=status, agent=agent)
    if as_json:
        print_json({"approvals": [a.to_dict() for a in found]})
        return
    table = Table(title="approvals")
    for column in ("id", "agent", "kind", "action", "resource", "status", "expires"):
        table.add_column(column)
    for a in found:
        table.add_row(
            a.id, a.agent, a.kind, a.action, a.resource, a.status, f"{a.expires_at:%H:%M:%S}"
        )
    console.print(table)


def _decide(approval_id: str, approve: bool, by: str, reason: str) -> None:
    with _engine() as engine:
        decided = engine.decide_approval(approval_id, approve=approve, by=by, reason=reason)
    console.print(f"{decided.status}: {decided.kind} {decided.action} of {decided.agent}")


@approval_app.command("approve")
@handle_errors
def approve(approval_id: str, by: By = "cli", reason: str = "") -> None:
    """Approve: the parked request goes on; an approved release is carried out."""
    _decide(approval_id, True, by, reason)


@approval_app.command("deny")
@handle_errors
def deny(approval_id: str, by: By = "cli", reason: str = "") -> None:
    """Deny: the parked request is refused; the release does not happen."""
    _decide(approval_id, False, by, reason)
