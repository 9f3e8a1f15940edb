"""The risk engine of a running process: baselines loaded from the store at start and saved
back as they change, trust events (workload health, DLP breaches) fed in, and the engine set
as the policy engine's live ``risk`` source."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from warden.clock import utcnow
from warden.config import Settings
from warden.policy.engine import PolicyEngine
from warden.risk.engine import Learning, RiskEngine
from warden.risk.observation import Signal
from warden.store import Store, schema
from warden.trust.events import TrustEvent, TrustEvents

SAVE_EVERY_S = 5.0  # how often changed baselines are written (and once more at a stop)


class BaselineStore:
    """Baselines as JSON rows, one per agent."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, baselines: dict[str, dict[str, Any]]) -> int:
        if not baselines:
            return 0
        table = schema.risk_baselines
        now = utcnow()
        with self.store.begin() as conn:
            conn.execute(table.delete().where(table.c.subject.in_(list(baselines))))
            conn.execute(
                table.insert(),
                [{"subject": s, "baseline": b, "saved_at": now} for s, b in baselines.items()],
            )
        return len(baselines)

    def load(self) -> dict[str, dict[str, Any]]:
        table = schema.risk_baselines
        with self.store.begin() as conn:
            rows = conn.execute(select(table.c.subject, table.c.baseline)).all()
        return {row.subject: row.baseline for row in rows}


def learning_of(settings: Settings) -> Learning:
    """The learning period the settings name."""
    return Learning(settings.risk_learning_requests, settings.risk_learning_s)


def open_risk_engine(
    store: Store,
    engine: PolicyEngine,
    events: TrustEvents,
    fingerprint: Any,
    redis_url: str = "",
    breaker: Any = None,
    tls: Any = None,
    learning: Learning | None = None,
) -> tuple[RiskEngine, BaselineStore]:
    """A risk engine with the saved baselines, fed by ``events``, read by ``engine``; with
    ``redis_url``, its scores shared with every other enforcement point, and theirs read."""
    saved = BaselineStore(store)
    risk = RiskEngine(fingerprint, events=events, learning=learning or Learning())
    risk.load(saved.load())
    events.subscribe(lambda event: _feed(risk, event))
    if redis_url:
        from warden.shared.client import connect
        from warden.shared.risk import SharedRisk

        engine.set_signal_source("risk", SharedRisk(risk, connect(redis_url, tls), breaker))
    else:
        engine.set_signal_source("risk", risk)
    return risk, saved


def save_baselines(risk: RiskEngine, saved: BaselineStore) -> None:
    """Write the baselines changed since the last save (a periodic duty, and at a stop)."""
    changed = risk.baselines()
    try:
        saved.save(changed)
    except Exception:
        risk.dirty.update(changed)  # kept for the next attempt
        raise


def _feed(risk: RiskEngine, event: TrustEvent) -> None:
    if event.kind == "risk_changed":  # the engine's own
        return
    risk.signal(Signal(event.agent, risk.clock(), event.kind, event.detail))
