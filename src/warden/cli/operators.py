"""``warden operator ...``: the people (by role) who administer Warden."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors
from warden.errors import UntrustedInputError
from warden.identity.registry import OPERATOR_ROLES

app = typer.Typer(no_args_is_help=True)


@app.command()
@handle_errors
def add(
    name: str,
    role: Annotated[str, typer.Option(help="admin, operator, approver or auditor")] = "operator",
) -> None:
    """Add an operator and write its credential (0600) under the state directory."""
    from warden.stack import write_operator_credential

    if role not in OPERATOR_ROLES:
        raise UntrustedInputError(
            f"role is one of {', '.join(OPERATOR_ROLES)}", code="invalid_role"
        )
    authority = State.authority()
    operator = authority.operators.add(name, role=role, created_by="cli")
    out = write_operator_credential(authority, name)
    console.print(f"[green]Added[/] {operator.spiffe_id} ({operator.role}); credential in {out}")


@app.command("list")
@handle_errors
def list_operators() -> None:
    """List operators."""
    table = Table(title="operators")
    for column in ("name", "SPIFFE ID", "role", "status", "created by"):
        table.add_column(column)
    for o in State.authority().operators.list():
        table.add_row(o.name, o.spiffe_id, o.role, o.status, o.created_by)
    console.print(table)


@app.command()
@handle_errors
def revoke(name: str) -> None:
    """Revoke an operator and every credential it holds."""
    operator = State.authority().operators.revoke(name)
    console.print(f"[red]Revoked[/] {operator.spiffe_id}")
