"""What a playbook holds an agent to until it is lifted: only some data classes (restrict),
a rate cap (throttle), some actions parked for its owner (approval).

It is stored on the agent, so it reaches every decision point through the feed like a status
change, and it is applied inside ``decide()`` (the gateway, ``warden.guard``, the decision
APIs all see it), after Cedar: a restriction turns an allow into a deny whose reason names the
playbook; a throttle or an approval adds an obligation the enforcement point carries out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from warden.policy.model import Decision, DecisionRequest, Reason

RESTRICTED = "response-restricted"
UNCLASSIFIED = "internal"  # what a resource without a classification counts as


@dataclass(frozen=True, slots=True)
class Containment:
    """Held on one agent. Empty fields hold nothing."""

    classes: tuple[str, ...] | None = None  # restrict: only these data classes
    restrict_until: str = ""  # clean_report | release
    throttle: str = ""  # "10/m": on every route, or on ``throttle_route`` only
    throttle_route: str = ""
    approval: tuple[str, ...] = ()  # actions parked for the owner
    approval_timeout_s: float = 300.0
    by: tuple[tuple[str, str], ...] = ()  # which playbook set each part: (kind, name)

    @property
    def empty(self) -> bool:
        return self.classes is None and not self.throttle and not self.approval

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Containment | None:
        """From the agent's ``containment`` column; None when nothing is held."""
        if not data:
            return None
        data = {k: v for k, v in data.items() if isinstance(v, dict)}
        restrict = data.get("restrict") or {}
        throttle = data.get("throttle") or {}
        approval = data.get("approval") or {}
        held = cls(
            classes=tuple(sorted(restrict["classes"])) if "classes" in restrict else None,
            restrict_until=str(restrict.get("until", "")),
            throttle=str(throttle.get("rate", "")),
            throttle_route=str(throttle.get("route", "")),
            approval=tuple(sorted(approval.get("actions", ()))),
            approval_timeout_s=float(approval.get("timeout_s", 300.0)),
            by=tuple(sorted((k, str(v.get("playbook", ""))) for k, v in data.items())),
        )
        return None if held.empty else held

    def apply(self, decision: Decision, request: DecisionRequest) -> Decision:
        """The allow ``decision`` as this containment leaves it."""
        if not decision.allowed:
            return decision
        by = dict(self.by)
        if self.classes is not None:
            found = str(request.resource.properties.get("classification") or UNCLASSIFIED)
            if found not in self.classes:
                words = (
                    f"restricted by playbook {by.get('restrict', '?')} to "
                    f"{', '.join(self.classes) or 'nothing'}; this is {found}"
                )
                return replace(
                    decision,
                    decision="deny",
                    reasons=(Reason(RESTRICTED, "forbid", words),),
                    obligations=(),
                    work_order=None,
                )
        added: list[str] = []
        if self.throttle and self.throttle_route in ("", request.context.get("route")):
            added.append(f"throttle-agent:{self.throttle}")
        if request.action in self.approval:
            added.append(f"approval:{round(self.approval_timeout_s)}")
        if not added:
            return decision
        return replace(decision, obligations=(*decision.obligations, *added))
