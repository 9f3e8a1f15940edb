"""The agent and operator registries: who exists, who sponsors them, and their status.

Every non-person entity has an accountable owner. Status moves between ``active``, ``disabled``
(suspended; its credentials work again once enabled) and ``revoked`` (every credential issued so
far is dead for good: the credential epoch is bumped; enabling re-provisions it with new ones).
A deleted agent's SPIFFE ID is kept retired until every credential it could hold has expired.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, func, select
from sqlalchemy.exc import IntegrityError

from warden.clock import as_utc, isoformat, utcnow
from warden.config import Settings
from warden.errors import StoreError, UntrustedInputError
from warden.identity.attestation.selectors import check_no_overlap, parse_selectors
from warden.identity.errors import (
    AgentNotFound,
    InvalidTransition,
    NameTaken,
    OperatorNotFound,
    SpiffeIdNotReusable,
    TtlOutOfBounds,
)
from warden.identity.feed import append_change
from warden.identity.spiffe_id import SpiffeId, validate_name
from warden.shared.fence import RevocationFence
from warden.store import Store, schema

Status = Literal["active", "disabled", "quarantined", "revoked"]
STATUSES: tuple[Status, ...] = ("active", "disabled", "quarantined", "revoked")
OperatorRole = Literal["admin", "operator", "approver", "auditor"]
OPERATOR_ROLES: tuple[OperatorRole, ...] = ("admin", "operator", "approver", "auditor")
MAX_LABELS = 64
CONTAINMENT_KINDS = ("restrict", "throttle", "approval")
MAX_LABEL_LENGTH = 256


@dataclass(frozen=True)
class Agent:
    """A registered agent (a non-person entity)."""

    id: str
    name: str
    spiffe_id: str
    owner: str
    purpose: str
    labels: dict[str, str]
    selectors: list[str]
    max_svid_ttl_s: int
    status: Status
    credential_epoch: int
    created_at: datetime
    updated_at: datetime
    status_reason: str = ""
    groups: list[str] = field(default_factory=list)
    # What playbooks hold it to (restrict, throttle, approval): kind -> its terms.
    containment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = isoformat(self.created_at)
        data["updated_at"] = isoformat(self.updated_at)
        return data


@dataclass(frozen=True)
class Operator:
    """A person (or their automation) allowed to administer Warden, by role."""

    name: str
    spiffe_id: str
    role: OperatorRole
    status: Status
    credential_epoch: int
    created_at: datetime
    created_by: str
    updated_at: datetime = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = isoformat(self.created_at)
        data["updated_at"] = isoformat(self.updated_at)
        return data


def _check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise UntrustedInputError(f"at most {MAX_LABELS} labels", code="invalid_labels")
    clean: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UntrustedInputError("labels map strings to strings", code="invalid_labels")
        if not key or len(key) > 63 or len(value) > MAX_LABEL_LENGTH:
            raise UntrustedInputError(f"label {key[:63]!r} is too long", code="invalid_labels")
        clean[key] = value
    return clean


def _check_groups(groups: Iterable[str]) -> list[str]:
    """Policy groups (Cedar ``Group`` entities): names like agents', at most 32."""
    clean = sorted({validate_name(g) for g in groups})
    if len(clean) > 32:
        raise UntrustedInputError("at most 32 groups", code="invalid_groups")
    return clean


def _agent(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        spiffe_id=row.spiffe_id,
        owner=row.owner,
        purpose=row.purpose,
        labels=dict(row.labels),
        selectors=list(row.selectors),
        max_svid_ttl_s=row.max_svid_ttl_s,
        status=row.status,
        credential_epoch=row.credential_epoch,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        status_reason=row.status_reason,
        groups=list(row.groups or []),
        containment=dict(row.containment or {}),
    )


def _operator(row: Row[Any]) -> Operator:
    return Operator(
        name=row.name,
        spiffe_id=row.spiffe_id,
        role=row.role,
        status=row.status,
        credential_epoch=row.credential_epoch,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        updated_at=as_utc(row.updated_at),
    )


class AgentRegistry:
    """Agents of one trust domain, kept in the store."""

    def __init__(
        self,
        store: Store,
        trust_domain: str,
        settings: Settings,
        on_change: Callable[[], object] | None = None,
        fence: RevocationFence | None = None,
    ) -> None:
        self._store = store
        self.trust_domain = trust_domain
        self._settings = settings
        self._on_change = on_change or (lambda: None)
        self._fence = fence

    def register(
        self,
        name: str,
        *,
        owner: str,
        purpose: str = "",
        labels: Mapping[str, str] | None = None,
        max_svid_ttl_s: int | None = None,
        selectors: Iterable[str] = (),
        groups: Iterable[str] = (),
        now: datetime | None = None,
        strict_selectors: bool = True,
    ) -> Agent:
        """Register an agent; its SPIFFE ID is ``spiffe://<td>/agent/<name>``.
        ``strict_selectors=False``: see :func:`parse_selectors` (provisioning clients)."""
        validate_name(name)
        group_list = _check_groups(groups)
        wanted = parse_selectors(selectors, strict=strict_selectors)
        owner = owner.strip()
        if not owner or len(owner) > 256:
            raise UntrustedInputError(
                "every agent needs an owner (1-256 characters)", code="owner_required"
            )
        cap = self._settings.x509_svid_max_ttl_s
        ttl = cap if max_svid_ttl_s is None else max_svid_ttl_s
        if not 60 <= ttl <= cap:
            raise TtlOutOfBounds(ttl, cap)
        spiffe_id = str(SpiffeId.for_principal(self.trust_domain, "agent", name))
        now = now or utcnow()
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "spiffe_id": spiffe_id,
            "owner": owner,
            "purpose": purpose[:2000],
            "labels": _check_labels(labels or {}),
            "selectors": sorted(wanted),
            "groups": group_list,
            "max_svid_ttl_s": ttl,
            "status": "active",
            "credential_epoch": 0,
            "created_at": now,
            "updated_at": now,
            "status_reason": "",
        }
        try:
            with self._store.begin() as conn:
                retired = conn.execute(
                    select(schema.retired_spiffe_ids).where(
                        schema.retired_spiffe_ids.c.spiffe_id == spiffe_id
                    )
                ).one_or_none()
                if retired is not None:
                    if as_utc(retired.reusable_at) > now:
                        raise SpiffeIdNotReusable(spiffe_id, isoformat(retired.reusable_at))
                    # Continue the epoch sequence so no old credential matches the new agent.
                    row["credential_epoch"] = retired.last_epoch + 1
                    conn.execute(
                        schema.retired_spiffe_ids.delete().where(
                            schema.retired_spiffe_ids.c.spiffe_id == spiffe_id
                        )
                    )
                if wanted:
                    others = conn.execute(select(schema.agents.c.name, schema.agents.c.selectors))
                    check_no_overlap(wanted, ((r.name, frozenset(r.selectors)) for r in others))
                conn.execute(schema.agents.insert().values(**row))
                append_change(
                    conn,
                    spiffe_id=spiffe_id,
                    change="status",
                    status="active",
                    epoch=row["credential_epoch"],
                    reason="registered",
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NameTaken("agent", name) from exc
            raise
        self._on_change()
        return self.get(name)

    def get(self, name: str) -> Agent:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.agents).where(schema.agents.c.name == name)
            ).one_or_none()
        if row is None:
            raise AgentNotFound(name)
        return _agent(row)

    def find_by_spiffe_id(self, spiffe_id: str) -> Agent | None:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.agents).where(schema.agents.c.spiffe_id == spiffe_id)
            ).one_or_none()
        return None if row is None else _agent(row)

    def list(
        self, *, status: Status | None = None, limit: int = 1000, offset: int = 0
    ) -> list[Agent]:
        query = select(schema.agents).order_by(schema.agents.c.name).limit(limit).offset(offset)
        if status is not None:
            query = query.where(schema.agents.c.status == status)
        with self._store.begin() as conn:
            return [_agent(row) for row in conn.execute(query)]

    def count(self) -> int:
        with self._store.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.agents)).scalar_one())

    def disable(self, name: str, reason: str = "") -> Agent:
        """Suspend an agent: its credentials stop working until it is enabled again."""
        return self._transition(name, "disable", {"active"}, "disabled", reason, bump=False)

    def enable(self, name: str, reason: str = "") -> Agent:
        """Make a disabled or revoked agent active again (a revoked one gets new credentials)."""
        return self._transition(
            name, "enable", {"disabled", "revoked"}, "active", reason, bump=False
        )

    def revoke(self, name: str, reason: str = "") -> Agent:
        """Kill every credential the agent holds now; bumps its credential epoch."""
        return self._transition(
            name,
            "revoke",
            {"active", "disabled", "quarantined", "revoked"},
            "revoked",
            reason,
            bump=True,
        )

    def quarantine(self, name: str, reason: str = "") -> Agent:
        """Contain an agent: no credential of its works until it is released."""
        # A revoked agent may be quarantined too: held for investigation until released.
        return self._transition(
            name, "quarantine", {"active", "disabled", "revoked"}, "quarantined", reason, bump=False
        )

    def release(self, name: str, reason: str = "") -> Agent:
        """End a quarantine."""
        return self._transition(name, "release", {"quarantined"}, "active", reason, bump=False)

    def update(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        groups: Iterable[str] | None = None,
        owner: str | None = None,
    ) -> Agent:
        """Change an agent's policy attributes; policy decision points follow through the feed."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if labels is not None:
            values["labels"] = _check_labels(labels)
        if groups is not None:
            values["groups"] = _check_groups(groups)
        if owner is not None:
            if not owner.strip() or len(owner) > 256:
                raise UntrustedInputError("every agent needs an owner", code="owner_required")
            values["owner"] = owner.strip()
        table = schema.agents
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.spiffe_id, table.c.status, table.c.credential_epoch).where(
                    table.c.name == name
                )
            ).one_or_none()
            if row is None:
                raise AgentNotFound(name)
            conn.execute(table.update().where(table.c.name == name).values(**values))
            append_change(
                conn,
                spiffe_id=row.spiffe_id,
                change="attributes",
                status=row.status,
                epoch=row.credential_epoch,
                reason="updated",
            )
        self._on_change()
        return self.get(name)

    def contain(self, name: str, kind: str, terms: Mapping[str, Any] | None, reason: str) -> bool:
        """Hold the agent to ``terms`` for one kind of containment (restrict, throttle,
        approval), or lift it (``terms`` None). Every decision point follows through the feed.
        False when nothing changed (the same terms were held already): actions repeat safely."""
        if kind not in CONTAINMENT_KINDS:
            raise UntrustedInputError(f"unknown containment {kind!r}", code="invalid_containment")
        table = schema.agents
        with self._store.begin() as conn:
            row = conn.execute(
                select(
                    table.c.spiffe_id, table.c.status, table.c.credential_epoch, table.c.containment
                ).where(table.c.name == name)
            ).one_or_none()
            if row is None:
                raise AgentNotFound(name)
            held = dict(row.containment or {})
            if terms is None:
                if held.pop(kind, None) is None:
                    return False
            else:
                if held.get(kind) == dict(terms):
                    return False
                held[kind] = dict(terms)
            conn.execute(
                table.update()
                .where(table.c.name == name)
                .values(containment=held, updated_at=utcnow())
            )
            append_change(
                conn,
                spiffe_id=row.spiffe_id,
                change="containment",
                status=row.status,
                epoch=row.credential_epoch,
                reason=f"{'lift' if terms is None else 'hold'} {kind}: {reason}",
            )
        self._on_change()
        return True

    def set_selectors(self, name: str, selectors: Iterable[str], *, strict: bool = True) -> Agent:
        """Replace the agent's attestation selectors (refused if they overlap another's)."""
        wanted = parse_selectors(selectors, strict=strict)
        with self._store.begin() as conn:
            rows = conn.execute(select(schema.agents.c.name, schema.agents.c.selectors)).all()
            if name not in {r.name for r in rows}:
                raise AgentNotFound(name)
            check_no_overlap(
                wanted, ((r.name, frozenset(r.selectors)) for r in rows if r.name != name)
            )
            conn.execute(
                schema.agents.update()
                .where(schema.agents.c.name == name)
                .values(selectors=sorted(wanted), updated_at=utcnow())
            )
        return self.get(name)

    def delete(self, name: str, now: datetime | None = None) -> Agent:
        """Remove an agent; its SPIFFE ID stays retired for the maximum SVID lifetime."""
        now = now or utcnow()
        agent = self.get(name)
        ttl = max(self._settings.x509_svid_max_ttl_s, self._settings.jwt_svid_max_ttl_s)
        reusable_at = now + timedelta(seconds=ttl + self._settings.clock_skew_s)
        with self._store.begin() as conn:
            if self._fence is not None:
                self._fence.restrict(agent.spiffe_id, "deleted", agent.credential_epoch)
            conn.execute(schema.agents.delete().where(schema.agents.c.id == agent.id))
            conn.execute(
                schema.retired_spiffe_ids.insert().values(
                    spiffe_id=agent.spiffe_id,
                    retired_at=now,
                    reusable_at=reusable_at,
                    last_epoch=agent.credential_epoch,
                )
            )
            append_change(
                conn,
                spiffe_id=agent.spiffe_id,
                change="deleted",
                status="deleted",
                epoch=agent.credential_epoch,
                reason="deleted",
            )
        self._on_change()
        return agent

    def _transition(
        self,
        name: str,
        action: str,
        allowed: set[str],
        target: Status,
        reason: str,
        *,
        bump: bool,
    ) -> Agent:
        table = schema.agents
        # A status change contains an agent: it goes before the decision log's next group.
        with self._store.urgent() as conn:
            row = conn.execute(
                select(table.c.status, table.c.credential_epoch, table.c.spiffe_id).where(
                    table.c.name == name
                )
            ).one_or_none()
            if row is None:
                raise AgentNotFound(name)
            if row.status not in allowed:
                raise InvalidTransition(name, row.status, action)
            epoch = row.credential_epoch + 1 if bump else row.credential_epoch
            if self._fence is not None:  # in Redis before it commits: no gateway lags it
                self._fence.restrict(row.spiffe_id, target, epoch)
            conn.execute(
                table.update()
                .where(table.c.name == name)
                .values(
                    status=target,
                    updated_at=utcnow(),
                    status_reason=reason[:2000],
                    credential_epoch=epoch,
                )
            )
            append_change(
                conn,
                spiffe_id=row.spiffe_id,
                change="status",
                status=target,
                epoch=epoch,
                reason=f"{action}: {reason}" if reason else action,
            )
        if self._fence is not None and target == "active":
            self._fence.lift(row.spiffe_id)
        self._on_change()
        return self.get(name)


class OperatorRegistry:
    """Operators: principals ``spiffe://<td>/operator/<name>`` with a role."""

    def __init__(
        self, store: Store, trust_domain: str, on_change: Callable[[], object] | None = None
    ) -> None:
        self._store = store
        self.trust_domain = trust_domain
        self._on_change = on_change or (lambda: None)

    def add(self, name: str, *, role: OperatorRole, created_by: str) -> Operator:
        validate_name(name)
        if role not in OPERATOR_ROLES:
            raise UntrustedInputError(
                f"role must be one of {', '.join(OPERATOR_ROLES)}", code="invalid_role"
            )
        now = utcnow()
        spiffe_id = str(SpiffeId.for_principal(self.trust_domain, "operator", name))
        try:
            with self._store.begin() as conn:
                conn.execute(
                    schema.operators.insert().values(
                        name=name,
                        spiffe_id=spiffe_id,
                        role=role,
                        status="active",
                        credential_epoch=0,
                        created_at=now,
                        updated_at=now,
                        created_by=created_by,
                    )
                )
                append_change(
                    conn,
                    spiffe_id=spiffe_id,
                    change="status",
                    status="active",
                    epoch=0,
                    reason=f"added by {created_by}",
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise NameTaken("operator", name) from exc
            raise
        self._on_change()
        return self.get(name)

    def get(self, name: str) -> Operator:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.operators).where(schema.operators.c.name == name)
            ).one_or_none()
        if row is None:
            raise OperatorNotFound(name)
        return _operator(row)

    def find_by_spiffe_id(self, spiffe_id: str) -> Operator | None:
        with self._store.begin() as conn:
            row = conn.execute(
                select(schema.operators).where(schema.operators.c.spiffe_id == spiffe_id)
            ).one_or_none()
        return None if row is None else _operator(row)

    def list(self) -> list[Operator]:
        with self._store.begin() as conn:
            rows = conn.execute(select(schema.operators).order_by(schema.operators.c.name))
            return [_operator(row) for row in rows]

    def revoke(self, name: str) -> Operator:
        """Revoke an operator and every credential it holds."""
        table = schema.operators
        with self._store.begin() as conn:
            row = conn.execute(
                select(table.c.spiffe_id, table.c.credential_epoch).where(table.c.name == name)
            ).one_or_none()
            if row is None:
                raise OperatorNotFound(name)
            epoch = row.credential_epoch + 1
            conn.execute(
                table.update()
                .where(table.c.name == name)
                .values(
                    status="revoked",
                    credential_epoch=epoch,
                    updated_at=utcnow(),
                )
            )
            append_change(
                conn,
                spiffe_id=row.spiffe_id,
                change="status",
                status="revoked",
                epoch=epoch,
                reason="operator revoked",
            )
        self._on_change()
        return self.get(name)
