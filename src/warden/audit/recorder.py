"""The one interface through which decisions are recorded.

Nothing is answered or forwarded before its record is durable. The tamper-evident Merkle log
implements this interface; :class:`StoreDecisionRecorder` is the plain store-backed record it
replaces.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select

from warden.errors import AuditError, StoreError
from warden.policy.model import Decision, DecisionRequest
from warden.store import Store, schema


class DecisionRecorder(Protocol):
    """Makes a decision durable; raises :class:`AuditError` when it cannot (the caller denies)."""

    def record(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None: ...


def decision_record(
    decision: Decision, request: DecisionRequest, enforcement_point: str
) -> dict[str, Any]:
    """The full story of one decision."""
    return {
        **decision.to_dict(),
        "enforcement_point": enforcement_point,
        "request": request.to_dict(),
        "errors": list(decision.errors),
    }


class StoreDecisionRecorder:
    """Decision records as rows in the store, committed before ``record`` returns."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None:
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.decision_records.insert().values(
                        decision_id=decision.decision_id,
                        at=decision.at,
                        enforcement_point=enforcement_point,
                        subject=request.subject_id,
                        action=request.action,
                        resource=f"{request.resource.type}:{request.resource.id}"[:2048],
                        decision=decision.decision,
                        record=decision_record(decision, request, enforcement_point),
                    )
                )
        except StoreError as exc:
            raise AuditError(
                f"decision {decision.decision_id} not recorded: {exc}", code="record_failed"
            ) from exc

    def get(self, decision_id: str) -> dict[str, Any] | None:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.decision_records.c.record).where(
                    schema.decision_records.c.decision_id == decision_id
                )
            ).one_or_none()
        return None if row is None else dict(row.record)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        table = schema.decision_records
        with self._store.begin() as conn:
            rows = conn.execute(
                select(table.c.record).order_by(table.c.seq.desc()).limit(limit)
            ).all()
        return [dict(r.record) for r in rows]
