"""Classifying JSON documents record by record.

The records of a document are the elements of a top-level array, the entries of a FHIR
Bundle, or the first array in the top-level object; failing those, the document is one record.
Each record is serialised (orjson) and the detectors read all records' text in one pass per
pattern (field names too, as they appear in the text), so what a value holds is found at C
speed and only candidates reach Python. A record counts once for each data class it carries.
The class a route declares (a patients route is PHI) is added to every record. Regions a
record names (``region``, ``data_region``, ``residency``) and the hosts of links it holds are
collected, for residency and outbound checks.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson

from warden.trust import detectors

SENSITIVE = ("pii", "phi", "pci", "confidential")


@dataclass
class Classification:
    """What a document carries: records, records per data class, kinds found, regions
    named, hosts linked; ``truncated``: part of it could not be read."""

    records: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # those that made records' classes
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
    records = records_of(document)
    if not records:
        return result
    texts, ends, offset = [], [], 0
    for record in records:
        text = _serialised(record, result)
        texts.append(text)
        offset += len(text) + 1
        ends.append(offset)  # where the record's text ends in the joined text, its newline
    joined = b"\n".join(texts)  # a newline is never raw inside serialised JSON
    found, known = detectors.scan(
        joined, ends, exhaustive=False, hosts=result.hosts, regions=result.regions
    )
    result.kinds.update(chain.from_iterable(found.values()))
    counts = Counter(chain.from_iterable(known.values()))
    if declared in SENSITIVE:
        counts[declared] = len(records)  # every record, whatever else it holds
    result.records = len(records)
    result.per_class = counts
    return result


def _serialised(record: Any, result: Classification) -> bytes:
    try:
        return orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:  # integers past 64 bits, nesting orjson refuses
        return json.dumps(record, ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError):
        result.truncated = True
        return b""
