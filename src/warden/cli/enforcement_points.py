"""``warden enforcement-point ...``: services allowed to ask Warden for decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors
from warden.identity.ca.keys import write_private_file

app = typer.Typer(no_args_is_help=True)


@app.command()
@handle_errors
def add(
    name: str,
    out: Annotated[Path | None, typer.Option(help="Write its SVID here")] = None,
) -> None:
    """Register an enforcement point (spiffe://<td>/svc/NAME)."""
    authority = State.authority()
    point = authority.enforcement_points.add(name, created_by="cli")
    console.print(f"[green]Registered[/] {point.spiffe_id}")
    if out is not None:
        credential(name, out)


@app.command()
@handle_errors
def credential(name: str, out: Annotated[Path, typer.Option(help="Directory")]) -> None:
    """Write a fresh SVID for an enforcement point (svid.pem, key.pem, bundle.pem)."""
    authority = State.authority()
    issued = authority.issuer.issue_service_x509(name)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for filename, data in (
        ("key.pem", issued.key_pem()),
        ("svid.pem", issued.cert_chain_pem()),
        ("bundle.pem", authority.ca.bundle.to_pem()),
    ):
        (out / filename).unlink(missing_ok=True)
        write_private_file(out / filename, data)
    console.print(f"credential for {name} in {out}")


@app.command("list")
@handle_errors
def list_points() -> None:
    """List enforcement points."""
    table = Table("name", "SPIFFE ID", "status", "created by")
    for point in State.authority().enforcement_points.list():
        table.add_row(point.name, point.spiffe_id, point.status, point.created_by)
    console.print(table)
