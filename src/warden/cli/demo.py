"""``warden demo``: the seed's scenarios end to end, on the embedded stack or (with
``--distributed``) on a control plane and two gateways as processes on PostgreSQL and Redis.

Everything is real: the trust domain and its CA, the control plane, Workload API, gateways and
console on 127.0.0.1, upstream services that trust only the gateways, and agents started as
separate processes with ``warden run``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from warden.cli.common import console, handle_errors

DISTRIBUTED = "warden demo --distributed"


@handle_errors
def run_demo(
    keep: Annotated[
        Path | None, typer.Option(help="Keep the demo's state in this directory")
    ] = None,
    scenario: Annotated[
        list[int] | None, typer.Option(help="Play only this scenario (repeatable)")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the outcomes as JSON here")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write a self-contained HTML report: timeline, risk, every decision"),
    ] = None,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="The control plane and two gateways as processes on PostgreSQL and Redis "
            "(started for the demo from the machine's own binaries)",
        ),
    ] = False,
) -> None:
    """Play the seed's scenarios with real agents, identities, TLS and containment; then
    verify the decision log. Exits non-zero when any outcome differs from the expected one."""
    if distributed:  # before the demo's modules load: say at once what the machine lacks
        from warden.local import require

        require(DISTRIBUTED)
    from warden.demo.runner import play, summary, write_json

    root = keep or Path(tempfile.mkdtemp(prefix="warden-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    console.rule("[bold cyan]Warden demo")
    try:
        played, verified, world = play(root, console, scenario, distributed=distributed)
    except BaseException:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        console.print(summary(played))
        console.print(
            "[green]✓ decision log verified[/] (every entry, the Merkle tree, every checkpoint)"
            if verified
            else "[red]✕ the decision log does not verify[/]"
        )
        console.print(
            f"Played on the {world.deployment.mode} deployment: control plane "
            f"{world.deployment.control_url}, gateways {', '.join(world.deployment.gateway_urls)}"
        )
        if json_out is not None:
            write_json(json_out, played, verified)
        if report is not None:
            from warden.demo.report import write_report

            write_report(report, world.store, played, verified)
            console.print(f"Report: {report}")
    finally:
        world.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    failed = [p.scenario.number for p in played if not p.outcome.ok]
    if failed or not verified:
        console.print(f"[red]Differs from the expected outcome: {failed or 'the log'}[/]")
        raise typer.Exit(1)
