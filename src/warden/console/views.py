"""What the console's pages show, read from the store: the registry, the decision log, the
response records. Nothing here is kept per process, so a console on the control plane shows
what every gateway decided (they all write to the same log)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from warden.audit import merkle
from warden.audit.checkpoint import CheckpointInvalid, VerifierKey
from warden.audit.checkpoint import verify as verify_checkpoint
from warden.audit.reader import LogReader
from warden.audit.tree_store import TreeStore
from warden.clock import as_utc, utcnow
from warden.errors import AuditError
from warden.store import Store, schema

if TYPE_CHECKING:
    from warden.risk.engine import Learning

RECENT_DECISIONS = 2000  # how far back the agent list looks for risk trends and last seen
TREND_POINTS = 20


@dataclass(frozen=True)
class DecisionFilter:
    """The live view's filters; empty fields match everything."""

    agent: str = ""
    decision: str = ""
    resource: str = ""
    data_class: str = ""

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.agent and self.agent not in str(entry.get("subject", {}).get("id", "")):
            return False
        if self.decision and entry.get("decision") != self.decision:
            return False
        resource = entry.get("resource", {})
        if self.resource and self.resource not in f"{resource.get('type')}::{resource.get('id')}":
            return False
        classification = (resource.get("properties") or {}).get("classification", "")
        return not (self.data_class and classification != self.data_class)

    def query(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("agent", self.agent),
                ("decision", self.decision),
                ("resource", self.resource),
                ("data_class", self.data_class),
            )
            if v
        }


@dataclass
class AgentActivity:
    """An agent as the log saw it lately: its risk over its last decisions, when last seen."""

    risk: list[int] = field(default_factory=list)  # oldest first
    level: str = "unknown"
    last_seen: str | None = None
    decisions: int = 0
    denied: int = 0


@dataclass(frozen=True)
class CheckpointState:
    size: int
    at: datetime | None
    verified: bool
    problem: str


def decision_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One decision as a row of the live view."""
    resource = entry.get("resource", {})
    reasons = entry.get("reasons") or []
    return {
        "decision_id": entry.get("decision_id", ""),
        "at": str(entry.get("at", ""))[:23].replace("T", " "),
        "agent": short_agent(str(entry.get("subject", {}).get("id", ""))),
        "subject": entry.get("subject", {}).get("id", ""),
        "action": entry.get("action", ""),
        "resource": f"{resource.get('type', '')}::{resource.get('id', '')}",
        "data_class": (resource.get("properties") or {}).get("classification", ""),
        "decision": entry.get("decision", ""),
        "reason": "; ".join(str(r.get("reason") or r.get("policy", "")) for r in reasons[:2]),
        "risk": (entry.get("risk") or {}).get("score"),
        "enforcement_point": short_agent(str(entry.get("enforcement_point", ""))),
    }


def short_agent(spiffe_id: str) -> str:
    """The last path segment of a SPIFFE ID (an agent's or service's name)."""
    return spiffe_id.rsplit("/", 1)[-1] if spiffe_id.startswith("spiffe://") else spiffe_id


class ConsoleViews:
    """Queries behind the pages."""

    def __init__(self, store: Store, verifier_key: str, learning: Learning | None = None) -> None:
        self.learning = learning
        self.store = store
        self.reader = LogReader(store)
        self._key = VerifierKey.parse(verifier_key)
        self.verifier_key = verifier_key
        # The newest checkpoint this console verified: the next must be consistent with it.
        self._seen: tuple[int, bytes] | None = None

    # -- overview ------------------------------------------------------------------------------

    def agents_by_status(self) -> dict[str, int]:
        table = schema.agents
        with self.store.begin() as conn:
            rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status)).all()
        return {str(status): int(n) for status, n in rows}

    def decision_rates(self, window_s: int = 60) -> dict[str, float]:
        """Decisions per second over the last ``window_s``, allowed and denied."""
        table = schema.audit_entries
        since = utcnow() - timedelta(seconds=window_s)
        with self.store.begin() as conn:
            rows = conn.execute(
                select(table.c.decision, func.count())
                .where(table.c.kind == "decision", table.c.at >= since)
                .group_by(table.c.decision)
            ).all()
        counts = {str(d): int(n) for d, n in rows}
        return {
            "allow": counts.get("allow", 0) / window_s,
            "deny": counts.get("deny", 0) / window_s,
            "allow_total": counts.get("allow", 0),
            "deny_total": counts.get("deny", 0),
        }

    def checkpoint(self) -> CheckpointState:
        """The newest checkpoint, and whether it verifies: its signature with the log's key,
        its root against the stored tree, and consistency with the last one seen here."""
        table = schema.audit_checkpoints
        with self.store.begin() as conn:
            row = conn.execute(
                select(table.c.size, table.c.note, table.c.at)
                .order_by(table.c.size.desc())
                .limit(1)
            ).first()
            if row is None:
                return CheckpointState(0, None, False, "no checkpoint yet")
            size, note, at = int(row.size), str(row.note), as_utc(row.at)
            try:
                signed = verify_checkpoint(note, self._key)
                tree = TreeStore(conn)
                root = merkle.subtree_hash(0, size, tree.perfect) if size else signed.root
            except (CheckpointInvalid, AuditError) as exc:
                return CheckpointState(size, at, False, str(exc))
        if root != signed.root:
            return CheckpointState(size, at, False, "the stored tree does not match its root")
        if self._seen is not None and self._seen[0] < size:
            proof = self.reader.consistency_proof(self._seen[0], size)
            if not merkle.verify_consistency(self._seen[0], size, self._seen[1], root, proof):
                return CheckpointState(size, at, False, "not consistent with the one before")
        if self._seen is None or self._seen[0] < size:
            self._seen = (size, root)
        return CheckpointState(size, at, True, "")

    # -- agents --------------------------------------------------------------------------------

    def activity(self, subject: str | None = None) -> dict[str, AgentActivity]:
        """Risk trend, last seen and counts per agent (SPIFFE ID) from recent decisions."""
        table = schema.audit_entries
        query = (
            select(table.c.subject, table.c.entry)
            .where(table.c.kind == "decision")
            .order_by(table.c.seq.desc())
            .limit(RECENT_DECISIONS)
        )
        if subject is not None:
            query = query.where(table.c.subject == subject)
        with self.store.begin() as conn:
            rows = conn.execute(query).all()
        out: dict[str, AgentActivity] = defaultdict(AgentActivity)
        for row in reversed(rows):  # oldest first
            entry = json.loads(row.entry)
            seen = out[str(row.subject)]
            seen.decisions += 1
            seen.denied += entry.get("decision") == "deny"
            risk = entry.get("risk") or {}
            if isinstance(risk.get("score"), int):
                seen.risk.append(risk["score"])
                seen.level = str(risk.get("level", "unknown"))
            seen.last_seen = str(entry.get("at", ""))
        for seen in out.values():
            seen.risk = seen.risk[-TREND_POINTS:]
        return out

    def recent(
        self, *, subject: str | None = None, kind: str | None = "decision", limit: int = 50
    ) -> list[dict[str, Any]]:
        return self.reader.search(agent=subject, kind=kind, limit=limit)

    def baseline(self, subject: str) -> dict[str, Any] | None:
        """The agent's saved behavioural baseline, summarised for people."""
        from warden.risk.engine import Learning, summarise

        table = schema.risk_baselines
        with self.store.begin() as conn:
            saved = conn.execute(
                select(table.c.baseline).where(table.c.subject == subject)
            ).scalar_one_or_none()
        if saved is None:
            return None
        return summarise(saved, utcnow().timestamp(), self.learning or Learning())

    def credentials_seen(self, subject: str) -> list[dict[str, Any]]:
        """The credentials (X.509 serials, JWT ids) the agent's recent decisions carried."""
        seen: dict[str, dict[str, Any]] = {}
        for entry in self.recent(subject=subject, limit=500):  # newest first
            credential = str(entry.get("subject", {}).get("credential") or "")
            if credential and credential not in seen:
                seen[credential] = {
                    "id": credential,
                    "authn": entry.get("subject", {}).get("authn") or "",
                    "last_used": str(entry.get("at", "")),
                }
        return list(seen.values())[:10]

    def revoked_serials(self, spiffe_id: str) -> list[dict[str, Any]]:
        table = schema.revoked_credentials
        with self.store.begin() as conn:
            rows = conn.execute(select(table).where(table.c.spiffe_id == spiffe_id).limit(50)).all()
        return [dict(r._mapping) for r in rows]

    def health_report(self, name: str) -> dict[str, Any] | None:
        table = schema.workload_health
        with self.store.begin() as conn:
            row = conn.execute(select(table).where(table.c.agent_name == name)).first()
        if row is None:
            return None
        return {
            "tool": row.tool,
            "counts": {k: len(v) for k, v in (row.counts or {}).items()},
            "cleared": len(row.cleared or {}),
            "digests": list(row.digests or [])[:4],
            "reported_at": as_utc(row.reported_at),
            "reported_by": row.reported_by,
        }

    # -- flows ---------------------------------------------------------------------------------

    def flows(self, window_s: int) -> list[tuple[str, str, int, int]]:
        """(agent, resource, requests, denied) over the last ``window_s``."""
        table = schema.audit_entries
        since = utcnow() - timedelta(seconds=window_s)
        with self.store.begin() as conn:
            rows = conn.execute(
                select(table.c.entry)
                .where(table.c.kind == "decision", table.c.at >= since)
                .order_by(table.c.seq.desc())
                .limit(20_000)
            ).all()
        counts: Counter[tuple[str, str]] = Counter()
        denied: Counter[tuple[str, str]] = Counter()
        for row in rows:
            entry = json.loads(row.entry)
            resource = entry.get("resource", {})
            key = (
                short_agent(str(entry.get("subject", {}).get("id", ""))),
                f"{resource.get('type', '')}::{resource.get('id', '')}",
            )
            counts[key] += 1
            denied[key] += entry.get("decision") == "deny"
        return [(a, r, n, denied[(a, r)]) for (a, r), n in counts.most_common(60)]

    # -- policies ------------------------------------------------------------------------------

    def policy_events(self, limit: int = 20) -> list[dict[str, Any]]:
        table = schema.policy_events
        with self.store.begin() as conn:
            rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

    def last_failure(self) -> dict[str, Any] | None:
        table = schema.policy_events
        with self.store.begin() as conn:
            row = conn.execute(
                select(table)
                .where(table.c.outcome == "rejected")
                .order_by(table.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else dict(row._mapping)

    def new_decisions(self, after_seq: int, limit: int = 200) -> tuple[int, list[dict[str, Any]]]:
        """Decision entries after ``after_seq``, oldest first, and the newest seq seen."""
        table = schema.audit_entries
        with self.store.begin() as conn:
            rows = conn.execute(
                select(table.c.seq, table.c.kind, table.c.entry)
                .where(table.c.seq > after_seq)
                .order_by(table.c.seq)
                .limit(limit)
            ).all()
        if not rows:
            return after_seq, []
        found = [json.loads(r.entry) for r in rows if r.kind == "decision"]
        return int(rows[-1].seq), found

    def newest_seq(self) -> int:
        table = schema.audit_entries
        with self.store.begin() as conn:
            found = conn.execute(select(func.max(table.c.seq))).scalar_one_or_none()
        return -1 if found is None else int(found)
