"""``warden ca ...``: the built-in certificate authority."""

from __future__ import annotations

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors

app = typer.Typer(no_args_is_help=True)


@app.command()
@handle_errors
def show() -> None:
    """Show the CA's roots, intermediates and JWT keys."""
    ca = State.authority().ca
    table = Table(title=f"trust domain {ca.trust_domain} (bundle sequence {ca.bundle.sequence})")
    for column in ("kind", "subject / kid", "not after"):
        table.add_column(column)
    for cert in ca.bundle.x509_authorities:
        table.add_row("root", cert.subject.rfc4514_string(), str(cert.not_valid_after_utc))
    for cert in ca.bundle.intermediates:
        table.add_row("intermediate", cert.subject.rfc4514_string(), str(cert.not_valid_after_utc))
    for authority in ca.bundle.jwt_authorities:
        table.add_row("jwt", authority.kid, "")
    console.print(table)


@app.command()
@handle_errors
def rotate() -> None:
    """Make a new intermediate and JWT key active; the old ones overlap until unused."""
    new = State.authority().ca.rotate_intermediate()
    console.print(f"[green]Rotated[/]: {new} is active; the previous one is retiring")


@app.command()
@handle_errors
def retire() -> None:
    """Drop retiring authorities whose overlap has passed from the bundle."""
    count = State.authority().ca.retire_expired()
    console.print(f"{count} authority(ies) retired")
