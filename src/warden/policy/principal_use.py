"""What a bundle's policies can see of the principal, worked out from Cedar's JSON form.

Cedar's answer depends on the principal only through (a) its identity, where a policy names an
agent, compares the principal to another entity or passes it to a function, (b) the attributes
policies read, and (c) its groups. When a bundle never uses the identity, two agents with the
same groups and the same read attributes get the same answer for the same request, so the
engine may remember answers per group rather than per agent. Any use this reader does not
recognise counts as a use of the identity: it can only make the memo more specific.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PrincipalUse:
    identity: bool  # the answer may depend on which agent it is
    identity_if_agent_resource: bool  # only via ``principal == resource`` style comparisons
    attributes: frozenset[str]  # principal attributes the policies read or test


def principal_use(policies: dict[str, Any]) -> PrincipalUse:
    identity = False
    agent_resource_only = False
    attributes: set[str] = set()

    def walk(node: Any) -> None:
        nonlocal identity, agent_resource_only
        if isinstance(node, list):
            for value in node:
                walk(value)
            return
        if not isinstance(node, dict):
            return
        if node.get("Var") == "principal":
            identity = True  # reached only when no allowed parent consumed it
            return
        for op in (".", "has"):
            inner = node.get(op)
            if isinstance(inner, dict) and inner.get("left") == {"Var": "principal"}:
                attributes.add(str(inner.get("attr")))
                return
        inner = node.get("is")
        if isinstance(inner, dict) and inner.get("left") == {"Var": "principal"}:
            walk(inner.get("in"))
            return
        inner = node.get("in")
        if isinstance(inner, dict) and inner.get("left") == {"Var": "principal"}:
            right = inner.get("right", {})
            entity = right.get("Value", {}).get("__entity") if isinstance(right, dict) else None
            if isinstance(entity, dict) and entity.get("type") == "Group":
                return
            identity = True
            return
        for op in ("==", "!="):
            inner = node.get(op)
            if isinstance(inner, dict):
                sides = (inner.get("left"), inner.get("right"))
                if {"Var": "principal"} in sides and {"Var": "resource"} in sides:
                    agent_resource_only = True
                    return
        for value in node.values():
            walk(value)

    for policy in policies.values():
        scope = policy.get("principal", {})
        entity = scope.get("entity") if isinstance(scope, dict) else None
        if isinstance(entity, dict) and entity.get("type") != "Group":
            identity = True
        if isinstance(scope, dict) and scope.get("op") == "in" and "entities" in scope:
            identity = True
        walk(policy.get("conditions", []))
    return PrincipalUse(identity, agent_resource_only, frozenset(attributes))
