"""Playing the scenarios: a live view while they run, a table of expected against observed,
then the decision log verified. Non-zero exit when any observed outcome differs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from warden.audit.checkpoint import VerifierKey
from warden.audit.reader import LogReader
from warden.audit.verify import verify_log
from warden.demo.scenarios import SCENARIOS, Outcome, Scenario
from warden.demo.world import World


@dataclass
class Played:
    scenario: Scenario
    outcome: Outcome
    seconds: float


def _recent_decisions(world: World, after: int) -> tuple[int, list[dict[str, Any]]]:
    reader = LogReader(world.store)
    found = reader.search(kind="decision", limit=8)
    newest = max((int(e.get("seq", after)) for e in found if "seq" in e), default=after)
    return newest, found


def _decisions_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="decisions as they happen", expand=True, show_edge=False)
    for column in ("agent", "action", "resource", "decision", "why"):
        table.add_column(column, overflow="fold")
    for e in entries[:8]:
        reasons = e.get("reasons") or []
        table.add_row(
            str(e.get("subject", {}).get("id", "")).rsplit("/", 1)[-1],
            str(e.get("action", "")),
            f"{e.get('resource', {}).get('type')}::{e.get('resource', {}).get('id')}",
            ("[green]✓ allow" if e.get("decision") == "allow" else "[red]✕ deny"),
            str(reasons[0].get("policy", "")) if reasons else "",
        )
    return table


def play(
    root: Path, console: Console, only: list[int] | None = None, *, distributed: bool = False
) -> tuple[list[Played], bool, World]:
    """Start the world, play the scenarios with a live view; returns what happened, whether
    the log verifies, and the world (still running: the caller stops it)."""
    world = World.start(root, distributed=distributed)
    chosen = [s for s in SCENARIOS if only is None or s.number in only]
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    task = progress.add_task("scenarios", total=len(chosen))
    played: list[Played] = []
    with Live(Group(progress), console=console, refresh_per_second=4, transient=True) as live:
        for scenario in chosen:
            progress.update(task, description=f"{scenario.number}. {scenario.title}")
            started = time.monotonic()
            try:
                outcome = scenario.play(world)
            except Exception as exc:  # a scenario that breaks is a failed scenario, not a crash
                outcome = Outcome(f"error: {type(exc).__name__}: {exc}", False)
            played.append(Played(scenario, outcome, time.monotonic() - started))
            _, recent = _recent_decisions(world, 0)
            live.update(Group(progress, _decisions_table(recent)))
            progress.advance(task)
    world.deployment.seal()
    keys = world.authority.ca.log_keys()
    report = verify_log(
        world.store,
        VerifierKey.parse(keys.verifier_key),
        mac_key=keys.entry_mac_key,
    )
    return played, report.ok, world


def summary(played: list[Played]) -> Table:
    table = Table(title="Warden demo: the seed's scenarios", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("scenario")
    table.add_column("expected")
    table.add_column("observed")
    table.add_column("time to contain", justify="right")
    table.add_column("decisions", overflow="fold")
    table.add_column("", justify="center")
    for p in played:
        contain = f"{p.outcome.contain_s * 1000:.0f} ms" if p.outcome.contain_s is not None else "-"
        table.add_row(
            str(p.scenario.number),
            p.scenario.title,
            p.scenario.expected,
            p.outcome.observed,
            contain,
            "\n".join(d[:13] for d in p.outcome.decisions),
            "[green]✓ as expected" if p.outcome.ok else "[red]✕ differs",
        )
    return table


def as_json(played: list[Played], verified: bool) -> dict[str, Any]:
    return {
        "verified": verified,
        "scenarios": [
            {
                "number": p.scenario.number,
                "title": p.scenario.title,
                "expected": p.scenario.expected,
                "observed": p.outcome.observed,
                "ok": p.outcome.ok,
                "contain_ms": None if p.outcome.contain_s is None else p.outcome.contain_s * 1000,
                "decisions": p.outcome.decisions,
                "seconds": p.seconds,
            }
            for p in played
        ],
    }


def write_json(path: Path, played: list[Played], verified: bool) -> None:
    path.write_text(json.dumps(as_json(played, verified), indent=2))
