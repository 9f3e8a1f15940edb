"""Classifying JSON documents record by record.

The records of a document are the elements of a top-level array, the entries of a FHIR
Bundle, or the first array in the top-level object; failing those, the document is one record.
Each record's values are run through the detectors (and its field names through the key
hints); a record counts once for each data class it carries. The class a route declares (a
patients route is PHI) is added to every record. Regions a record names (``region``,
``data_region``, ``residency``) and the hosts of links it holds are collected, for residency
and outbound checks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from warden.trust import detectors

SENSITIVE = ("pii", "phi", "pci", "confidential")
REGION_KEYS = frozenset({"region", "data_region", "dataregion", "residency"})
_URL = re.compile(r"https?://([A-Za-z0-9.-]+)", re.I)
MAX_DEPTH = 12
MAX_VALUES = 20_000  # per document: past it the document is not read on, and counts as one


@dataclass
class Classification:
    """What a document carries: records, records per data class, kinds found, regions
    named, hosts linked."""

    records: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    regions: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    truncated: bool = False

    def count(self, data_class: str) -> int:
        return self.per_class.get(data_class, 0)

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "classes": dict(self.per_class),
            "kinds": dict(self.kinds),
            "regions": sorted(self.regions),
        }


def records_of(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if document.get("resourceType") == "Bundle" and isinstance(document.get("entry"), list):
            return [e.get("resource", e) if isinstance(e, dict) else e for e in document["entry"]]
        for value in document.values():
            if isinstance(value, list):
                return value
        return [document]
    return []


def classify(document: Any, declared: str = "") -> Classification:
    """Classify ``document``; ``declared``: the route's data class, added to every record."""
    result = Classification()
    budget = [MAX_VALUES]
    for record in records_of(document):
        kinds: set[str] = set()
        _walk(record, kinds, result, budget, 0)
        record_classes = detectors.classes(kinds)
        if isinstance(record, dict) and record.get("resourceType") in detectors.FHIR_CLINICAL:
            record_classes.add("phi")
        if declared in SENSITIVE:
            record_classes.add(declared)
        result.records += 1
        result.per_class.update(record_classes)
        result.kinds.update(kinds)
        if budget[0] <= 0:
            result.truncated = True
            break
    return result


def _walk(
    value: Any, kinds: set[str], result: Classification, budget: list[int], depth: int
) -> None:
    budget[0] -= 1
    if budget[0] <= 0 or depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        kinds.update(detectors.find(value))
        if "://" in value:
            result.hosts.update(m.group(1).lower() for m in _URL.finditer(value))
    elif isinstance(value, dict):
        for key, inner in value.items():
            name = str(key)
            kind = detectors.key_kind(name)
            if (
                kind is not None
                and inner not in (None, "", [], {})
                and (kind not in detectors.VALIDATED_KEYS or detectors.validated(kind, str(inner)))
            ):
                kinds.add(kind)
            lowered = name.lower()
            if lowered in REGION_KEYS and isinstance(inner, str) and inner:
                result.regions.add(inner.lower())
            _walk(inner, kinds, result, budget, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            _walk(inner, kinds, result, budget, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and value > 10_000_000:
        kind = detectors.digits_kind(str(value))  # cards and the like stored as numbers
        if kind is not None:
            kinds.add(kind)
