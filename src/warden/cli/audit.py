"""``warden audit ...``: verify the decision log, prove a decision is in it, read and export
it, archive sealed history, and run a witness."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from warden.audit import export as exports
from warden.audit.checkpoint import VerifierKey
from warden.audit.checkpoint import verify as verify_checkpoint
from warden.audit.reader import LogReader
from warden.audit.retention import archive as archive_range
from warden.audit.retention import verify_archive
from warden.audit.setup import open_decision_log, witness_target
from warden.audit.verify import verify_log
from warden.cli.common import State, console, handle_errors, print_json

app = typer.Typer(no_args_is_help=True)


def _key() -> VerifierKey:
    return VerifierKey.parse(State.authority().ca.log_keys().verifier_key)


@app.command()
@handle_errors
def key() -> None:
    """Print the log's verifier key (give it to auditors and witnesses)."""
    typer.echo(State.authority().ca.log_keys().verifier_key)


@app.command()
@handle_errors
def checkpoint() -> None:
    """Sign a checkpoint of the log now and print it."""
    log = open_decision_log(State.authority())
    try:
        typer.echo(log.checkpoint().note, nl=False)
    finally:
        log.close()


@app.command()
@handle_errors
def verify(
    checkpoint_file: Annotated[
        list[Path] | None, typer.Option("--checkpoint", help="A checkpoint you kept (repeatable)")
    ] = None,
    archive_dir: Annotated[Path | None, typer.Option("--archives", help="Archive files")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Processes that scan the entries (default: one per core, up to 4, for logs "
            "over 65,536 entries; 0: this process only)",
        ),
    ] = None,
) -> None:
    """Recompute every entry and the tree, check every checkpoint and each entry's seal."""
    authority = State.authority()
    key = _key()
    kept = [(str(path), path.read_text()) for path in checkpoint_file or []]
    target = witness_target(authority.settings.audit_witness, key)
    if target is not None:
        latest = target.latest()
        if latest is not None:
            kept.append(("witness", latest.note))
    report = verify_log(
        authority.store,
        key,
        mac_key=authority.ca.log_keys().entry_mac_key,
        kept=kept,
        workers=workers,
    )
    archive_problems = []
    for path in sorted(archive_dir.glob("entries-*.jsonl")) if archive_dir else []:
        archive_problems.extend(verify_archive(path, key))
    problems = [str(p) for p in report.problems] + archive_problems
    if as_json:
        print_json(
            {
                "ok": not problems,
                "entries": report.size,
                "checkpoints": report.checkpoints,
                "verified_size": report.verified_size,
                "unsealed": report.unsealed,
                "problems": problems,
            }
        )
    elif problems:
        table = Table(title="the decision log does not verify", style="red")
        table.add_column("where / what")
        for problem in problems:
            table.add_row(problem)
        console.print(table)
    else:
        console.print(
            f"[green]verified[/] {report.size:,} entries and {report.checkpoints} checkpoints; "
            f"the newest covers {report.verified_size:,} ({report.unsealed:,} newer, sealed "
            "one by one)"
        )
    if problems:
        raise typer.Exit(1)


@app.command()
@handle_errors
def prove(decision_id: str) -> None:
    """Print an inclusion proof of a decision against the newest checkpoint."""
    authority = State.authority()
    reader = LogReader(authority.store)
    note = reader.latest_checkpoint_note()
    if note is None:
        log = open_decision_log(authority)
        try:
            note = log.checkpoint().note
        finally:
            log.close()
    proof = reader.prove_decision(decision_id, verify_checkpoint(note, _key()))
    if not proof.verifies():  # never hand out a proof that does not check
        raise typer.Exit(1)
    print_json({**proof.to_dict(), "verifier_key": authority.ca.log_keys().verifier_key})


def _table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="decision log")
    for column in ("seq", "at", "kind", "agent", "action", "resource", "decision", "why"):
        table.add_column(column)
    for e in entries:
        resource = e.get("resource") or {}
        why = ", ".join(r.get("policy", "") for r in e.get("reasons") or []) or e.get("event", "")
        style = "red" if e.get("decision") == "deny" else None
        table.add_row(
            str(e.get("seq")),
            str(e.get("at", ""))[:23],
            str(e.get("kind")),
            str((e.get("subject") or {}).get("id", e.get("spiffe_id", ""))).rsplit("/", 1)[-1],
            str(e.get("action", "")),
            f"{resource.get('type', '')}:{resource.get('id', '')}" if resource else "",
            str(e.get("decision", "")),
            str(why),
            style=style,
        )
    return table


@app.command()
@handle_errors
def tail(
    count: Annotated[int, typer.Option("-n", help="How many")] = 20,
    agent: Annotated[str | None, typer.Option(help="SPIFFE ID")] = None,
    decision: Annotated[str | None, typer.Option(help="allow or deny")] = None,
) -> None:
    """The newest entries."""
    entries = LogReader(State.authority().store).search(agent=agent, decision=decision, limit=count)
    console.print(_table(list(reversed(entries))))


@app.command()
@handle_errors
def search(
    agent: Annotated[str | None, typer.Option(help="SPIFFE ID")] = None,
    decision: Annotated[str | None, typer.Option(help="allow or deny")] = None,
    kind: Annotated[str | None, typer.Option(help="decision, identity, policy, response")] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO time")] = None,
    limit: Annotated[int, typer.Option(help="At most")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Entries as JSON lines")] = False,
) -> None:
    """Entries by agent, decision, kind and time (newest first)."""
    entries = LogReader(State.authority().store).search(
        agent=agent, decision=decision, kind=kind, since=since, limit=limit
    )
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, sort_keys=True))
    else:
        console.print(_table(entries))


@app.command("export")
@handle_errors
def export_entries(
    form: Annotated[str, typer.Option("--format", help="ocsf or otel")] = "ocsf",
    since: Annotated[datetime | None, typer.Option(help="ISO time")] = None,
    limit: Annotated[int, typer.Option(help="At most")] = 1000,
    out: Annotated[Path | None, typer.Option(help="File (default: standard output)")] = None,
) -> None:
    """Export entries as OCSF JSON lines or OTLP/JSON log lines, oldest first."""
    entries = list(reversed(LogReader(State.authority().store).search(since=since, limit=limit)))
    if form == "ocsf":
        lines = [json.dumps(exports.to_ocsf(e)) for e in entries]
    elif form == "otel":
        lines = [
            json.dumps(exports.to_otel(entries[i : i + 100])) for i in range(0, len(entries), 100)
        ]
    else:
        raise typer.BadParameter("the format is ocsf or otel")
    text = "".join(line + "\n" for line in lines)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"{len(entries)} entries to {out}")


@app.command()
@handle_errors
def archive(
    out: Annotated[Path, typer.Option(help="Directory for archive files")],
    up_to: Annotated[int | None, typer.Option(help="Checkpoint size to archive up to")] = None,
) -> None:
    """Move sealed entries (up to a checkpoint) from the store into a file that verifies."""
    store = State.authority().store
    if up_to is None:
        note = LogReader(store).latest_checkpoint_note()
        if note is None:
            raise typer.BadParameter("there is no checkpoint yet")
        up_to = verify_checkpoint(note, _key()).size
    made = archive_range(store, out, up_to)
    console.print(f"[green]archived[/] entries {made.start:,}-{made.end - 1:,} to {made.path}")


@app.command()
@handle_errors
def witness(
    directory: Annotated[Path, typer.Option("--dir", help="Where the witness keeps checkpoints")],
    verifier_key: Annotated[str, typer.Option("--key", help="The log's verifier key")],
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8460,
) -> None:
    """Run a witness: it accepts a checkpoint only if consistent with the last it accepted."""
    import uvicorn

    from warden.audit.witness import WitnessDirectory
    from warden.audit.witness_app import witness_app

    app_ = witness_app(WitnessDirectory(directory, VerifierKey.parse(verifier_key)))
    console.print(f"Warden witness on http://{host}:{port} keeping {directory}")
    uvicorn.run(app_, host=host, port=port, log_level="warning")
