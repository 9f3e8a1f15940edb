"""Witnesses: somewhere the log's checkpoints go that the log host cannot rewrite.

A witness keeps the latest checkpoint it accepted and accepts a new one only with a
consistency proof from that one: whoever holds the log host and its key can sign a forked or
rolled-back history, but no witness that saw the real one will take it, and any verifier that
reads the witness finds the log truncated or forked. A witness is a directory (on storage the
log host cannot write, such as another machine's mount) or an HTTP endpoint serving one
(``warden audit witness``).

The log hands every checkpoint to a :class:`WitnessPublisher`, which publishes the newest in
the background with the proof the witness needs; publishing never holds up a request.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
from sqlalchemy import Engine

from warden.audit import checkpoint as checkpoints
from warden.audit.checkpoint import Checkpoint, CheckpointInvalid, VerifierKey
from warden.audit.merkle import verify_consistency
from warden.clock import isoformat, utcnow
from warden.errors import AuditError

log = logging.getLogger("warden.audit")
LATEST = "latest.checkpoint"


class WitnessRefused(AuditError):
    """A checkpoint the witness will not take: unsigned, or not consistent with its latest."""

    code = "witness_refused"


class Witness(Protocol):
    """What the log hands its checkpoints to."""

    def offer(self, checkpoint: Checkpoint) -> None: ...

    def close(self) -> None: ...


class WitnessTarget(Protocol):
    def latest(self) -> Checkpoint | None: ...

    def submit(self, note: str, proof: list[bytes]) -> Checkpoint: ...


class WitnessDirectory:
    """A witness kept in a directory: ``latest.checkpoint`` and an append-only history."""

    def __init__(self, directory: Path, key: VerifierKey) -> None:
        self.directory = directory
        self.key = key
        self._lock = threading.Lock()

    def latest(self) -> Checkpoint | None:
        path = self.directory / LATEST
        if not path.exists():
            return None
        return checkpoints.verify(path.read_text(), self.key)

    def submit(self, note: str, proof: list[bytes]) -> Checkpoint:
        """Accept ``note`` if it is the log's and consistent with the latest accepted."""
        try:
            offered = checkpoints.verify(note, self.key)
        except CheckpointInvalid as exc:
            raise WitnessRefused(f"not the log's checkpoint: {exc.message}") from exc
        with self._lock:
            latest = self.latest()
            if latest is not None:
                if offered.size < latest.size:
                    raise WitnessRefused(f"rollback: {offered.size} < {latest.size} already seen")
                if not verify_consistency(
                    latest.size, offered.size, latest.root, offered.root, proof
                ):
                    self._alarm(latest, offered)
                    raise WitnessRefused(
                        f"checkpoint {offered.size} is not consistent with {latest.size}: a fork"
                    )
                if offered.size == latest.size:
                    return latest
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / (LATEST + ".tmp")
            temporary.write_text(offered.note)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, self.directory / LATEST)
            with open(self.directory / "history.jsonl", "a") as history:
                history.write(json.dumps({"at": isoformat(utcnow()), "note": offered.note}) + "\n")
        return offered

    def _alarm(self, latest: Checkpoint, offered: Checkpoint) -> None:
        log.critical("witness: the log forked or rolled back (%s vs %s)", latest.size, offered.size)
        with open(self.directory / "alarms.jsonl", "a") as alarms:
            alarms.write(
                json.dumps(
                    {"at": isoformat(utcnow()), "latest": latest.note, "offered": offered.note}
                )
                + "\n"
            )


class HttpWitnessClient:
    """A witness behind ``warden audit witness``: GET and POST ``/checkpoint``."""

    def __init__(self, url: str, key: VerifierKey, *, verify: object = True) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self._client = httpx.Client(timeout=10, verify=verify)  # type: ignore[arg-type]

    def latest(self) -> Checkpoint | None:
        answer = self._client.get(self.url + "/checkpoint")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return checkpoints.verify(answer.text, self.key)

    def submit(self, note: str, proof: list[bytes]) -> Checkpoint:
        answer = self._client.post(
            self.url + "/checkpoint",
            json={"note": note, "proof": [base64.b64encode(p).decode() for p in proof]},
        )
        if answer.status_code == 409:
            raise WitnessRefused(str(answer.json().get("error", "refused")))
        answer.raise_for_status()
        return checkpoints.verify(note, self.key)


class WitnessPublisher:
    """Publishes the newest checkpoint to ``target`` from a thread of its own; the proof comes
    from ``prove(m, n)`` (the log's consistency proof from size m to n)."""

    def __init__(self, target: WitnessTarget, prove: Callable[[int, int], list[bytes]]) -> None:
        self.target = target
        self._prove = prove
        self._next: Checkpoint | None = None
        self._wake = threading.Condition()
        self._closed = False
        self.published: Checkpoint | None = None
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="warden-witness")
        self._thread.start()

    def offer(self, checkpoint: Checkpoint) -> None:
        with self._wake:
            self._next = checkpoint
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._next is None and not self._closed:
                    self._wake.wait()
                if self._next is None:
                    return
                checkpoint, self._next = self._next, None
            try:
                latest = self.target.latest()
                proof = self._prove(latest.size, checkpoint.size) if latest else []
                self.published = self.target.submit(checkpoint.note, proof)
                self.failure = None
            except Exception as exc:  # the witness is down or refuses: say so, keep going
                self.failure = str(exc)
                log.error("checkpoint %d not witnessed: %s", checkpoint.size, exc)


def proof_source(engine: Engine) -> Callable[[int, int], list[bytes]]:
    """Consistency proofs from the log's store (for a publisher)."""
    from warden.audit.reader import LogReader

    def prove(m: int, n: int) -> list[bytes]:
        if m in (0, n):
            return []
        return LogReader.from_engine(engine).consistency_proof(m, n)

    return prove
