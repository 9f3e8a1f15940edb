"""Where the SCIM server (scim2-server) reads and writes: Warden's agent registry and the
groups SCIM manages.

Every write goes through the registry, so it reaches every enforcement point through the
feed like any other change: creating an Agent registers it (its workload can attest at once),
``active: false`` disables it, DELETE revokes every credential and work order of the agent,
and a group change is an agent change, seen by the next decision. A write that Warden refuses
(a bad name or selector, an overlapping selector set, a quarantine SCIM may not lift) is a
SCIM error, and nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from scim2_models import (
    InvalidValueException,
    Meta,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)
from scim2_server.storage import AsyncScimStorage, SearchPage
from sqlalchemy import select

from warden.clock import as_utc, utcnow
from warden.errors import ConflictError, NotFoundError, UntrustedInputError
from warden.identity.authority import IdentityAuthority
from warden.identity.registry import Agent as RegisteredAgent
from warden.policy.workorders import WorkOrderStore
from warden.scim.models import (
    WARDEN_SCHEMA,
    Agent,
    AgentGroup,
    Group,
    Label,
    Member,
    MemberType,
    WardenAgent,
)
from warden.store import schema

T = TypeVar("T")
AGENT_MODEL: Any = cast(Any, Agent)[WardenAgent]  # the resource with its extension


class WardenScimStorage(AsyncScimStorage):
    """SCIM resources over Warden's store; one write at a time (they touch several rows)."""

    def __init__(self, authority: IdentityAuthority) -> None:
        self.authority = authority
        self.agents = authority.agents
        self.store = authority.store
        self.work_orders = WorkOrderStore(authority.store)
        self._write = threading.Lock()

    # -- the storage interface (scim2-server calls these) ----------------------------------------

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return await _off(lambda: self._get(str(resource_type.name), resource_id))

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        kinds = [str(rt.name) for rt in resource_types]
        return await _off(lambda: self._search(kinds, search_request))

    async def create(self, resource_type: ResourceType, resource: Any) -> Resource[Any]:
        kind = str(resource_type.name)
        return await _off(lambda: self._locked(lambda: self._create(kind, resource)))

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        kind = str(resource_type.name)
        return await _off(
            lambda: self._locked(lambda: self._update(kind, resource, expected_version))
        )

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        kind = str(resource_type.name)
        await _off(lambda: self._locked(lambda: self._delete(kind, resource_id, expected_version)))

    # -- reading -------------------------------------------------------------------------------

    def _get(self, kind: str, resource_id: str) -> Resource[Any]:
        found = self._all(kind, resource_id)
        if not found:
            raise NotFoundException(detail=f"{kind} {resource_id} not found")
        return found[0]

    def _search(self, kinds: list[str], request: SearchRequest[Any]) -> SearchPage:
        found: list[Resource[Any]] = []
        for kind in dict.fromkeys(kinds):
            resources = self._all(kind)
            scim_filter: ScimFilter[Any] | None = request.filter
            if scim_filter is not None:
                resources = [r for r in resources if scim_filter.match(r)]
            found.extend(resources)
        descending = (
            request.sort_by is not None and request.sort_order == SearchRequest.SortOrder.descending
        )

        def key(resource: Resource[Any]) -> tuple[bool, Any, str]:
            value = request.sort_value(resource) if request.sort_by is not None else None
            return value is None, value if value is not None else "", str(resource.id)

        found.sort(key=key, reverse=descending)
        start = request.start_index_0 or 0
        stop = None if request.count is None else start + request.count
        return SearchPage(len(found), found[start:stop])

    def _all(self, kind: str, resource_id: str | None = None) -> list[Resource[Any]]:
        if kind == "Agent":
            return list(self._agents(resource_id))
        if kind == "Group":
            return list(self._groups(resource_id))
        return []

    def _agents(self, resource_id: str | None) -> list[Resource[Any]]:
        table = schema.agents
        query = select(table)
        if resource_id is not None:
            query = query.where(table.c.id == resource_id)
        with self.store.begin() as conn:
            rows = conn.execute(query).all()
            groups = {r.name: r.id for r in conn.execute(select(schema.scim_groups)).all()}
        return [_agent_resource(row, groups) for row in rows]

    def _groups(self, resource_id: str | None) -> list[Resource[Any]]:
        table = schema.scim_groups
        query = select(table)
        if resource_id is not None:
            query = query.where(table.c.id == resource_id)
        with self.store.begin() as conn:
            rows = conn.execute(query).all()
            members = conn.execute(
                select(schema.agents.c.id, schema.agents.c.name, schema.agents.c.groups)
            ).all()
        return [_group_resource(row, members) for row in rows]

    # -- writing -------------------------------------------------------------------------------

    def _locked(self, write: Callable[[], T]) -> T:
        with self._write:
            try:
                return write()
            except UntrustedInputError as exc:
                raise InvalidValueException(detail=exc.message) from exc
            except ConflictError as exc:
                raise UniquenessException(detail=exc.message) from exc
            except NotFoundError as exc:
                raise NotFoundException(detail=exc.message) from exc

    def _create(self, kind: str, resource: Any) -> Resource[Any]:
        if kind == "Agent":
            return self._create_agent(resource)
        return self._create_group(resource)

    def _create_agent(self, resource: Any) -> Resource[Any]:
        warden = _extension(resource)
        if not resource.name:
            raise InvalidValueException(detail="name is required")
        if self._agent_row_by_name(resource.name) is not None:
            raise UniquenessException(detail=f"an agent is named {resource.name!r}")
        registered = self.agents.register(
            resource.name,
            owner=warden.owner or "",
            purpose=warden.purpose or "",
            labels=_labels(warden.labels),
            selectors=warden.selectors or (),
            strict_selectors=False,
        )
        try:
            self._describe(registered.name, resource)
            if resource.active is False:
                self.agents.disable(registered.name, "SCIM: active false")
        except Exception:
            self.agents.delete(registered.name)  # no partial writes
            raise
        return self._get("Agent", registered.id)

    def _update(self, kind: str, resource: Any, expected_version: str | None) -> Resource[Any]:
        current = self._get(kind, str(resource.id))
        _check_version(current, expected_version)
        if kind == "Agent":
            self._update_agent(current, resource)
        else:
            self._update_group(current, resource)
        return self._get(kind, str(resource.id))

    def _update_agent(self, current: Any, new: Any) -> None:
        name = str(current.name)
        if new.name is not None and new.name != name:
            raise InvalidValueException(detail="name is immutable: it is the agent's SPIFFE ID")
        before, after = _extension(current), _extension(new)
        registered = self.agents.get(name)
        if (after.owner or "") != (before.owner or "") or _labels(after.labels) != _labels(
            before.labels
        ):
            self.agents.update(name, owner=after.owner or "", labels=_labels(after.labels))
        if sorted(after.selectors or []) != sorted(before.selectors or []):
            self.agents.set_selectors(name, after.selectors or [], strict=False)
        if (after.purpose or "") != (before.purpose or ""):
            self._set_purpose(name, after.purpose or "")
        self._describe(name, new)
        active = new.active if new.active is not None else current.active
        if active is False and registered.status == "active":
            self.agents.disable(name, "SCIM: active false")
        elif active is True and registered.status != "active":
            if registered.status != "disabled":
                # A quarantine or revocation is lifted by an approver, never by provisioning.
                raise InvalidValueException(
                    detail=f"the agent is {registered.status}: SCIM may not make it active"
                )
            self.agents.enable(name, "SCIM: active true")

    def _delete(self, kind: str, resource_id: str, expected_version: str | None) -> None:
        current: Any = self._get(kind, resource_id)
        _check_version(current, expected_version)
        if kind == "Agent":
            name = str(current.name)
            spiffe_id = self.agents.get(name).spiffe_id
            for order in self.work_orders.list(agent=spiffe_id, open_only=True):
                self.work_orders.close(order.id, "agent deleted over SCIM")
            # Deleting it ends every credential (its principal is gone, fenced in Redis first)
            # and keeps its history: the log holds its decisions, the feed its deletion.
            self.agents.delete(name)
            return
        group = str(current.display_name)
        for agent in self.agents.list(limit=100_000):
            if group in agent.groups:
                self.agents.update(agent.name, groups=[g for g in agent.groups if g != group])
        with self.store.begin() as conn:
            conn.execute(schema.scim_groups.delete().where(schema.scim_groups.c.id == resource_id))

    def _create_group(self, resource: Any) -> Resource[Any]:
        name = str(resource.display_name or "")
        self._check_group_name(name)
        group_id = uuid.uuid4().hex
        now = utcnow()
        with self.store.begin() as conn:
            conn.execute(
                schema.scim_groups.insert().values(
                    id=group_id,
                    name=name,
                    external_id=resource.external_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        try:
            self._set_members(name, [], _member_ids(resource))
        except Exception:
            with self.store.begin() as conn:  # no partial writes
                conn.execute(schema.scim_groups.delete().where(schema.scim_groups.c.id == group_id))
            raise
        return self._get("Group", group_id)

    def _update_group(self, current: Any, new: Any) -> None:
        old_name, name = str(current.display_name), str(new.display_name or current.display_name)
        before, after = _member_ids(current), _member_ids(new)
        if name != old_name:
            self._check_group_name(name)
            for agent_id in before:
                agent = self._agent_by_id(agent_id)
                groups = [name if g == old_name else g for g in agent.groups]
                self.agents.update(agent.name, groups=groups)
        self._set_members(name, before, after)
        with self.store.begin() as conn:
            conn.execute(
                schema.scim_groups.update()
                .where(schema.scim_groups.c.id == current.id)
                .values(name=name, external_id=new.external_id, updated_at=utcnow())
            )

    def _set_members(self, group: str, before: list[str], after: list[str]) -> None:
        agents = {agent_id: self._agent_by_id(agent_id) for agent_id in set(before) | set(after)}
        for agent_id in set(after) - set(before):
            agent = agents[agent_id]
            if group not in agent.groups:
                self.agents.update(agent.name, groups=[*agent.groups, group])
        for agent_id in set(before) - set(after):
            agent = agents[agent_id]
            self.agents.update(agent.name, groups=[g for g in agent.groups if g != group])

    def _check_group_name(self, name: str) -> None:
        from warden.identity.spiffe_id import validate_name

        try:
            validate_name(name)
        except UntrustedInputError as exc:
            raise InvalidValueException(detail=f"displayName: {exc.message}") from exc
        with self.store.begin() as conn:
            taken = conn.execute(
                select(schema.scim_groups.c.id).where(schema.scim_groups.c.name == name)
            ).first()
        if taken is not None:
            raise UniquenessException(detail=f"a group is named {name!r}")

    # -- helpers -------------------------------------------------------------------------------

    def _agent_by_id(self, agent_id: str) -> RegisteredAgent:
        with self.store.begin() as conn:
            row = conn.execute(
                select(schema.agents.c.name).where(schema.agents.c.id == agent_id)
            ).first()
        if row is None:
            raise InvalidValueException(detail=f"no agent {agent_id} to be a member")
        return self.agents.get(row.name)

    def _agent_row_by_name(self, name: str) -> Any:
        with self.store.begin() as conn:
            return conn.execute(
                select(schema.agents.c.id).where(schema.agents.c.name == name)
            ).first()

    def _describe(self, name: str, resource: Any) -> None:
        with self.store.begin() as conn:
            conn.execute(
                schema.agents.update()
                .where(schema.agents.c.name == name)
                .values(
                    external_id=resource.external_id,
                    display_name=resource.display_name,
                    description=resource.description,
                )
            )

    def _set_purpose(self, name: str, purpose: str) -> None:
        with self.store.begin() as conn:
            conn.execute(
                schema.agents.update()
                .where(schema.agents.c.name == name)
                .values(purpose=purpose[:2000], updated_at=utcnow())
            )


async def _off(work: Callable[[], T]) -> T:
    """The store is synchronous: off the event loop."""
    return await asyncio.to_thread(work)


def _extension(resource: Resource[Any]) -> WardenAgent:
    found = resource[WardenAgent]
    return found if found is not None else WardenAgent()


def _labels(labels: list[Label] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for label in labels or []:
        if not label.key:
            raise InvalidValueException(detail="a label needs a key")
        if label.key in out:
            raise InvalidValueException(detail=f"label {label.key!r} appears twice")
        out[label.key] = label.value or ""
    return out


def _member_ids(resource: Any) -> list[str]:
    return list(dict.fromkeys(str(m.value) for m in resource.members or [] if m.value))


def _check_version(current: Resource[Any], expected: str | None) -> None:
    if expected is not None and current.meta is not None and current.meta.version != expected:
        raise PreconditionFailedException(detail="the resource changed since that version")


def _version(document: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode())
    return f'W/"{digest.hexdigest()[:20]}"'


def _agent_resource(row: Any, groups: dict[str, str]) -> Resource[Any]:
    status = str(row.status)
    warden = WardenAgent(
        schemas=[WARDEN_SCHEMA],
        owner=row.owner,
        purpose=row.purpose or None,
        selectors=list(row.selectors) or None,
        labels=[Label(key=k, value=v) for k, v in sorted(dict(row.labels).items())] or None,
        spiffe_id=row.spiffe_id,
        status=status,
    )
    member_of = [
        AgentGroup(value=groups[g], ref=cast(Any, f"Groups/{groups[g]}"), display=g)
        for g in row.groups or []
        if g in groups
    ]
    body = {
        "name": row.name,
        "display_name": row.display_name,
        "description": row.description,
        "external_id": row.external_id,
        "active": status == "active",
        "warden": warden.model_dump(),
        "groups": [g.model_dump() for g in member_of],
        "epoch": row.credential_epoch,
    }
    resource: Any = AGENT_MODEL(
        id=row.id,
        external_id=row.external_id,
        name=row.name,
        display_name=row.display_name,
        active=status == "active",
        description=row.description,
        groups=member_of or None,
        meta=Meta(
            resource_type="Agent",
            created=as_utc(row.created_at),
            last_modified=as_utc(row.updated_at),
            version=_version(body),
        ),
    )
    resource[WardenAgent] = warden
    return cast(Resource[Any], resource)


def _group_resource(row: Any, agents: Sequence[Any]) -> Resource[Any]:
    members = [
        Member(value=a.id, ref=cast(Any, f"Agents/{a.id}"), type=MemberType.agent)
        for a in sorted(agents, key=lambda a: a.name)
        if row.name in (a.groups or [])
    ]
    body = {
        "name": row.name,
        "external_id": row.external_id,
        "members": [m.value for m in members],
    }
    last: datetime = as_utc(row.updated_at)
    return Group(
        id=row.id,
        external_id=row.external_id,
        display_name=row.name,
        members=members or None,
        meta=Meta(
            resource_type="Group",
            created=as_utc(row.created_at),
            last_modified=last,
            version=_version(body),
        ),
    )
