"""The immutable inputs of a decision: the compiled bundle, what Warden knows of each agent,
the open work orders, and the live signals (risk, workload health, DLP windows).

Background tasks build a new snapshot and swap it in atomically; a decision never sees half an
update. Cedar entity sets are built once per (agent, resource) and cached, since converting
entities across the binding costs more than the decision itself.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cedarpy
import orjson

from warden.policy.bundle import CompiledBundle
from warden.policy.cedar_call import CedarAnswer, authorize
from warden.policy.model import Resource
from warden.policy.schema_actions import action_entities
from warden.policy.workorders import WorkOrder
from warden.response.containment import Containment

ENTITY_CACHE_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What policies may know of an agent."""

    spiffe_id: str
    owner: str
    labels: tuple[str, ...]  # "key=value", sorted
    groups: tuple[str, ...]
    status: str
    # What playbooks hold the agent to; applied after Cedar, never seen by policies.
    containment: Containment | None = None

    @classmethod
    def of(
        cls,
        spiffe_id: str,
        owner: str,
        labels: Mapping[str, str],
        groups: list[str],
        status: str,
        containment: dict[str, Any] | None = None,
    ) -> AgentFacts:
        return cls(
            spiffe_id,
            owner,
            tuple(sorted(f"{k}={v}" for k, v in labels.items())),
            tuple(sorted(groups)),
            status,
            Containment.from_json(containment),
        )


@dataclass(frozen=True, slots=True)
class Signal:
    """A live input for one agent and when it was measured."""

    values: Mapping[str, Any]
    at: datetime


class _Lru:
    """A bounded, thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


class EntityCache:
    """What ``decide()`` memoises, all keyed on exactly the inputs Cedar sees:

    - base entity handles per (bundle, agent groups, resource), since converting entities
      across the binding costs more than the decision itself;
    - Cedar's answers per (bundle, agent facts, action, resource, projected context JSON).
      Cedar is a pure function of those inputs, so a remembered answer is the same answer;
      anything that changes (a live signal, an argument a policy reads, the bundle) changes
      the key.
    """

    def __init__(self, size: int = ENTITY_CACHE_SIZE, *, remember_answers: bool = True) -> None:
        self._handles = _Lru(size)
        self._agent_handles = _Lru(size)
        self._answers = _Lru(size)
        self._remember = remember_answers

    def get(self, bundle: CompiledBundle, facts: AgentFacts, resource: Resource) -> Any:
        """The entities of one request: a cached base (groups, actions, resource) shared by
        every agent in the same groups, plus this agent's own entity (cheap to add). The cost
        does not grow with the number of agents."""
        rkey = resource_key(resource)
        own_key = (bundle.revision, facts, resource.type, resource.id, rkey)
        handle = self._agent_handles.get(own_key)
        if handle is not None:
            return handle
        is_principal = resource.type == "Agent" and resource.id == facts.spiffe_id
        key = (bundle.revision, facts.groups, resource.type, resource.id, rkey, is_principal)
        base = self._handles.get(key)
        if base is None:
            base = cedarpy.Entities.from_json_str(
                json.dumps(_base_entities(bundle, facts.groups, resource, is_principal))
            )
            self._handles.put(key, base)
        handle = base.with_added_json_str(json.dumps([_agent_entity(facts)]))
        self._agent_handles.put(own_key, handle)
        return handle

    def evaluate(
        self,
        bundle: CompiledBundle,
        facts: AgentFacts,
        action: str,
        resource: Resource,
        context_json: str,
    ) -> CedarAnswer:
        key = (
            bundle.revision,
            _who(bundle, facts, resource),
            action,
            resource.type,
            resource.id,
            resource_key(resource),
            context_json,
        )
        answer: CedarAnswer | None = self._answers.get(key) if self._remember else None
        if answer is None:
            answer = authorize(
                {"type": "Agent", "id": facts.spiffe_id},
                {"type": "Action", "id": action},
                {"type": resource.type, "id": resource.id},
                context_json,
                bundle.policies,
                self.get(bundle, facts, resource),
            )
            if not answer.errors:  # errors are never remembered: each retry is evaluated
                self._answers.put(key, answer)
        return answer


def _who(bundle: CompiledBundle, facts: AgentFacts, resource: Resource) -> Any:
    """What of the principal the answer can depend on: the whole agent when the policies use
    its identity, else only its groups and the attributes the policies read."""
    use = bundle.principal_use
    if use.identity or (use.identity_if_agent_resource and resource.type == "Agent"):
        return facts
    return (
        facts.groups,
        facts.owner if "owner" in use.attributes else None,
        facts.labels if "labels" in use.attributes else None,
    )


def context_json(context: dict[str, Any]) -> str:
    """The context as Cedar reads it and as the memo keys it: JSON with sorted keys. orjson
    writes it about ten times faster than ``json``; what orjson refuses (an integer past 64
    bits, a key that is not a string, a lone surrogate) goes through ``json``."""
    try:
        return orjson.dumps(context, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(context, sort_keys=True)


def resource_key(resource: Resource) -> tuple[Any, ...]:
    return resource.key


def _agent_entity(facts: AgentFacts) -> dict[str, Any]:
    return {
        "uid": {"type": "Agent", "id": facts.spiffe_id},
        "attrs": {"owner": facts.owner, "labels": list(facts.labels)},
        "parents": [{"type": "Group", "id": g} for g in facts.groups],
    }


def _base_entities(
    bundle: CompiledBundle, groups: tuple[str, ...], resource: Resource, is_principal: bool
) -> list[Any]:
    props = resource.properties
    tags = props.get("tags", [])
    entities: list[Any] = [
        *({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in groups),
        *action_entities(bundle.action_parents),
    ]
    if not is_principal:
        entities.append(
            {
                "uid": {"type": resource.type, "id": resource.id},
                "attrs": {
                    "classification": str(props.get("classification", "unclassified")),
                    "region": str(props.get("region", "")),
                    "domain": str(props.get("domain", "")),
                    "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
                },
                "parents": [],
            }
        )
    return entities


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything ``decide()`` reads. Immutable; replaced whole."""

    bundle: CompiledBundle
    agents: Mapping[str, AgentFacts] = field(default_factory=dict)
    work_orders: Mapping[str, tuple[WorkOrder, ...]] = field(default_factory=dict)
    risk: Mapping[str, Signal] = field(default_factory=dict)
    health: Mapping[str, Signal] = field(default_factory=dict)
    dlp: Mapping[str, Signal] = field(default_factory=dict)
    signal_max_age_s: float = 60.0
    entity_cache: EntityCache = field(default_factory=EntityCache, compare=False, repr=False)

    def evaluate(
        self, facts: AgentFacts, action: str, resource: Resource, context: dict[str, Any]
    ) -> CedarAnswer:
        """Cedar's answer for this request (memoised on its exact inputs)."""
        return self.entity_cache.evaluate(
            self.bundle, facts, action, resource, context_json(context)
        )

    def fresh_signal(
        self, signals: Mapping[str, Signal], spiffe_id: str, now: datetime
    ) -> Mapping[str, Any] | None:
        """The agent's signal if it exists and is younger than the bound; else None."""
        signal = signals.get(spiffe_id)
        if signal is None or (now - signal.at).total_seconds() > self.signal_max_age_s:
            return None
        return signal.values
