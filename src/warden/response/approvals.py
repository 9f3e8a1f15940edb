"""Approvals: requests a playbook parked for the agent's owner, and releases that need one.

An approval is pending until an approver (or the agent's owner) approves or denies it, or its
time runs out (then it is ``timed_out``, which denies). Every change is one conditional
``UPDATE ... WHERE status = 'pending'``, so an approval and a timeout racing each other cannot
both win, whichever process they run in. Approving a release carries it out: the quarantine or
restriction is lifted in the same call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from warden.clock import as_utc, isoformat, utcnow
from warden.errors import ConflictError, NotFoundError, UntrustedInputError
from warden.store import Store, schema

PENDING = "pending"
FINAL = ("approved", "denied", "timed_out")


@dataclass(frozen=True)
class Approval:
    id: str
    agent: str
    kind: str  # request | release
    action: str  # the parked action (http:POST...), or release:<what>
    resource: str
    decision_id: str | None
    detail: dict[str, Any]
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "kind": self.kind,
            "action": self.action,
            "resource": self.resource,
            "decision_id": self.decision_id,
            "detail": self.detail,
            "status": self.status,
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at),
            "decided_by": self.decided_by,
            "decided_at": isoformat(self.decided_at) if self.decided_at else None,
            "reason": self.reason,
        }


def _approval(row: Any) -> Approval:
    return Approval(
        id=row.id,
        agent=row.agent,
        kind=row.kind,
        action=row.action,
        resource=row.resource,
        decision_id=row.decision_id,
        detail=dict(row.detail),
        status=row.status,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        decided_by=row.decided_by,
        decided_at=as_utc(row.decided_at) if row.decided_at else None,
        reason=row.reason,
    )


class ApprovalNotFound(NotFoundError):
    def __init__(self, approval_id: str) -> None:
        super().__init__(f"no approval {approval_id!r}")


class Approvals:
    """The approvals table; ``on_release(approval)`` carries out an approved release."""

    def __init__(self, store: Store, on_release: Callable[[Approval], None] | None = None) -> None:
        self._store = store
        self.on_release = on_release

    def park(
        self,
        *,
        agent: str,
        action: str,
        resource: str,
        decision_id: str | None,
        detail: dict[str, Any],
        timeout_s: float,
        kind: str = "request",
    ) -> Approval:
        now = utcnow()
        approval_id = str(uuid.uuid4())
        with self._store.begin() as conn:
            conn.execute(
                schema.approvals.insert().values(
                    id=approval_id,
                    agent=agent,
                    kind=kind,
                    action=action[:256],
                    resource=resource[:2048],
                    decision_id=decision_id,
                    detail=detail,
                    status=PENDING,
                    created_at=now,
                    expires_at=now + timedelta(seconds=timeout_s),
                    reason="",
                )
            )
        return self.get(approval_id)

    def get(self, approval_id: str) -> Approval:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.approvals).where(schema.approvals.c.id == approval_id)
            ).one_or_none()
        if row is None:
            raise ApprovalNotFound(approval_id)
        return _approval(row)

    def list(
        self, *, status: str | None = None, agent: str | None = None, limit: int = 100
    ) -> list[Approval]:
        self.expire()
        table = schema.approvals
        query = select(table).order_by(table.c.created_at.desc()).limit(min(limit, 1000))
        if status is not None:
            query = query.where(table.c.status == status)
        if agent is not None:
            query = query.where(table.c.agent == agent)
        with self._store.begin() as conn:
            return [_approval(r) for r in conn.execute(query).all()]

    def decide(self, approval_id: str, *, approve: bool, by: str, reason: str = "") -> Approval:
        """Approve or deny a pending approval; an expired one times out instead (and says so).
        An approved release is carried out before this returns."""
        current = self.get(approval_id)
        if current.status != PENDING:
            raise ConflictError(f"approval {approval_id} is {current.status} already")
        if utcnow() >= current.expires_at:
            self._settle(approval_id, "timed_out", "warden", "no decision in time")
            raise ConflictError(f"approval {approval_id} timed out before it was decided")
        status = "approved" if approve else "denied"
        if not self._settle(approval_id, status, by, reason):
            raise ConflictError(f"approval {approval_id} was decided by someone else first")
        decided = self.get(approval_id)
        if approve and decided.kind == "release" and self.on_release is not None:
            self.on_release(decided)
        return decided

    def time_out(self, approval_id: str) -> bool:
        """Settle a pending approval as timed out (its waiter gave up); False if it was
        decided first."""
        return self._settle(approval_id, "timed_out", "warden", "no decision in time")

    def expire(self) -> int:
        """Time out every pending approval past its deadline."""
        table = schema.approvals
        with self._store.begin() as conn:
            return int(
                conn.execute(
                    table.update()
                    .where(table.c.status == PENDING, table.c.expires_at <= utcnow())
                    .values(
                        status="timed_out",
                        decided_by="warden",
                        decided_at=utcnow(),
                        reason="no decision in time",
                    )
                ).rowcount
            )

    def _settle(self, approval_id: str, status: str, by: str, reason: str) -> bool:
        if status not in FINAL:
            raise UntrustedInputError(f"unknown approval outcome {status!r}")
        table = schema.approvals
        with self._store.begin() as conn:
            done = conn.execute(
                table.update()
                .where(table.c.id == approval_id, table.c.status == PENDING)
                .values(
                    status=status, decided_by=by[:2048], decided_at=utcnow(), reason=reason[:2000]
                )
            ).rowcount
        return bool(done)
