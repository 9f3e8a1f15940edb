"""``warden ca ...``: the built-in certificate authority."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors
from warden.identity.ca.keys import write_private_file
from warden.identity.spiffe_id import SpiffeId

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


@app.command("issue-tls")
@handle_errors
def issue_tls(
    name: Annotated[str, typer.Argument(help="Service name: the SPIFFE ID is svc/<name>")],
    out: Annotated[Path, typer.Option(help="Directory for cert.pem, key.pem and ca.pem")],
    dns: Annotated[list[str] | None, typer.Option(help="A DNS name it is reached by")] = None,
    ip: Annotated[list[str] | None, typer.Option(help="An IP address it is reached by")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime, seconds (tls_cert_max_ttl_s)")] = 7 * 86_400,
) -> None:
    """A certificate from the trust domain's CA for infrastructure: PostgreSQL and Redis
    servers, or a client of theirs. Rerun before it expires; the files are replaced."""
    authority = State.authority()
    issued = authority.issuer.issue_service_x509(
        name, dns_names=dns or [], ip_addresses=ip or [], ttl_s=ttl
    )
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {
        "key.pem": issued.key_pem(),
        "cert.pem": issued.cert_chain_pem(),
        "ca.pem": authority.ca.bundle.to_pem(),
    }
    for file_name, data in files.items():
        # A fresh file each time: never a moment where a wider mode or half a key is visible.
        scratch = out / f".{file_name}.new"
        scratch.unlink(missing_ok=True)
        write_private_file(scratch, data)
        scratch.replace(out / file_name)
    spiffe_id = SpiffeId.for_principal(authority.trust_domain, "svc", name)
    until = issued.cert.not_valid_after_utc
    console.print(f"[green]Issued[/] {spiffe_id} until {until:%Y-%m-%d %H:%M} UTC into {out}")
