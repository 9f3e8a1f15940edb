"""What the response engine keeps in the store: playbook runs (claimed once per trigger, so
enforcement points that see the same event act once) and incidents."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from warden.clock import as_utc, isoformat, utcnow
from warden.errors import ConflictError, NotFoundError, UntrustedInputError
from warden.store import Store, schema

MAX_INCIDENT_DECISIONS = 20


class IncidentNotFound(NotFoundError):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"no incident {incident_id!r}", code="incident_not_found")


@dataclass(frozen=True)
class Incident:
    id: str
    agent: str
    playbook: str
    title: str
    severity: str
    status: str
    opened_at: datetime
    events: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    factors: list[Any]
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "playbook": self.playbook,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "opened_at": isoformat(self.opened_at),
            "resolved_at": isoformat(self.resolved_at) if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
            "events": self.events,
            "decisions": self.decisions,
            "factors": self.factors,
        }


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        agent=row.agent,
        playbook=row.playbook,
        title=row.title,
        severity=row.severity,
        status=row.status,
        opened_at=as_utc(row.opened_at),
        events=list(row.events),
        decisions=list(row.decisions),
        factors=list(row.factors),
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
    )


class Incidents:
    """Incidents a playbook opened: the triggering events, the agent's recent decisions and
    its risk factors at that moment."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def open(
        self,
        *,
        agent: str,
        spiffe_id: str,
        playbook: str,
        title: str,
        severity: str,
        events: list[dict[str, Any]],
        factors: list[Any],
    ) -> Incident:
        incident_id = str(uuid.uuid4())
        with self._store.begin() as conn:
            decisions = _recent_decisions(conn, spiffe_id)
            conn.execute(
                schema.incidents.insert().values(
                    id=incident_id,
                    agent=agent,
                    playbook=playbook,
                    title=title[:500],
                    severity=severity,
                    status="open",
                    opened_at=utcnow(),
                    events=events,
                    decisions=decisions,
                    factors=factors,
                    resolution="",
                )
            )
        return self.get(incident_id)

    def get(self, incident_id: str) -> Incident:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.incidents).where(schema.incidents.c.id == incident_id)
            ).one_or_none()
        if row is None:
            raise IncidentNotFound(incident_id)
        return _incident(row)

    def list(
        self, *, status: str | None = None, agent: str | None = None, limit: int = 100
    ) -> list[Incident]:
        table = schema.incidents
        query = select(table).order_by(table.c.opened_at.desc()).limit(min(limit, 1000))
        if status is not None:
            query = query.where(table.c.status == status)
        if agent is not None:
            query = query.where(table.c.agent == agent)
        with self._store.begin() as conn:
            return [_incident(r) for r in conn.execute(query).all()]

    def resolve(self, incident_id: str, *, by: str, resolution: str) -> Incident:
        if not resolution.strip():
            raise UntrustedInputError("say how it was resolved", code="resolution_required")
        table = schema.incidents
        with self._store.begin() as conn:
            done = conn.execute(
                table.update()
                .where(table.c.id == incident_id, table.c.status == "open")
                .values(
                    status="resolved",
                    resolved_at=utcnow(),
                    resolved_by=by[:2048],
                    resolution=resolution[:4000],
                )
            ).rowcount
        if not done:
            self.get(incident_id)  # raises when it does not exist
            raise ConflictError(f"incident {incident_id} is resolved already")
        return self.get(incident_id)


def _recent_decisions(conn: Any, spiffe_id: str) -> list[dict[str, Any]]:
    table = schema.audit_entries
    rows = conn.execute(
        select(table.c.seq, table.c.decision_id, table.c.decision, table.c.at)
        .where(table.c.subject == spiffe_id, table.c.kind == "decision")
        .order_by(table.c.seq.desc())
        .limit(MAX_INCIDENT_DECISIONS)
    ).all()
    return [
        {"seq": r.seq, "decision_id": r.decision_id, "decision": r.decision, "at": isoformat(r.at)}
        for r in rows
    ]


class Runs:
    """Playbook runs: one per (playbook, agent) within its cooldown, across processes."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def claim(
        self,
        *,
        playbook: str,
        version: int,
        agent: str,
        trigger: dict[str, Any],
        runner: str,
        cooldown_s: float,
        now: datetime | None = None,
    ) -> str | None:
        """The new run's key, or None when a run of this playbook for this agent started
        within the cooldown (here or in another process)."""
        now = now or utcnow()
        table = schema.response_runs
        bucket = int(now.timestamp() // cooldown_s) if cooldown_s > 0 else uuid.uuid4().hex
        key = hashlib.sha256(f"{playbook}\n{agent}\n{bucket}".encode()).hexdigest()
        try:
            # One transaction: the check and the claim commit together; it goes before the
            # decision log's next group (on SQLite).
            with self._store.urgent() as conn:
                if cooldown_s > 0:
                    recent = conn.execute(
                        select(table.c.run_key)
                        .where(
                            table.c.playbook == playbook,
                            table.c.agent == agent,
                            table.c.started_at > now - timedelta(seconds=cooldown_s),
                        )
                        .limit(1)
                    ).first()
                    if recent is not None:
                        return None
                conn.execute(
                    table.insert().values(
                        run_key=key,
                        playbook=playbook,
                        version=version,
                        agent=agent,
                        trigger=trigger,
                        started_at=now,
                        status="running",
                        steps=[],
                        runner=runner[:2048],
                    )
                )
        except IntegrityError:
            return None  # another enforcement point claimed it first
        return key

    def finish(self, key: str, status: str, steps: list[dict[str, Any]]) -> None:
        table = schema.response_runs
        with self._store.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.run_key == key)
                .values(status=status, steps=steps, finished_at=utcnow())
            )

    def list(self, *, agent: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        table = schema.response_runs
        query = select(table).order_by(table.c.started_at.desc()).limit(min(limit, 1000))
        if agent is not None:
            query = query.where(table.c.agent == agent)
        with self._store.begin() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "run": r.run_key,
                "playbook": r.playbook,
                "version": r.version,
                "agent": r.agent,
                "trigger": r.trigger,
                "status": r.status,
                "steps": r.steps,
                "started_at": isoformat(as_utc(r.started_at)),
                "finished_at": isoformat(as_utc(r.finished_at)) if r.finished_at else None,
                "runner": r.runner,
            }
            for r in rows
        ]
