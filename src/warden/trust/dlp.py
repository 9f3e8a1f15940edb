"""Data-loss prevention at the gateway.

Before the decision: what a request sends out (its JSON body or tool arguments: records per
data class, links to hosts outside the allowlist) and whether it asks for a bulk export
(``limit`` or ``rows`` past the bound, an export tool) go into the decision context
(``context.outbound``, ``context.bulk``).

After the upstream answers and obligations are applied, before a byte leaves: the answer's
records are classified; PHI records that name a region other than the agent's are a residency
breach; an answer far above the agent's usual record count is a bulk export, decided again by
the policy as ``data:export``; last, the records are taken into the agent's windows (the
decision's obligations, ``dlp:phi_per_minute<=5``, set their limits) all at once or not at
all. Anything that fails replaces the whole answer with a denial, and is published as a trust
event.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.trust.classify import Classification, classify
from warden.trust.events import TrustEvent, TrustEvents
from warden.trust.windows import CLASSES, WINDOWS, SharedStateUnavailable, Windows
from warden.untrusted_json import loads

EXPORT_TOOL_WORDS = ("export", "dump", "download_all", "bulk", "backup")
USUAL_WEIGHT = 0.1  # how fast an agent's usual record count follows what it gets
BULK_FACTOR = 10  # "far above usual": ten times it (and past the absolute bound)
MIN_HISTORY = 5  # answers seen before "usual" means anything


def window_limits(obligations: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """``dlp:phi_per_minute<=5`` obligations as {("phi", "minute"): 5}; a malformed one is a
    limit of zero (fail closed)."""
    limits: dict[tuple[str, str], int] = {}
    for obligation in obligations:
        if not obligation.startswith("dlp:"):
            continue
        name, _, bound = obligation[4:].partition("<=")
        data_class, _, window = name.strip().partition("_per_")
        key = (data_class, window)
        try:
            limit = int(bound)
        except ValueError:
            limit = 0
        if data_class not in CLASSES or window not in WINDOWS:
            key, limit = ("phi", "minute"), 0
        limits[key] = min(limit, limits.get(key, limit))
    return limits


@dataclass(frozen=True)
class Verdict:
    """What inspection decided about one answer."""

    blocked: str | None = None  # the reason it is replaced by a denial
    bulk: bool = False  # it is a bulk export: decide data:export before passing it
    classification: Classification | None = None


class Dlp:
    def __init__(
        self,
        windows: Windows,
        events: TrustEvents,
        *,
        bulk_records: int = 1000,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.windows = windows
        self.events = events
        self.bulk_records = bulk_records
        self.allowed_hosts = allowed_hosts
        self._usual: dict[tuple[str, str], tuple[float, int]] = {}  # (agent, route) -> (mean, n)
        self._lock = threading.Lock()

    # -- before the decision -------------------------------------------------------------------

    def outbound(self, document: Any) -> dict[str, int]:
        """What a request body or a tool's arguments carry out: records per class, external
        links."""
        if document in (None, {}, [], b""):
            return {"records": 0, "pii": 0, "phi": 0, "pci": 0, "links": 0}
        found = classify(document)
        external = {h for h in found.hosts if not self._allowed(h)}
        return {
            "records": found.records if found.per_class else 0,
            "pii": found.count("pii"),
            "phi": found.count("phi"),
            "pci": found.count("pci"),
            "links": len(external),
        }

    def _allowed(self, host: str) -> bool:
        return any(host == a or host.endswith("." + a) for a in self.allowed_hosts)

    def bulk_request(self, args: Mapping[str, Any], tool: str = "") -> bool:
        """The request asks for more records than the bound, or is an export tool."""
        for key in ("limit", "rows", "count", "page_size", "max_results"):
            value = args.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > self.bulk_records:
                return True
        lowered = tool.lower()
        return bool(tool) and any(word in lowered for word in EXPORT_TOOL_WORDS)

    # -- after the answer ------------------------------------------------------------------------

    def inspect(
        self,
        agent: str,
        route_name: str,
        declared: str,
        destination_region: str,
        body: bytes | Any,
    ) -> Verdict:
        """Check one answer. ``body``: the JSON bytes, or a decoded document."""
        try:
            document = loads(bytes(body)) if isinstance(body, (bytes, bytearray)) else body
        except ValueError:
            if declared in ("pii", "phi", "pci", "confidential"):
                return Verdict(blocked="uninspectable_response")
            return Verdict()
        found = classify(document, declared)
        if found.truncated and declared in ("pii", "phi", "pci", "confidential"):
            return Verdict(blocked="uninspectable_response", classification=found)
        if found.count("phi") and destination_region and found.regions - {destination_region}:
            self._publish(
                "residency_breach",
                agent,
                route=route_name,
                regions=sorted(found.regions),
                destination=destination_region,
                classes=["phi"],
            )
            return Verdict(blocked="residency_breach", classification=found)
        bulk = self._bulk_answer(agent, route_name, found.records)
        if bulk:
            classes = [c for c in CLASSES if found.count(c)]
            self._publish(
                "bulk_export", agent, route=route_name, records=found.records, classes=classes
            )
        return Verdict(bulk=bulk, classification=found)

    def take(
        self, agent: str, route_name: str, obligations: tuple[str, ...], found: Classification
    ) -> str | None:
        """Take an answer's records into the agent's windows, all or none: the reason it may
        not (a window it would pass), or None. Called last, once nothing else stops the
        answer, so records an agent never got are not counted against it."""
        try:
            exceeded = self.windows.take(
                agent, {c: found.count(c) for c in CLASSES}, window_limits(obligations)
            )
        except SharedStateUnavailable:
            return "shared_state_unavailable"  # the windows cannot be kept: nothing passes
        if not exceeded:
            return None
        first = exceeded[0]
        self._publish(
            "dlp_window_exceeded",
            agent,
            route=route_name,
            window=first.reason,
            classes=sorted({e.data_class for e in exceeded}),
            limit=first.limit,
            current=first.current,
            adding=first.adding,
        )
        return f"dlp_window_exceeded:{first.reason}"

    def _bulk_answer(self, agent: str, route_name: str, records: int) -> bool:
        """Far above what this agent usually gets from this route (and past the bound)."""
        key = (agent, route_name)
        with self._lock:
            mean, seen = self._usual.get(key, (0.0, 0))
            bulk = records > self.bulk_records and (
                seen < MIN_HISTORY or records > BULK_FACTOR * max(mean, 1.0)
            )
            if not bulk:  # a bulk answer does not teach what is usual
                self._usual[key] = (mean + USUAL_WEIGHT * (records - mean), seen + 1)
        return bulk

    def _publish(self, kind: str, agent: str, **detail: Any) -> None:
        self.events.publish(TrustEvent(kind, agent, detail))


def destination_region(labels: tuple[str, ...], default: str) -> str:
    """Where an answer goes: the agent's ``region`` label, else the gateway's region."""
    for label in labels:
        if label.startswith("region="):
            return label[7:].lower()
    return default.lower()
