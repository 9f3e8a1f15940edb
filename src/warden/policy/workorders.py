"""Work orders: just-in-time, task-scoped grants that bind one agent to one task.

A work order names a ticket, the actions and resources it covers, constraints on tool
arguments, a start, an expiry, a maximum number of uses and the operator who issued it. The
decision point matches them purely (:func:`matching_work_order`); the enforcement point
consumes a use atomically in the store before it forwards (:meth:`WorkOrderStore.consume`), so
concurrent requests never exceed the maximum.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import re2
from sqlalchemy import Row, select

from warden.clock import as_utc, isoformat, utcnow
from warden.errors import NotFoundError, UntrustedInputError
from warden.store import Store, schema

Op = Literal["equals", "one_of", "min", "max", "prefix", "regex"]
OPS: tuple[Op, ...] = ("equals", "one_of", "min", "max", "prefix", "regex")
MAX_CONSTRAINTS = 32
MAX_REGEX = 512


class InvalidWorkOrder(UntrustedInputError):
    code = "invalid_work_order"
    public_message = "invalid work order"


class WorkOrderNotFound(NotFoundError):
    code = "work_order_not_found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no work order {order_id!r}")


@dataclass(frozen=True)
class Constraint:
    """One condition on a tool or request argument."""

    arg: str
    op: Op
    value: Any

    def __post_init__(self) -> None:
        if not self.arg or len(self.arg) > 64:
            raise InvalidWorkOrder(f"constraint argument name {self.arg!r} is invalid")
        if self.op not in OPS:
            raise InvalidWorkOrder(f"constraint op {self.op!r}; use one of {', '.join(OPS)}")
        if self.op in ("min", "max") and not _is_number(self.value):
            raise InvalidWorkOrder(f"{self.op} takes a number")
        if self.op == "one_of" and not (isinstance(self.value, list) and self.value):
            raise InvalidWorkOrder("one_of takes a non-empty list")
        if self.op in ("prefix", "regex") and not isinstance(self.value, str):
            raise InvalidWorkOrder(f"{self.op} takes a string")
        if self.op == "regex":
            if len(self.value) > MAX_REGEX:
                raise InvalidWorkOrder("regular expression too long")
            try:
                object.__setattr__(self, "_compiled", re2.compile(self.value))
            except re2.error as exc:
                raise InvalidWorkOrder(f"invalid regular expression: {exc}") from exc

    def allows(self, args: Mapping[str, Any]) -> bool:
        """Whether ``args`` satisfies this constraint (a missing argument never does)."""
        if self.arg not in args:
            return False
        value = args[self.arg]
        if self.op == "equals":
            return bool(value == self.value) and type(value) is type(self.value)
        if self.op == "one_of":
            return any(value == v and type(value) is type(v) for v in self.value)
        if self.op == "min":
            return _is_number(value) and value >= self.value
        if self.op == "max":
            return _is_number(value) and value <= self.value
        if self.op == "prefix":
            return isinstance(value, str) and value.startswith(self.value)
        # regex: linear-time RE2, anchored at both ends
        compiled = getattr(self, "_compiled")  # noqa: B009
        return isinstance(value, str) and compiled.fullmatch(value) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"arg": self.arg, "op": self.op, "value": self.value}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class WorkOrder:
    id: str
    agent: str  # SPIFFE ID
    ticket: str
    actions: frozenset[str]
    resources: tuple[str, ...]  # "Type:id", or "Type:prefix*"
    constraints: tuple[Constraint, ...]
    not_before: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    status: str  # open | closed
    issued_by: str
    created_at: datetime
    reason: str = ""

    def covers(self, action: str, resource_type: str, resource_id: str) -> bool:
        if action not in self.actions:
            return False
        key = f"{resource_type}:{resource_id}"
        return any(key.startswith(p[:-1]) if p.endswith("*") else key == p for p in self.resources)

    def usable_at(self, now: datetime) -> bool:
        return (
            self.status == "open"
            and self.not_before <= now < self.expires_at
            and self.uses < self.max_uses
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "ticket": self.ticket,
            "actions": sorted(self.actions),
            "resources": list(self.resources),
            "constraints": [c.to_dict() for c in self.constraints],
            "not_before": isoformat(self.not_before),
            "expires_at": isoformat(self.expires_at),
            "max_uses": self.max_uses,
            "uses": self.uses,
            "status": self.status,
            "issued_by": self.issued_by,
            "created_at": isoformat(self.created_at),
            "reason": self.reason,
        }


def matching_work_order(
    orders: Iterable[WorkOrder],
    *,
    action: str,
    resource_type: str,
    resource_id: str,
    args: Mapping[str, Any],
    now: datetime,
) -> WorkOrder | None:
    """The usable work order that covers this request and whose constraints all hold; the one
    expiring soonest when several do. Pure."""
    found = [
        o
        for o in orders
        if o.usable_at(now)
        and o.covers(action, resource_type, resource_id)
        and all(c.allows(args) for c in o.constraints)
    ]
    return min(found, key=lambda o: (o.expires_at, o.id)) if found else None


def parse_constraint(text: str) -> Constraint:
    """``rows<=100``, ``rows>=1``, ``format=csv``, ``format in csv,json``, ``path^=/reports/``,
    ``account~=[0-9]{8}``: the command line's short forms."""
    for token, op in (("<=", "max"), (">=", "min"), ("^=", "prefix"), ("~=", "regex")):
        if token in text:
            arg, value = text.split(token, 1)
            if op in ("max", "min"):
                try:
                    number: Any = (
                        int(value) if value.strip().lstrip("-").isdigit() else float(value)
                    )
                except ValueError as exc:
                    raise InvalidWorkOrder(f"{text!r}: {op} takes a number") from exc
                return Constraint(arg.strip(), op, number)  # type: ignore[arg-type]
            return Constraint(arg.strip(), op, value)  # type: ignore[arg-type]
    if " in " in text:
        arg, values = text.split(" in ", 1)
        return Constraint(arg.strip(), "one_of", [v.strip() for v in values.split(",")])
    if "=" in text:
        arg, value = text.split("=", 1)
        typed: Any = int(value) if value.strip().lstrip("-").isdigit() else value
        return Constraint(arg.strip(), "equals", typed)
    raise InvalidWorkOrder(f"cannot read constraint {text!r}")


def _row(row: Row[Any]) -> WorkOrder:
    return WorkOrder(
        id=row.id,
        agent=row.agent,
        ticket=row.ticket,
        actions=frozenset(row.actions),
        resources=tuple(row.resources),
        constraints=tuple(Constraint(c["arg"], c["op"], c["value"]) for c in row.constraints),
        not_before=as_utc(row.not_before),
        expires_at=as_utc(row.expires_at),
        max_uses=row.max_uses,
        uses=row.uses,
        status=row.status,
        issued_by=row.issued_by,
        created_at=as_utc(row.created_at),
        reason=row.reason,
    )


class WorkOrderStore:
    """Work orders in the store; ``consume`` is the one atomic step on the request path."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        *,
        agent: str,
        ticket: str,
        actions: Iterable[str],
        resources: Iterable[str],
        constraints: Iterable[Constraint] = (),
        ttl_s: int = 3600,
        not_before: datetime | None = None,
        max_uses: int = 1,
        issued_by: str,
        reason: str = "",
        now: datetime | None = None,
    ) -> WorkOrder:
        now = now or utcnow()
        actions = sorted(set(actions))
        resources = list(resources)
        constraints = list(constraints)
        if not ticket or len(ticket) > 128:
            raise InvalidWorkOrder("a work order needs a ticket id (at most 128 characters)")
        if not actions or not resources:
            raise InvalidWorkOrder("a work order names at least one action and one resource")
        for resource in resources:
            if ":" not in resource or len(resource) > 1024:
                raise InvalidWorkOrder(f"resource {resource!r} is not TYPE:ID (or TYPE:PREFIX*)")
        if len(constraints) > MAX_CONSTRAINTS:
            raise InvalidWorkOrder(f"at most {MAX_CONSTRAINTS} constraints")
        if not 1 <= max_uses <= 1_000_000:
            raise InvalidWorkOrder("max uses is 1 to 1,000,000")
        if not 1 <= ttl_s <= 30 * 86_400:
            raise InvalidWorkOrder("a work order lives 1 s to 30 days")
        order_id = "wo-" + uuid.uuid4().hex[:16]
        start = not_before or now
        with self._store.begin() as conn:
            conn.execute(
                schema.work_orders.insert().values(
                    id=order_id,
                    agent=agent,
                    ticket=ticket,
                    actions=actions,
                    resources=resources,
                    constraints=[c.to_dict() for c in constraints],
                    not_before=start,
                    expires_at=start + timedelta(seconds=ttl_s),
                    max_uses=max_uses,
                    uses=0,
                    status="open",
                    issued_by=issued_by,
                    created_at=now,
                    reason=reason[:2000],
                    closed_at=None,
                )
            )
        return self.get(order_id)

    def get(self, order_id: str) -> WorkOrder:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.work_orders).where(schema.work_orders.c.id == order_id)
            ).one_or_none()
        if row is None:
            raise WorkOrderNotFound(order_id)
        return _row(row)

    def list(self, *, agent: str | None = None, open_only: bool = False) -> list[WorkOrder]:
        query = select(schema.work_orders).order_by(schema.work_orders.c.created_at)
        if agent is not None:
            query = query.where(schema.work_orders.c.agent == agent)
        if open_only:
            query = query.where(schema.work_orders.c.status == "open")
        with self._store.begin() as conn:
            return [_row(r) for r in conn.execute(query)]

    def close(self, order_id: str, reason: str = "") -> WorkOrder:
        table = schema.work_orders
        with self._store.begin() as conn:
            updated = conn.execute(
                table.update()
                .where(table.c.id == order_id)
                .where(table.c.status == "open")
                .values(status="closed", closed_at=utcnow(), reason=reason[:2000])
            ).rowcount
        order = self.get(order_id)
        if not updated and order.status != "closed":
            raise WorkOrderNotFound(order_id)
        return order

    def consume(self, order_id: str, now: datetime | None = None) -> bool:
        """Take one use, atomically; False when none is left (or it expired or was closed)."""
        now = now or utcnow()
        table = schema.work_orders
        with self._store.begin() as conn:
            updated = conn.execute(
                table.update()
                .where(table.c.id == order_id)
                .where(table.c.status == "open")
                .where(table.c.uses < table.c.max_uses)
                .where(table.c.not_before <= now)
                .where(table.c.expires_at > now)
                .values(uses=table.c.uses + 1)
            ).rowcount
        return bool(updated)
