"""The seed's scenarios end to end: each scenario of `warden demo` is a test here, played by
real agent processes (`warden run`, SVIDs from the Workload API) through the gateway against
upstream services that trust only the gateway; and `warden demo` itself runs as a new user
would run it, in its own process, and verifies the log. Both deployments play every scenario:
the embedded stack, and the control plane with two gateways as processes on PostgreSQL and
Redis (agents take the gateways in turn, so what one contains the other refuses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from warden.audit.reader import LogReader
from warden.demo.scenarios import SCENARIOS, Scenario
from warden.demo.world import World


@pytest.fixture(
    scope="module", params=["embedded", pytest.param("distributed", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    distributed = request.param == "distributed"
    started = World.start(tmp_path_factory.mktemp(request.param), distributed=distributed)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.number}-{s.title}")
def test_scenario(world: World, scenario: Scenario) -> None:
    outcome = scenario.play(world)
    assert outcome.ok, f"{scenario.expected!r} expected, observed: {outcome.observed}"
    assert outcome.decisions, "the outcome names the decisions that show it"
    assert outcome.contain_s is not None  # contained (benchmarks/containment.py times it)


def test_every_gateway_of_the_deployment_decided(world: World) -> None:
    """The embedded stack has one gateway; the distributed deployment two processes (their
    logs kept), and the decision log holds decisions from each (after every scenario)."""
    points = {
        str(e["enforcement_point"])
        for e in LogReader(world.store).search(kind="decision", limit=1000)
        if "/svc/gateway" in str(e.get("enforcement_point", ""))
    }
    if world.deployment.mode == "embedded":
        assert len(world.deployment.gateway_urls) == 1 and len(points) == 1
        return
    assert len(world.deployment.gateway_urls) == 2
    assert points == {f"spiffe://demo.example/svc/gateway-{i}" for i in range(2)}
    logs = sorted(p.name for p in (world.root / "logs").iterdir())
    assert logs == ["control-plane.log", "gateway-0.log", "gateway-1.log"]


def test_warden_demo_distributed_says_what_the_machine_lacks(tmp_path: Path) -> None:
    """Without redis-server on the PATH the distributed demo stops at once and says why."""
    warden = Path(sys.executable).parent / "warden"
    result = subprocess.run(
        [str(warden), "demo", "--distributed", "--keep", str(tmp_path / "demo")],
        capture_output=True, check=False, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PATH": str(tmp_path / "empty"), "COLUMNS": "160"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not installed: redis-server" in result.stderr
    assert "Traceback" not in result.stderr


def test_warden_demo_runs_as_a_new_user_runs_it(tmp_path: Path) -> None:
    warden = Path(sys.executable).parent / "warden"
    out = tmp_path / "outcomes.json"
    result = subprocess.run(
        [str(warden), "demo", "--keep", str(tmp_path / "demo"), "--scenario", "1",
         "--scenario", "9", "--json", str(out)],
        capture_output=True, check=False, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decision log verified" in result.stdout
    assert "bulk export of customer data" in result.stdout
    found = json.loads(out.read_text())
    assert found["verified"] is True
    assert [(s["number"], s["ok"]) for s in found["scenarios"]] == [(1, True), (9, True)]
