"""``warden policy ...``: test, validate, evaluate, sign and shadow policy bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.common import State, console, handle_errors, print_json
from warden.errors import UntrustedInputError
from warden.policy.bundle import BundleFiles, compile_bundle
from warden.policy.engine import shadow_report
from warden.policy.model import DecisionRequest
from warden.policy.signing import generate_signing_key, sign_bundle
from warden.policy.testing import run_bundle_tests

app = typer.Typer(no_args_is_help=True)


@app.command()
@handle_errors
def test(bundle: Path) -> None:
    """Run a bundle's policy tests; exit 1 if any fails."""
    compiled = compile_bundle(BundleFiles.read(bundle))
    results = run_bundle_tests(compiled)
    table = Table(title=f"{compiled.name} v{compiled.version} ({compiled.revision[:19]}...)")
    for column in ("file", "case", "result"):
        table.add_column(column)
    for result in results:
        verdict = (
            "[green]pass[/]" if result.passed else f"[red]FAIL[/] {'; '.join(result.problems)}"
        )
        table.add_row(result.file, result.name, verdict)
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


@app.command()
@handle_errors
def validate(bundle: Path) -> None:
    """Parse a bundle and validate its policies against its schema."""
    compiled = compile_bundle(BundleFiles.read(bundle))
    console.print(
        f"[green]valid[/]: {compiled.name} v{compiled.version}, "
        f"{len(compiled.meta)} policies, revision {compiled.revision}"
    )


@app.command("eval")
@handle_errors
def evaluate(
    request_file: Path,
    bundle: Annotated[Path | None, typer.Option(help="Bundle to use [default: configured]")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide REQUEST.json against this installation's agents and work orders."""
    from warden.policy.administrator import PolicyAdministrator
    from warden.policy.engine import PolicyEngine
    from warden.policy.setup import bundle_path

    authority = State.authority()
    try:
        body = json.loads(request_file.read_text())
    except ValueError as exc:
        raise UntrustedInputError(
            f"{request_file} is not JSON: {exc}", code="invalid_json"
        ) from exc
    request = DecisionRequest.from_dict(body)
    administrator = PolicyAdministrator(authority.store)
    administrator.active = administrator.check(bundle or bundle_path(authority))
    engine = PolicyEngine(authority.store, administrator)
    decision = engine.decide(request)
    if json_out:
        print_json({**decision.to_dict(), "errors": list(decision.errors)})
        return
    colour = "green" if decision.allowed else "red"
    console.print(f"[bold {colour}]{decision.decision}[/]  ({decision.decision_id})")
    for reason in decision.reasons:
        console.print(f"  {reason.effect} [bold]{reason.policy}[/]: {reason.message}")
    if decision.obligations:
        console.print(f"  obligations: {', '.join(decision.obligations)}")
    if decision.work_order:
        console.print(f"  work order: {decision.work_order}")
    console.print(f"  risk: {decision.risk['score']} ({decision.risk['level']})")
    for error in decision.errors:
        console.print(f"  [red]error[/]: {error}")


@app.command()
@handle_errors
def keygen(out: Annotated[Path, typer.Option(help="Directory for the key pair")]) -> None:
    """Make an Ed25519 key pair for signing bundles (keep the private one offline)."""
    from warden.identity.ca.keys import write_private_file

    private, public = generate_signing_key()
    out.mkdir(parents=True, exist_ok=True)
    write_private_file(out / "policy-signing.key", private)
    (out / "policy-signing.pub").write_bytes(public)
    console.print(
        f"private key {out / 'policy-signing.key'} (0600), public key {out / 'policy-signing.pub'}"
    )


@app.command()
@handle_errors
def sign(
    bundle: Path, key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM)")]
) -> None:
    """Sign a bundle directory (writes bundle.sig)."""
    digest = sign_bundle(bundle, key.read_bytes())
    console.print(f"[green]signed[/] {bundle}: {digest}")


@app.command()
@handle_errors
def shadow(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Report decisions where the shadow bundle disagreed with the active one."""
    report = shadow_report(State.authority().store)
    if json_out:
        print_json(report)
        return
    counts = report["counts"]
    console.print(
        f"allow->deny: [bold]{counts.get('allow->deny', 0)}[/]   "
        f"deny->allow: [bold]{counts.get('deny->allow', 0)}[/]"
    )
    table = Table("at", "decision", "active", "shadow", "request")
    for flip in report["recent"]:
        request = flip["request"]
        table.add_row(
            flip["at"],
            flip["decision_id"],
            flip["active"],
            flip["shadow"],
            f"{request['subject']['id']} {request['action']['name']} "
            f"{request['resource']['type']}:{request['resource']['id']}",
        )
    console.print(table)
