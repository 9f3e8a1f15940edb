"""``warden scim token ...``: bearer tokens for SCIM provisioning clients."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors
from warden.scim.tokens import ScimTokens

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True)
app.add_typer(token_app, name="token", help="Provisioning tokens (SCIM only).")


def _tokens() -> ScimTokens:
    return ScimTokens(State.authority().store)


@token_app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="The provisioning client (okta, entra...)")],
    by: Annotated[str, typer.Option(help="Who creates it (recorded)")] = "cli",
) -> None:
    """A new token; it is printed once and kept only as its SHA-256 digest."""
    typer.echo(_tokens().create(name, by=by))


@token_app.command("rotate")
@handle_errors
def rotate(name: str, by: Annotated[str, typer.Option()] = "cli") -> None:
    """Replace a client's token: the old one stops working at once."""
    typer.echo(_tokens().rotate(name, by=by))


@token_app.command("revoke")
@handle_errors
def revoke(name: str) -> None:
    """Stop a client's token."""
    _tokens().revoke(name)
    console.print(f"[green]Revoked[/] the SCIM token of {name}")


@token_app.command("list")
@handle_errors
def list_tokens() -> None:
    """Provisioning clients and their tokens' state (never the tokens)."""
    table = Table(title="SCIM provisioning tokens")
    for column in ("client", "created", "by", "last used", "state"):
        table.add_column(column)
    for t in _tokens().list():
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        state = "[red]revoked[/]" if t.revoked_at else "live"
        table.add_row(t.name, f"{t.created_at:%Y-%m-%d %H:%M}", t.created_by, used, state)
    console.print(table)
