"""Scanning the log for verification: in this process and in worker processes that read the
store themselves (SQLite and PostgreSQL), with checkpoints inside and across chunks, an edit
after the newest checkpoint (found by its MAC alone), after an archived prefix, a worker that
fails; and the level-at-a-time tree the scan builds, against
one built a leaf at a time."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support.audit import GATEWAY, a_decision, log_key
from warden.audit.log import DecisionLog
from warden.audit.merkle import Frontier
from warden.audit.retention import archive
from warden.audit.scan import Database, Job, _frontier, _levels, scan_in_workers
from warden.audit.setup import open_decision_log
from warden.audit.verify import Report, verify_log
from warden.errors import AuditError
from warden.identity.authority import IdentityAuthority

SEGMENTS = (100, 156, 44, 212, 188)  # checkpoints at 100, 256, 300, 512 and 700
LEVEL = 8  # chunks of 256 entries: 700 entries are three chunks


def fill(log: DecisionLog, count: int) -> None:
    async def go() -> None:
        pairs = [a_decision(allow=i % 7 != 0) for i in range(count)]
        await asyncio.gather(*(log.record_async(d, r, enforcement_point=GATEWAY) for d, r in pairs))

    asyncio.run(go())


@pytest.fixture
def sealed(authority: IdentityAuthority) -> IdentityAuthority:
    log = open_decision_log(authority)
    try:
        for count in SEGMENTS:
            fill(log, count)
            log.checkpoint()
    finally:
        log.close()
    return authority


def verify(authority: IdentityAuthority, workers: int | None) -> Report:
    return verify_log(
        authority.store,
        log_key(authority),
        mac_key=authority.ca.log_keys().entry_mac_key,
        workers=workers,
        chunk_level=LEVEL,
    )


@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "workers"])
def test_checkpoints_inside_and_across_chunks(
    sealed: IdentityAuthority, workers: int | None
) -> None:
    report = verify(sealed, workers)
    assert report.ok, [str(p) for p in report.problems]
    assert report.size == report.verified_size == 700 and report.checkpoints >= 5
    with sealed.store.begin() as conn:  # an edit in the second chunk, hash recomputed
        entry = conn.execute(text("SELECT entry FROM audit_entries WHERE seq = 400")).scalar_one()
        edited = bytes(entry).replace(b'"decision":"allow"', b'"decision":"deny"')
        leaf = hashlib.sha256(b"\x00" + edited).digest()
        conn.execute(
            text("UPDATE audit_entries SET entry = :e, leaf_hash = :h WHERE seq = 400"),
            {"e": edited, "h": leaf},
        )
    report = verify(sealed, workers)
    problems = [str(p) for p in report.problems]
    assert problems[0].startswith("entry 400: modified and re-hashed"), problems
    assert "checkpoint 512: the entries do not produce its root (first bad entry 400)" in problems
    assert report.verified_size == 300  # everything up to the last good checkpoint holds


@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "workers"])
def test_an_edit_after_the_newest_checkpoint_is_found_by_its_mac(
    sealed: IdentityAuthority, workers: int | None
) -> None:
    # Entries under a checkpoint are bound by its signed root, so a clean scan checks MACs
    # only after the newest one: here the checkpoints past 300 are hidden, and entry 400,
    # edited with its hash recomputed, is under no root that could give it away.
    with sealed.store.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE size > 300"))
        entry = conn.execute(text("SELECT entry FROM audit_entries WHERE seq = 400")).scalar_one()
        edited = bytes(entry).replace(b'"decision":"allow"', b'"decision":"deny"')
        conn.execute(
            text("UPDATE audit_entries SET entry = :e, leaf_hash = :h WHERE seq = 400"),
            {"e": edited, "h": hashlib.sha256(b"\x00" + edited).digest()},
        )
    report = verify(sealed, workers)
    problems = [str(p) for p in report.problems]
    assert problems == ["entry 400: modified and re-hashed, or moved: its MAC does not match"]
    assert report.verified_size == 300


def test_workers_continue_from_an_archived_prefix(
    sealed: IdentityAuthority, tmp_path: Path
) -> None:
    archive(sealed.store, tmp_path / "archive", 300)  # in the middle of the second chunk
    for workers in (None, 2):
        report = verify(sealed, workers)
        assert report.ok, [str(p) for p in report.problems]
        assert report.size == report.verified_size == 700


def test_a_failing_worker_is_reported(tmp_path: Path) -> None:
    nowhere = Database("sqlite", str(tmp_path / "no such directory" / "warden.db"))
    with pytest.raises(AuditError, match=r"a verification worker failed: .*unable to open"):
        scan_in_workers(nowhere, [Job([0], 0, 10, [], None)])


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300), st.data())
def test_the_level_tree_has_the_frontiers_of_one_built_a_leaf_at_a_time(
    leaves: list[bytes], data: st.DataObject
) -> None:
    count = data.draw(st.integers(0, len(leaves)))
    frontier = Frontier()
    for leaf in leaves[:count]:
        frontier.push(leaf)
    assert _frontier(_levels(leaves), count) == frontier.nodes
