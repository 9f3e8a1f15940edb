"""Workload health: healthy, degraded, compromised or unknown, with the reasons.

Assessed from the agent's latest vulnerability report (critical and high findings left after
VEX), whether the image the report scanned is the one registered for the agent (a different
digest is drift), and how long ago the agent last attested. No report: unknown.

:class:`HealthBook` keeps the reports in the store and is the policy engine's ``health``
signals, refreshed from the store (so a report ingested through any process counts
everywhere within a refresh) and reassessed as attestations age; status changes are trust
events.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from warden.clock import as_utc, isoformat, utcnow
from warden.config import Settings
from warden.errors import NotFoundError
from warden.policy.snapshot import Signal
from warden.store import Store, schema
from warden.trust import reports
from warden.trust.events import TrustEvent, TrustEvents

log = logging.getLogger("warden.trust")


@dataclass(frozen=True)
class HealthRules:
    max_high: int = 5  # more high findings than this: degraded
    max_attestation_age: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Health:
    status: str  # healthy | degraded | compromised | unknown
    reasons: tuple[str, ...]
    critical: int
    high: int
    reported_at: datetime | None = None
    tool: str = ""
    cleared: dict[str, str] = field(default_factory=dict)

    def signal(self) -> dict[str, Any]:
        """What policies see (``context.health``)."""
        return {"status": self.status, "critical_vulns": self.critical, "high_vulns": self.high}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.signal(),
            "reasons": list(self.reasons),
            "reported_at": isoformat(self.reported_at) if self.reported_at else None,
            "tool": self.tool,
            "vex_cleared": self.cleared,
        }


UNKNOWN = Health("unknown", ("no vulnerability report",), 0, 0)


def health_rules(settings: Settings) -> HealthRules:
    return HealthRules(
        max_high=settings.health_max_high,
        max_attestation_age=timedelta(seconds=settings.health_max_attestation_age_s),
    )


def assess(
    counts: Mapping[str, list[str]],
    digests: set[str],
    registered: str | None,
    attested_at: datetime | None,
    now: datetime,
    rules: HealthRules,
) -> tuple[str, tuple[str, ...]]:
    """The status and its reasons, worst first."""
    compromised, degraded = [], []
    if registered and digests and registered not in digests:
        compromised.append(
            f"the scanned image is not the registered one ({registered[:19]}...): drift"
        )
    critical, high = counts.get("critical", []), counts.get("high", [])
    if critical:
        shown = ", ".join(critical[:3]) + (" ..." if len(critical) > 3 else "")
        degraded.append(f"{len(critical)} critical vulnerabilities ({shown})")
    if len(high) > rules.max_high:
        degraded.append(f"{len(high)} high vulnerabilities (more than {rules.max_high})")
    if attested_at is not None and now - attested_at > rules.max_attestation_age:
        hours = int((now - attested_at).total_seconds() // 3600)
        degraded.append(f"last attested {hours} h ago")
    if compromised:
        return "compromised", tuple(compromised + degraded)
    if degraded:
        return "degraded", tuple(degraded)
    return "healthy", ("a clean report",)


class HealthBook(Mapping[str, Signal]):
    """Health per agent SPIFFE ID, from the store; the engine's live ``health`` source."""

    def __init__(
        self, store: Store, events: TrustEvents | None = None, rules: HealthRules = HealthRules()
    ) -> None:
        self.store = store
        self.events = events or TrustEvents()
        self.rules = rules
        self._health: dict[str, Health] = {}
        self._lock = threading.Lock()
        self.refresh(publish=False)  # what stands at start is not a change

    # -- reports -------------------------------------------------------------------------------

    def ingest(self, agent_name: str, documents: list[bytes], *, by: str) -> Health:
        """Take an agent's reports (a scan, and VEX documents) as its latest; reassess."""
        parsed = reports.merge([reports.parse(d) for d in documents])
        digest = hashlib.sha256(b"".join(documents)).hexdigest()
        table = schema.workload_health
        row = {
            "agent_name": agent_name,
            "tool": parsed.tool[:64],
            "counts": reports.counted(parsed),
            "cleared": parsed.cleared,
            "digests": sorted(parsed.digests),
            "report_sha256": digest,
            "reported_at": utcnow(),
            "reported_by": by[:2048],
        }
        with self.store.begin() as conn:
            if (
                conn.execute(
                    select(schema.agents.c.name).where(schema.agents.c.name == agent_name)
                ).first()
                is None
            ):
                raise NotFoundError(f"no agent {agent_name!r}")
            conn.execute(table.delete().where(table.c.agent_name == agent_name))
            conn.execute(table.insert().values(**row))
        self.refresh()
        return self.of_name(agent_name)

    def of_name(self, agent_name: str) -> Health:
        with self.store.begin() as conn:
            spiffe_id = conn.execute(
                select(schema.agents.c.spiffe_id).where(schema.agents.c.name == agent_name)
            ).scalar_one_or_none()
        if spiffe_id is None:
            raise NotFoundError(f"no agent {agent_name!r}")
        return self.of(spiffe_id)

    def of(self, spiffe_id: str) -> Health:
        with self._lock:
            return self._health.get(spiffe_id, UNKNOWN)

    # -- keeping current -----------------------------------------------------------------------

    def refresh(self, *, publish: bool = True) -> None:
        """Reassess every agent with a report (reports, evidence and attestations from the
        store); publish status changes."""
        now = utcnow()
        fresh: dict[str, Health] = {}
        with self.store.begin() as conn:
            attested = dict(
                conn.execute(
                    select(
                        schema.attestation_events.c.agent_name,
                        func.max(schema.attestation_events.c.at),
                    )
                    .where(schema.attestation_events.c.outcome == "issued")
                    .group_by(schema.attestation_events.c.agent_name)
                ).all()
            )
            registered = dict(
                conn.execute(
                    select(schema.agent_evidence.c.agent_name, schema.agent_evidence.c.image_digest)
                ).all()
            )
            rows = conn.execute(
                select(schema.workload_health, schema.agents.c.spiffe_id).join(
                    schema.agents, schema.agents.c.name == schema.workload_health.c.agent_name
                )
            ).all()
        for row in rows:
            at = attested.get(row.agent_name)
            status, reasons = assess(
                row.counts,
                set(row.digests),
                registered.get(row.agent_name),
                as_utc(at) if at is not None else None,
                now,
                self.rules,
            )
            fresh[row.spiffe_id] = Health(
                status,
                reasons,
                len(row.counts.get("critical", [])),
                len(row.counts.get("high", [])),
                as_utc(row.reported_at),
                row.tool,
                dict(row.cleared),
            )
        with self._lock:
            before, self._health = self._health, fresh
        if not publish:
            return
        for spiffe_id, health in fresh.items():
            old = before.get(spiffe_id, UNKNOWN)
            if old.status != health.status:
                self.events.publish(
                    TrustEvent(
                        "health_changed",
                        spiffe_id,
                        {"from": old.status, "to": health.status, "reasons": list(health.reasons)},
                    )
                )

    # -- the policy engine's health signals ----------------------------------------------------

    def __getitem__(self, spiffe_id: str) -> Signal:
        with self._lock:
            health = self._health.get(spiffe_id)
        if health is None:
            raise KeyError(spiffe_id)
        return Signal(health.signal(), utcnow())

    def get(self, spiffe_id: str, default: Any = None) -> Any:
        try:
            return self[spiffe_id]
        except KeyError:
            return default  # no report: the engine reads health as unknown

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._health))

    def __len__(self) -> int:
        with self._lock:
            return len(self._health)
