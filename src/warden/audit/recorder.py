"""The one interface through which decisions are recorded: nothing is answered or forwarded
before its record is durable. :class:`~warden.audit.log.DecisionLog` implements it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

from warden.policy.model import Decision, DecisionRequest


class DecisionRecorder(Protocol):
    """Makes a decision durable; raises :class:`AuditError` when it cannot (the caller denies)."""

    def record(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None: ...

    async def record_async(
        self, decision: Decision, request: DecisionRequest, *, enforcement_point: str
    ) -> None: ...

    def append(self, kind: str, body: dict[str, Any], *, subject: str | None = None) -> None:
        """Append an event and return once it is durable (a response action)."""

    def note(self, kind: str, body: dict[str, Any], *, subject: str | None = None) -> None:
        """Append an event without waiting (never raises: a lost note is logged)."""


def fsync_probe(path: Path) -> float:
    """Seconds for one small append made durable with fdatasync: the floor under every
    durable commit on this disk (the benchmarks report it beside their figures)."""
    with open(path, "ab") as handle:
        handle.write(b"x" * 128)
        handle.flush()
        start = time.perf_counter()
        os.fdatasync(handle.fileno())
        return time.perf_counter() - start
