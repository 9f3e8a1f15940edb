"""``warden svid ...``: issue, inspect and revoke SVIDs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import jwt
import typer
from cryptography import x509
from rich.table import Table

from warden.cli.common import State, console, handle_errors
from warden.errors import UntrustedInputError
from warden.identity.ca.authority import load_csr_public_key
from warden.identity.ca.keys import write_private_file
from warden.identity.errors import CredentialRejected

app = typer.Typer(no_args_is_help=True)


def _write(out: Path, name: str, data: bytes) -> None:
    path = out / name
    path.unlink(missing_ok=True)
    write_private_file(path, data)


@app.command()
@handle_errors
def issue(
    name: str,
    x509_svid: Annotated[bool, typer.Option("--x509", help="Issue an X.509-SVID")] = False,
    jwt_svid: Annotated[bool, typer.Option("--jwt", help="Issue a JWT-SVID")] = False,
    csr: Annotated[Path | None, typer.Option(help="Sign this PEM CSR (key stays with you)")] = None,
    audience: Annotated[list[str] | None, typer.Option(help="JWT audience, repeatable")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Directory for svid.pem, key.pem, bundle.pem")
    ] = None,
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds (bounded)")] = None,
) -> None:
    """Issue an SVID for agent NAME (--x509 --out DIR, --csr FILE --out DIR, or --jwt)."""
    authority = State.authority()
    if jwt_svid == (x509_svid or csr is not None):
        raise UntrustedInputError("choose --x509 (or --csr) or --jwt", code="invalid_arguments")
    if jwt_svid:
        if not audience:
            raise UntrustedInputError("--jwt needs --audience", code="invalid_audience")
        typer.echo(authority.issuer.issue_agent_jwt(name, audience, ttl_s=ttl).token)
        return
    if out is None and csr is None:
        raise UntrustedInputError("--x509 needs --out DIR", code="invalid_arguments")
    public_key = load_csr_public_key(csr.read_bytes()) if csr is not None else None
    issued = authority.issuer.issue_agent_x509(name, ttl_s=ttl, public_key=public_key)
    if out is None:  # a signed CSR holds no secret: print the chain
        typer.echo(issued.cert_chain_pem().decode(), nl=False)
        return
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out, "svid.pem", issued.cert_chain_pem())
    _write(out, "bundle.pem", authority.ca.bundle.to_pem())
    if issued.key is not None:
        _write(out, "key.pem", issued.key_pem())
    spiffe_id = authority.agents.get(name).spiffe_id
    console.print(
        f"[green]Issued[/] X.509-SVID serial {issued.serial_hex} for {spiffe_id}, valid until "
        f"{issued.cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z -> {out}"
    )


def _load(path: Path) -> list[x509.Certificate] | str:
    """A PEM certificate chain, or the JWT in the file."""
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificates(data)
    return data.decode().strip()


@app.command()
@handle_errors
def inspect(
    path: Path,
    audience: Annotated[str | None, typer.Option(help="Audience to verify a JWT for")] = None,
) -> None:
    """Show an SVID (PEM chain or JWT file) and whether it verifies now."""
    authority = State.authority()
    credential = _load(path)
    table = Table(show_header=False, box=None)
    if isinstance(credential, list):
        leaf = credential[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        table.add_row("[bold]kind[/]", "X.509-SVID")
        table.add_row(
            "[bold]SPIFFE ID[/]",
            ", ".join(sans.get_values_for_type(x509.UniformResourceIdentifier)),
        )
        table.add_row("[bold]serial[/]", format(leaf.serial_number, "x"))
        table.add_row("[bold]issuer[/]", leaf.issuer.rfc4514_string())
        table.add_row(
            "[bold]valid[/]", f"{leaf.not_valid_before_utc} .. {leaf.not_valid_after_utc}"
        )
        table.add_row("[bold]chain[/]", f"{len(credential)} certificate(s)")
    else:
        claims = jwt.decode(credential, options={"verify_signature": False})
        table.add_row("[bold]kind[/]", "JWT-SVID")
        for claim in ("sub", "aud", "exp", "iat", "jti"):
            table.add_row(f"[bold]{claim}[/]", str(claims.get(claim)))
    try:
        if isinstance(credential, list):
            verified = authority.verifier.verify_x509(credential)
        else:
            if audience is None:
                raise UntrustedInputError(
                    "a JWT needs --audience to verify", code="invalid_audience"
                )
            verified = authority.verifier.verify_jwt(credential, audience)
        table.add_row("[bold]verifies[/]", f"[green]yes[/] (epoch {verified.epoch})")
    except CredentialRejected as exc:
        table.add_row("[bold]verifies[/]", f"[red]no[/]: {exc.code} ({exc.detail})")
    console.print(table)


@app.command()
@handle_errors
def revoke(
    path: Path,
    reason: Annotated[str, typer.Option(help="Why, for the record")] = "",
    audience: Annotated[str | None, typer.Option(help="Audience of a JWT to revoke")] = None,
) -> None:
    """Revoke one SVID (a PEM chain or a JWT in a file) until it would have expired."""
    authority = State.authority()
    credential = _load(path)
    if isinstance(credential, list):
        verified = authority.verifier.verify_x509(credential)
    else:
        verified = authority.verifier.verify_jwt(credential, audience or "")
    authority.issuer.revoke_credential(
        credential_id=verified.credential_id,
        kind=verified.kind,
        spiffe_id=str(verified.spiffe_id),
        not_after=verified.expires_at,
        reason=reason or "from the CLI",
    )
    console.print(
        f"[red]Revoked[/] {verified.kind} {verified.credential_id} of {verified.spiffe_id}"
    )
