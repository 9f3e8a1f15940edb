"""Playing a trace through the real thing: a trust domain with the population registered, the
policy engine on the default pack, data protection (classification, windows, bulk checks,
outbound content), workload health from scan reports and the risk engine, all on the
simulation's clock. Each step is decided by ``decide()``, answered (its records classified and
counted) as the gateway would, and observed by the risk engine; what the engine says after
each step is what the figures are made of.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from warden.config import load_settings
from warden.enforce.obligations import Throttles, apply_to_body
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.policy.engine import PolicyEngine
from warden.policy.model import Decision, DecisionRequest, Resource
from warden.policy.setup import open_policy_engine
from warden.risk.engine import Learning, RiskEngine
from warden.risk.observation import Observation
from warden.risk.observation import Signal as TrustSignal
from warden.sim.catalog import CATALOG
from warden.sim.traces import ATTACKS, HOUR, SEED_ATTACKS, Step, Trace
from warden.store import open_store
from warden.trust.dlp import Dlp
from warden.trust.events import TrustEvent, TrustEvents
from warden.trust.health import HealthBook, health_rules
from warden.trust.windows import DlpWindows

EPOCH = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
EPOCH_S = EPOCH.timestamp()
FLAG_AT = 600  # "high": what counts as flagged
NAMED_AT = 200  # a named detector agrees when it gives at least this much
DEFAULT_LEARNING = Learning()


def scan_report(critical: int) -> bytes:
    """A Trivy report of the agent's image with ``critical`` critical findings."""
    return json.dumps(
        {
            "SchemaVersion": 2,
            "ArtifactName": "registry.example/agents/sim:1.0",
            "ArtifactType": "container_image",
            "Results": [
                {
                    "Target": "sim (debian 12.8)",
                    "Class": "os-pkgs",
                    "Vulnerabilities": [
                        {
                            "VulnerabilityID": f"CVE-2026-{1000 + i}",
                            "PkgName": "openssl",
                            "Severity": "CRITICAL",
                        }
                        for i in range(critical)
                    ],
                }
            ],
        }
    ).encode()


@dataclass
class AttackResult:
    start: float
    steps: int = 0
    detected_after: int | None = None  # attack steps until flagged (1: at the first)
    seconds: float | None = None
    contained: bool = False
    factors: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Results:
    attacks: dict[str, AttackResult]
    benign_hours: int
    flagged_hours: set[tuple[str, int]]
    contained_hours: set[tuple[str, int]]
    score_us: list[float]
    decide_us: list[float]
    plain_us: list[float]  # the same decisions on an engine without the risk context
    steps: int
    seconds: float
    flags: dict[str, list[tuple[str, int]]]  # benign flags: agent -> factors at the flag

    def figures(self) -> dict[str, Any]:
        seed = [self.attacks[a] for a in SEED_ATTACKS if a in self.attacks]
        detected = [a for a in self.attacks.values() if a.detected_after is not None]
        return {
            "seed_attacks_detected": round(
                sum(a.detected_after is not None for a in seed) / max(len(seed), 1), 3
            ),
            "attacks_detected": round(len(detected) / max(len(self.attacks), 1), 3),
            "median_requests_to_detect": _median([a.detected_after for a in detected]),
            "median_seconds_to_detect": _median([a.seconds for a in detected]),
            "false_positive_rate": round(len(self.flagged_hours) / max(self.benign_hours, 1), 5),
            "wrongful_containment_rate": round(
                len(self.contained_hours) / max(self.benign_hours, 1), 5
            ),
            "benign_agent_hours": self.benign_hours,
            "score_p50_us": _median(self.score_us),
            "decide_p50_us": _median(self.decide_us),
            "decide_p50_us_without_risk": _median(self.plain_us),
            "decide_ratio_with_risk": round(
                statistics.median(self.decide_us) / statistics.median(self.plain_us), 3
            )
            if self.plain_us
            else -1.0,
            "steps": self.steps,
            "steps_per_s": round(self.steps / max(self.seconds, 1e-9)),
        }


def _median(values: list[Any]) -> float:
    present = [v for v in values if v is not None]
    return round(float(statistics.median(present)), 2) if present else -1.0


class Simulation:
    def __init__(self, trace: Trace, root: Path, learning: Learning = DEFAULT_LEARNING) -> None:
        self.trace = trace
        self.now = 0.0
        settings = load_settings(state_dir=root / "state")
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store = open_store(settings.database)
        keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
        CertificateAuthority.initialise(self.store, keys, settings, "sim.example")
        self.authority = IdentityAuthority.from_parts(settings, self.store, keys)
        self.ids: dict[str, str] = {}
        for agent in trace.agents.values():
            registered = self.authority.agents.register(
                agent.name, owner="sim", groups=list(agent.role.groups), labels={"region": "eu"}
            )
            self.ids[agent.name] = registered.spiffe_id
        self.engine = open_policy_engine(self.authority, clock=self.when)
        # The baseline for decide(): the same bundle, signals and requests, no risk context.
        self.plain = open_policy_engine(self.authority, clock=self.when)
        self.events = TrustEvents()
        self.windows = DlpWindows(clock=lambda: self.now)
        self.dlp = Dlp(self.windows, self.events, bulk_records=settings.dlp_bulk_records)
        self.health = HealthBook(self.store, self.events, health_rules(settings))
        self.risk = RiskEngine(
            self.authority.ca.log_keys().fingerprint,
            clock=lambda: EPOCH_S + self.now,
            learning=learning,
            events=self.events,
        )
        self.throttles = Throttles(clock=lambda: self.now)
        for kind, source in (("dlp", self.windows), ("health", self.health), ("risk", self.risk)):
            self.engine.set_signal_source(kind, source)
            if kind != "risk":
                self.plain.set_signal_source(kind, source)
        for name in trace.agents:
            self.health.ingest(name, [scan_report(0)], by="sim")
        self.events.subscribe(self._on_trust)
        for order in trace.work_orders:
            self.engine.work_orders.create(
                agent=self.ids[order["agent"]],
                ticket=order["ticket"],
                actions=order["actions"],
                resources=order["resources"],
                not_before=EPOCH + timedelta(seconds=order["from"]),
                ttl_s=7 * 24 * 3600,
                max_uses=order["uses"],
                issued_by="sim",
                now=EPOCH,
            )
        self.engine.reload_work_orders()

    def when(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

    def _on_trust(self, event: TrustEvent) -> None:
        if event.kind == "risk_changed":
            return
        self.risk.signal(TrustSignal(event.agent, EPOCH_S + self.now, event.kind, event.detail))

    def close(self) -> None:
        self.store.dispose()

    # -- playing -----------------------------------------------------------------------------

    def run(self) -> Results:
        trace = self.trace
        attacks = {a: AttackResult(start) for a, start in trace.attacks.items()}
        victims = {ATTACKS[a]: start for a, start in trace.attacks.items()}
        benign_hours: set[tuple[str, int]] = set()
        flagged: set[tuple[str, int]] = set()
        contained: set[tuple[str, int]] = set()
        flags: dict[str, list[tuple[str, int]]] = {}
        score_us: list[float] = []
        decide_us: list[float] = []
        plain_us: list[float] = []
        started = time.perf_counter()
        for step in trace.steps:
            self.now = step.t
            score = self._play(step, score_us, decide_us, plain_us)
            agent_id = self.ids[step.agent]
            hour = int(step.t // HOUR)
            if step.attack is not None:
                result = attacks[step.attack]
                result.steps += 1
                if result.detected_after is None and score >= FLAG_AT and self._named(agent_id):
                    result.detected_after = result.steps
                    result.seconds = step.t - result.start
                    result.factors = list(self.risk.assessment(agent_id).factors)
                if not result.contained and self.risk.assessment(agent_id).contain:
                    result.contained = True
                continue
            if step.agent in victims and step.t >= victims[step.agent]:
                continue  # the agent is under attack: its hours are not benign ones
            benign_hours.add((step.agent, hour))
            if score >= FLAG_AT and self._named(agent_id):
                assessment = self.risk.assessment(agent_id)
                if (step.agent, hour) not in flagged:
                    flags.setdefault(step.agent, []).append(assessment.factors[0])
                flagged.add((step.agent, hour))
                if assessment.contain:
                    contained.add((step.agent, hour))
        return Results(
            attacks,
            len(benign_hours),
            flagged,
            contained,
            score_us,
            decide_us,
            plain_us,
            len(trace.steps),
            time.perf_counter() - started,
            flags,
        )

    def _named(self, agent_id: str) -> bool:
        return any(
            p >= NAMED_AT and words and not words.startswith("unusual for this agent")
            for words, p in self.risk.assessment(agent_id).factors
        )

    def _play(
        self, step: Step, score_us: list[float], decide_us: list[float], plain_us: list[float]
    ) -> int:
        agent_id = self.ids[step.agent]
        if step.kind == "health":
            critical = 3 if step.args.get("report") == "critical" else 0
            self.health.ingest(step.agent, [scan_report(critical)], by="sim")
            return self.risk.assessment(agent_id).score
        endpoint = CATALOG[step.endpoint]
        resource = Resource(endpoint.resource_type, endpoint.resource_id, endpoint.properties)
        outbound = self.dlp.outbound(step.outbound)
        request = DecisionRequest(
            subject_type="Agent",
            subject_id=agent_id,
            action=step.action,
            resource=resource,
            context={
                "authn": "mtls",
                "source_ip": step.source_ip,
                "args": step.args,
                "destination_region": "eu",
                "route": step.endpoint,
                "bulk": self.dlp.bulk_request(step.args),
                "outbound": outbound,
            },
        )
        if len(decide_us) % 2:  # which engine goes first alternates: caches warm for both
            plain_us.append(_timed(self.plain, request)[1])
        decision, took = _timed(self.engine, request)
        decide_us.append(took)
        if len(decide_us) % 2:
            plain_us.append(_timed(self.plain, request)[1])
        decision = self.engine.reserve(decision)
        outcome, reason, records, classes = self._answer(step, decision, agent_id)
        observation = Observation(
            agent=agent_id,
            at=EPOCH_S + step.t,
            action=step.action,
            target=f"{endpoint.resource_type}:{endpoint.resource_id}",
            source_ip=step.source_ip,
            outcome=outcome,
            reason=reason,
            classes=classes,
            records=records,
            size=records * 200,
            args=step.args,
            work_order=decision.work_order,
            outbound_records=outbound["records"],
            outbound_sensitive=outbound["pii"] + outbound["phi"] + outbound["pci"],
        )
        begin = time.perf_counter()
        score = self.risk.observe(observation)
        score_us.append((time.perf_counter() - begin) * 1e6)
        return score

    def _answer(
        self, step: Step, decision: Decision, agent_id: str
    ) -> tuple[str, str, int, tuple[str, ...]]:
        """(outcome, reason, records delivered, data classes delivered), as the gateway's
        answer would be."""
        if not decision.allowed:
            return "deny", decision.reasons[0].policy, 0, ()
        for obligation in decision.obligations:
            if obligation.startswith("throttle:") and self.throttles.take(
                agent_id, step.endpoint, obligation
            ):
                return "deny", "throttled", 0, ()
        if not step.records:
            return "allow", "", 0, ()
        body = json.dumps([{"id": i} for i in range(step.records)]).encode()
        body, _ = apply_to_body(decision.obligations, body)
        endpoint = CATALOG[step.endpoint]
        verdict = self.dlp.inspect(agent_id, step.endpoint, endpoint.classification, "eu", body)
        found = verdict.classification
        if verdict.blocked is not None or found is None:
            return "deny", verdict.blocked or "uninspectable_response", 0, ()
        if verdict.bulk:
            export = self.engine.decide(
                DecisionRequest(
                    subject_type="Agent",
                    subject_id=agent_id,
                    action="data:export",
                    resource=Resource(
                        endpoint.resource_type, endpoint.resource_id, endpoint.properties
                    ),
                    context={"authn": "mtls", "args": {"rows": found.records}, "bulk": True},
                )
            )
            if not export.allowed:
                return "deny", f"bulk_export:{export.reasons[0].policy}", 0, ()
        refused = self.dlp.take(agent_id, step.endpoint, decision.obligations, found)
        if refused is not None:
            return "deny", refused, 0, ()
        return "allow", "", found.records, tuple(found.per_class)


def _timed(engine: PolicyEngine, request: DecisionRequest) -> tuple[Decision, float]:
    begin = time.perf_counter()
    decision = engine.decide(request)
    return decision, (time.perf_counter() - begin) * 1e6


def simulate(trace: Trace, learning: Learning = DEFAULT_LEARNING) -> Results:
    """Play ``trace`` in a throwaway trust domain."""
    with tempfile.TemporaryDirectory(prefix="warden-sim-") as tmp:
        simulation = Simulation(trace, Path(tmp), learning)
        try:
            return simulation.run()
        finally:
            simulation.close()
