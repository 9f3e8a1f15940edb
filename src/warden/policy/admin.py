"""Authorising control-plane calls with the Cedar admin pack.

Every call to the control plane's admin API is decided here: the principal (an operator with a
role, or an agent) and an action on a resource, against ``policies/admin``. Cedar denies by
default and lets a ``forbid`` override any ``permit``. Cedar skips a policy whose evaluation
errors, which could let a ``permit`` win over an erroring ``forbid``; any evaluation error is
therefore a deny here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from warden.policy.errors import PolicyPackInvalid
from warden.policy.packs import shipped_policies


@dataclass(frozen=True)
class AdminPrincipal:
    """Who is calling: ``kind`` is ``Operator``, ``Agent`` or ``Service``."""

    kind: str
    name: str
    spiffe_id: str
    attributes: dict[str, str | bool]


@dataclass(frozen=True)
class AdminDecision:
    allowed: bool
    policies: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[str, ...]


class AdminAuthorizer:
    """Decides control-plane actions with a parsed, schema-validated admin pack."""

    def __init__(self, pack_dir: Path | None = None) -> None:
        pack_dir = pack_dir or shipped_policies() / "admin"
        sources = sorted(pack_dir.glob("*.cedar"))
        if not sources:
            raise PolicyPackInvalid(str(pack_dir), "holds no .cedar files")
        text = "\n".join(p.read_text() for p in sources)
        schema_files = sorted(pack_dir.glob("*.cedarschema"))
        if len(schema_files) != 1:
            raise PolicyPackInvalid(str(pack_dir), "needs exactly one .cedarschema file")
        self._schema = cedarpy.Schema.from_str(schema_files[0].read_text())
        result = cedarpy.validate_policies(text, self._schema)
        if not result.validation_passed:
            problems = "; ".join(str(e) for e in result.errors)
            raise PolicyPackInvalid(str(pack_dir), problems)
        self._policies = cedarpy.PolicySet.from_str(text)
        self._reasons = {
            policy.get("annotations", {}).get("id", cedar_id): policy.get("annotations", {}).get(
                "reason", ""
            )
            for cedar_id, policy in json.loads(cedarpy.policies_to_json_str(text))[
                "staticPolicies"
            ].items()
        }

    def authorize(
        self,
        principal: AdminPrincipal,
        action: str,
        resource: tuple[str, str],
        attrs: dict[str, str | bool] | None = None,
    ) -> AdminDecision:
        """May ``principal`` perform ``action`` on ``resource`` (``(type, id)``, with
        ``attrs`` where known)?"""
        principal_uid = {"type": principal.kind, "id": principal.name}
        resource_uid = {"type": resource[0], "id": resource[1]}
        entities: list[dict[str, Any]] = [
            {"uid": principal_uid, "attrs": dict(principal.attributes), "parents": []},
        ]
        if resource_uid != principal_uid:
            entities.append(
                {
                    "uid": resource_uid,
                    "attrs": {**_default_attrs(resource[0]), **(attrs or {})},
                    "parents": [],
                }
            )
        request = {
            "principal": principal_uid,
            "action": {"type": "Action", "id": action},
            "resource": resource_uid,
            "context": {},
        }
        try:
            result = cedarpy.is_authorized(request, self._policies, entities, self._schema)
        except Exception as exc:  # any engine failure is a deny, with the reason kept
            return AdminDecision(False, (), (), (f"{type(exc).__name__}: {exc}",))
        errors = tuple(str(e) for e in result.diagnostics.errors)
        policies = tuple(result.diagnostics.reasons)
        ids = result.diagnostics.id_annotations_by_reason if policies else {}
        names = tuple(ids.get(p, p) for p in policies)
        allowed = result.allowed and not errors
        return AdminDecision(allowed, names, tuple(self._reasons.get(n, "") for n in names), errors)


_DEFAULT_ATTRS: dict[str, dict[str, str | bool]] = {
    "Operator": {"role": "", "name": ""},
    "Agent": {"owner": ""},
    "Service": {"enforcement_point": False},
}


def _default_attrs(entity_type: str) -> dict[str, str | bool]:
    return dict(_DEFAULT_ATTRS.get(entity_type, {}))
