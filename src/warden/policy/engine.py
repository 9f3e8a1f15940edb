"""The policy engine as enforcement points use it: the current snapshot, kept current, plus
shadow decisions and the atomic reservation of work-order uses.

Snapshots are rebuilt off the request path (when the bundle, an agent or a work order changes)
and swapped in whole; :meth:`PolicyEngine.decide` only reads the current one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from warden.clock import utcnow
from warden.identity.feed import FeedEntry, PrincipalView
from warden.policy.administrator import PolicyAdministrator
from warden.policy.bundle import CompiledBundle
from warden.policy.decide import decide
from warden.policy.model import Decision, DecisionRequest, Reason, new_decision_id
from warden.policy.snapshot import AgentFacts, EntityCache, PolicySnapshot, Signal
from warden.policy.workorders import WorkOrder, WorkOrderNotFound, WorkOrderStore
from warden.store import Store, schema

log = logging.getLogger("warden.policy")


class PolicyEngine:
    """Current snapshot, shadow comparison, work-order reservation."""

    def __init__(
        self,
        store: Store,
        administrator: PolicyAdministrator,
        *,
        view: PrincipalView | None = None,
        signal_max_age_s: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.clock = clock  # what "now" is for decisions (a simulator drives its own)
        self.administrator = administrator
        self.work_orders = WorkOrderStore(store)
        self._lock = threading.Lock()
        self._cache = EntityCache()
        self._shadow_cache = EntityCache()
        self._signal_max_age = signal_max_age_s
        self._agents: dict[str, AgentFacts] = {}
        self._orders: dict[str, tuple[WorkOrder, ...]] = {}
        self._signals: dict[str, Mapping[str, Signal]] = {"risk": {}, "health": {}, "dlp": {}}
        self._live: set[str] = set()  # kinds read from a live source
        self.snapshot: PolicySnapshot | None = None
        self.built_at = time.monotonic()
        # Where the bundle comes from another process: why it is too old to decide with
        # (None: it is fresh). Every decision is refused while it says so.
        self.freshness: Callable[[], str | None] | None = None
        self.shadow_snapshot: PolicySnapshot | None = None
        self.reload_agents()
        self.reload_work_orders()
        administrator.add_listener(self._rebuild)
        if view is not None:
            view.add_listener(self._on_feed)
        self._rebuild()

    # -- keeping the snapshot current ---------------------------------------------------------

    def reload_agents(self, spiffe_ids: set[str] | None = None) -> None:
        table = schema.agents
        query = select(
            table.c.spiffe_id,
            table.c.owner,
            table.c.labels,
            table.c.groups,
            table.c.status,
            table.c.containment,
        )
        if spiffe_ids is not None:
            query = query.where(table.c.spiffe_id.in_(spiffe_ids))
        with self._store.begin() as conn:
            rows = conn.execute(query).all()
        found = {
            r.spiffe_id: AgentFacts.of(
                r.spiffe_id, r.owner, r.labels, list(r.groups or []), r.status, r.containment
            )
            for r in rows
        }
        with self._lock:
            agents = dict(self._agents) if spiffe_ids is not None else {}
            if spiffe_ids is not None:
                for gone in spiffe_ids - found.keys():
                    agents.pop(gone, None)
            agents.update(found)
            self._agents = agents
        self._rebuild()

    def reload_work_orders(self) -> None:
        orders: dict[str, list[WorkOrder]] = {}
        for order in self.work_orders.list(open_only=True):
            orders.setdefault(order.agent, []).append(order)
        with self._lock:
            self._orders = {k: tuple(v) for k, v in orders.items()}
        self._rebuild()

    def set_signals(self, kind: str, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the live signals of one kind (``risk``, ``health``, ``dlp``) for agents."""
        if kind not in self._signals:
            raise ValueError(f"unknown signal kind {kind!r}")
        if kind in self._live:
            raise ValueError(f"{kind} signals come from a live source on this engine")
        now = self.clock()
        with self._lock:
            merged = dict(self._signals[kind])
            merged.update({agent: Signal(dict(v), now) for agent, v in values.items()})
            self._signals[kind] = merged
        self._rebuild()

    def set_signal_source(self, kind: str, source: Mapping[str, Signal]) -> None:
        """Read one kind of signal live from ``source`` (its ``get`` is called at each
        decision, in memory: DLP windows, the health book) instead of from set values."""
        if kind not in self._signals:
            raise ValueError(f"unknown signal kind {kind!r}")
        with self._lock:
            self._signals[kind] = source
            self._live.add(kind)
        self._rebuild()

    def _on_feed(self, entries: list[FeedEntry]) -> None:
        changed = {e.spiffe_id for e in entries if e.change != "credential"}
        if changed:
            self.reload_agents(changed)

    def _rebuild(self) -> None:
        administrator = self.administrator
        with self._lock:
            self.snapshot = self._snapshot(administrator.active, self._cache)
            self.shadow_snapshot = self._snapshot(administrator.shadow, self._shadow_cache)
            self.built_at = time.monotonic()  # for the snapshot-age metric

    def _snapshot(self, bundle: CompiledBundle | None, cache: EntityCache) -> PolicySnapshot | None:
        if bundle is None:
            return None
        return PolicySnapshot(
            bundle=bundle,
            agents=self._agents,
            work_orders=self._orders,
            risk=self._signals["risk"],
            health=self._signals["health"],
            dlp=self._signals["dlp"],
            signal_max_age_s=self._signal_max_age,
            entity_cache=cache,
        )

    # -- deciding ------------------------------------------------------------------------------

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide with the active bundle; compare with the shadow bundle, never enforcing it."""
        snapshot = self.snapshot
        if snapshot is None:
            return _refused("no_policies", "no policy bundle is active")
        if self.freshness is not None and (stale := self.freshness()):
            return _refused("policy_snapshot_stale", stale)  # the last good one is too old
        now = self.clock()
        decision = decide(request, snapshot, now=now)
        shadow = self.shadow_snapshot
        if shadow is not None:
            candidate = decide(request, shadow, now=now, decision_id=decision.decision_id)
            if candidate.decision != decision.decision:
                self._record_flip(request, decision, candidate)
        return decision

    def reserve(self, decision: Decision) -> Decision:
        """Take what an allow consumes (a work-order use), atomically, before it takes effect.
        A use that cannot be taken turns the decision into a deny."""
        if not decision.allowed or decision.work_order is None:
            return decision
        if self.work_orders.consume(decision.work_order):
            self._refresh_order(decision.work_order)
            return decision
        self._refresh_order(decision.work_order)
        return replace(
            decision,
            decision="deny",
            obligations=(),
            work_order=None,
            reasons=(
                Reason(
                    "work-order-exhausted",
                    "forbid",
                    "the work order has no use left, expired or was closed",
                ),
            ),
        )

    def _refresh_order(self, order_id: str) -> None:
        try:
            order = self.work_orders.get(order_id)
        except WorkOrderNotFound:
            self.reload_work_orders()
            return
        with self._lock:
            orders = dict(self._orders)
            others = tuple(o for o in orders.get(order.agent, ()) if o.id != order_id)
            orders[order.agent] = (*others, order) if order.usable_at(self.clock()) else others
            self._orders = orders
        self._rebuild()

    def _record_flip(self, request: DecisionRequest, active: Decision, shadow: Decision) -> None:
        assert self.snapshot is not None and self.shadow_snapshot is not None
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.shadow_flips.insert().values(
                        at=active.at,
                        decision_id=active.decision_id,
                        active_revision=self.snapshot.bundle.revision,
                        shadow_revision=self.shadow_snapshot.bundle.revision,
                        active=active.decision,
                        shadow=shadow.decision,
                        request=request.to_dict(),
                        shadow_reasons=[r.to_dict() for r in shadow.reasons],
                    )
                )
        except Exception as exc:  # a shadow never affects the real decision
            log.warning("cannot record a shadow flip: %s", exc)


def _refused(policy: str, why: str) -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        decision="deny",
        reasons=(Reason(policy, "forbid", why),),
        obligations=(),
        risk={"score": 1000, "level": "unknown", "factors": []},
        policy_revision="",
        work_order=None,
        at=utcnow(),
    )


def shadow_report(store: Store, limit: int = 20) -> dict[str, Any]:
    """Counts of flips by direction, and the most recent ones."""
    table = schema.shadow_flips
    with store.begin() as conn:
        rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(10_000)).all()
    counts = {"allow->deny": 0, "deny->allow": 0}
    for row in rows:
        counts[f"{row.active}->{row.shadow}"] = counts.get(f"{row.active}->{row.shadow}", 0) + 1
    return {
        "counts": counts,
        "recent": [
            {
                "at": str(r.at),
                "decision_id": r.decision_id,
                "active": r.active,
                "shadow": r.shadow,
                "request": r.request,
                "shadow_reasons": r.shadow_reasons,
            }
            for r in rows[:limit]
        ],
    }
