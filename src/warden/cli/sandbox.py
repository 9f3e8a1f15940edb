"""``warden sandbox run|doctor``: code in the jail, and which jails work on this machine."""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from warden.cli.common import console, err_console, handle_errors, print_json
from warden.cli.remote import operator_client
from warden.errors import UntrustedInputError, WardenError
from warden.sandbox import bwrap, wasm
from warden.sandbox.limits import BOUNDS, Limits
from warden.sandbox.service import backends

app = typer.Typer(no_args_is_help=True)


@app.command("run")
@handle_errors
def run(
    source: Annotated[str, typer.Argument(help="A Python file, or - for standard input")],
    agent: Annotated[str, typer.Option(help="The agent the code runs for")],
    limit: Annotated[
        list[str] | None, typer.Option(help=f"NAME=VALUE ({', '.join(BOUNDS)}), repeatable")
    ] = None,
    file: Annotated[list[Path] | None, typer.Option(help="An input file, repeatable")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, bwrap or wasm")] = None,
    operator: Annotated[str, typer.Option(help="Operator credential to ask with")] = "admin",
    server: Annotated[str | None, typer.Option(help="Control plane URL")] = None,
) -> None:
    """Run Python for AGENT in the sandbox: decided, run, recorded by the control plane."""
    code = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    limits: dict[str, int] = {}
    for item in limit or []:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise UntrustedInputError(f"--limit {item!r}: use NAME=NUMBER", code="invalid_limits")
        limits[name] = int(value)
    Limits.asked(limits)  # a clear error before anything is sent
    body = {
        "agent": agent,
        "code": code.decode(),
        "limits": limits,
        "files": {p.name: base64.b64encode(p.read_bytes()).decode() for p in file or []},
        **({"backend": backend} if backend else {}),
    }
    with operator_client(operator, server) as client:
        try:
            answer = client.post("/v1/sandbox/runs", json=body, timeout=180)
        except httpx.TransportError as exc:
            raise WardenError(f"cannot reach the control plane: {exc}") from exc
    result = answer.json()
    if answer.status_code not in (200, 403):
        raise WardenError(f"control plane answered {answer.status_code}: {json.dumps(result)}")
    sys.stdout.write(result.get("stdout", ""))
    sys.stderr.write(result.get("stderr", ""))
    if answer.status_code == 403:
        reasons = "; ".join(r["message"] for r in result.get("reasons", []))
        err_console.print(f"[red]denied[/] ({result['decision_id']}): {reasons}")
        raise typer.Exit(2)
    err_console.print(
        f"[dim]{result['backend']}: {result['ended']}, exit {result['exit_code']}, "
        f"{result['wall_ms']} ms, decision {result['decision_id']}[/]"
    )
    raise typer.Exit(result["exit_code"] if isinstance(result["exit_code"], int) else 1)


@app.command("doctor")
@handle_errors
def doctor(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Which backends work here: each is checked, then runs a one-line script."""
    found: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="warden-doctor-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)
        for name, why in backends().items():
            if why is not None:
                found[name] = {"works": False, "why": why}
                continue
            runner = bwrap.run if name == "bwrap" else wasm.run
            try:
                done = runner(root, b"print(6 * 7)\n", {}, Limits(wall_s=60))
            except Exception as exc:
                found[name] = {"works": False, "why": f"{type(exc).__name__}: {exc}"}
                continue
            works = done.stdout.strip() == b"42"
            found[name] = {
                "works": works,
                "why": "" if works else done.stderr.decode(errors="replace")[-300:],
                "ms": round(done.wall_ms),
            }
    if as_json:
        print_json(found)
    else:
        table = Table(title="sandbox backends")
        for column in ("backend", "works", "ms", "why not"):
            table.add_column(column)
        for name, row in found.items():
            mark = "[green]yes[/]" if row["works"] else "[red]no[/]"
            table.add_row(name, mark, str(row.get("ms", "")), str(row["why"]))
        console.print(table)
    if not any(row["works"] for row in found.values()):
        raise typer.Exit(1)  # fail closed: no backend, no code runs
