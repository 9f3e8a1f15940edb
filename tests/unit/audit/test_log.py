"""The decision log on a real store (SQLite and PostgreSQL): durable appends at gapless
positions, masking, checkpoints, proofs, events copied exactly once, several writers, export
and retention."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.support.audit import AGENT, GATEWAY, a_decision, log_key
from warden.audit import export
from warden.audit.checkpoint import verify as open_checkpoint
from warden.audit.log import DecisionLog
from warden.audit.merkle import Frontier, leaf_hash, verify_consistency
from warden.audit.reader import LogReader
from warden.audit.retention import archive, verify_archive
from warden.audit.setup import open_decision_log
from warden.audit.verify import verify_log
from warden.errors import AuditError
from warden.identity.authority import IdentityAuthority
from warden.store import schema


@pytest.fixture
def log(authority: IdentityAuthority) -> Iterator[DecisionLog]:
    opened = open_decision_log(authority)
    yield opened
    opened.close()


def verified(authority: IdentityAuthority) -> None:
    report = verify_log(
        authority.store, log_key(authority), mac_key=authority.ca.log_keys().entry_mac_key
    )
    assert report.ok, [str(p) for p in report.problems]


def test_appends_are_durable_and_gapless(authority: IdentityAuthority, log: DecisionLog) -> None:
    ids = []
    for i in range(25):
        decision, request = a_decision(allow=i % 3 != 0)
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
        # Durable means committed: another connection sees it the moment record returns.
        with authority.store.engine.connect() as other:
            assert (
                other.execute(
                    select(schema.audit_entries.c.seq).where(
                        schema.audit_entries.c.decision_id == decision.decision_id
                    )
                ).scalar_one()
                == i
            )
    reader = LogReader(authority.store)
    entry = reader.decision(ids[3])
    assert entry is not None and entry["seq"] == 3 and entry["decision"] == "deny"
    assert entry["reasons"][0]["policy"] == "payroll-only-hr"
    assert entry["subject"]["id"] == AGENT and entry["enforcement_point"] == GATEWAY
    assert entry["health"]["status"] == "healthy" and entry["risk"]["factors"]
    checkpoint = log.checkpoint()
    assert checkpoint.size == 25
    verified(authority)


async def _record_many(log: DecisionLog, count: int) -> list[str]:
    import asyncio

    pairs = [a_decision() for _ in range(count)]
    await asyncio.gather(*(log.record_async(d, r, enforcement_point=GATEWAY) for d, r in pairs))
    return [d.decision_id for d, _ in pairs]


def test_concurrent_appends_ride_on_group_commits(
    authority: IdentityAuthority, log: DecisionLog
) -> None:
    import asyncio

    ids = asyncio.run(_record_many(log, 300))
    reader = LogReader(authority.store)
    assert {reader.decision(i)["decision_id"] for i in ids} == set(ids)  # type: ignore[index]
    assert reader.size() == 300
    verified(authority)


def test_secrets_and_marked_arguments_never_reach_the_store(
    authority: IdentityAuthority, log: DecisionLog
) -> None:
    decision, request = a_decision(
        args={"password": "hunter2", "routing_number": "021000021", "limit": 5},
        headers={"Authorization": "Bearer sekrit"},
        mask=("routing_number",),
        credential="4f2a",
    )
    log.record(decision, request, enforcement_point=GATEWAY)
    with authority.store.begin() as conn:
        stored = b"".join(r.entry for r in conn.execute(select(schema.audit_entries.c.entry)))
    for secret in (b"hunter2", b"021000021", b"sekrit"):
        assert secret not in stored
    entry = LogReader(authority.store).decision(decision.decision_id)
    assert entry is not None
    assert sorted(entry["masked"]) == [
        "context.args.password",
        "context.args.routing_number",
        "context.headers.Authorization",
    ]
    assert entry["context"]["args"]["limit"] == 5
    assert entry["subject"]["credential"] == "4f2a"
    # The same value masks to the same fingerprint: a changed routing number shows.
    again, request = a_decision(args={"routing_number": "021000021"}, mask=("routing_number",))
    log.record(again, request, enforcement_point=GATEWAY)
    second = LogReader(authority.store).decision(again.decision_id)
    assert second is not None
    assert second["context"]["args"]["routing_number"] == entry["context"]["args"]["routing_number"]


def test_proofs_verify_against_a_checkpoint(authority: IdentityAuthority, log: DecisionLog) -> None:
    ids = []
    for _ in range(37):
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
    checkpoint = open_checkpoint(log.checkpoint().note, log_key(authority))
    reader = LogReader(authority.store)
    for decision_id in (ids[0], ids[17], ids[-1]):
        proof = reader.prove_decision(decision_id, checkpoint)
        assert proof.verifies()
    proof = reader.prove_decision(ids[5], checkpoint)
    assert not proof.__class__(
        proof.seq,
        proof.entry.replace(b'"allow"', b'"deny"'),
        proof.leaf_hash,
        proof.path,
        proof.checkpoint,
    ).verifies()
    consistency = reader.consistency_proof(10, 37)
    assert verify_consistency(10, 37, _root_at(authority, 10), checkpoint.root, consistency)


def _root_at(authority: IdentityAuthority, size: int) -> bytes:
    frontier = Frontier()
    for _, entry in LogReader(authority.store).entries(0, size):
        frontier.append(leaf_hash(entry))
    return frontier.root()


def test_checkpoints_come_at_least_once_a_second(authority: IdentityAuthority) -> None:
    log = open_decision_log(authority)
    try:
        for _ in range(3):
            decision, request = a_decision()
            log.record(decision, request, enforcement_point=GATEWAY)
            time.sleep(1.2)
        sizes = [size for size, _ in LogReader(authority.store).checkpoints()]
        assert sizes[:3] == [1, 2, 3]
    finally:
        log.close()


def test_several_writers_share_one_log(authority: IdentityAuthority) -> None:
    first, second = open_decision_log(authority), open_decision_log(authority)
    try:

        def write(log: DecisionLog) -> None:
            for _ in range(40):
                decision, request = a_decision()
                log.record(decision, request, enforcement_point=GATEWAY)

        threads = [threading.Thread(target=write, args=(log,)) for log in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first.checkpoint()
        second.checkpoint()
    finally:
        first.close()
        second.close()
    with authority.store.begin() as conn:
        seqs = [r.seq for r in conn.execute(select(schema.audit_entries.c.seq).order_by("seq"))]
    assert seqs == list(range(80))
    verified(authority)


def test_identity_and_policy_events_are_copied_once(authority: IdentityAuthority) -> None:
    followers = [open_decision_log(authority, follow_events=True) for _ in range(2)]
    try:
        authority.agents.register("hr-bot", owner="people")
        authority.agents.quarantine("hr-bot", "odd hours")
        deadline = time.monotonic() + 5
        reader = LogReader(authority.store)
        while len(reader.search(kind="identity")) < 2:
            assert time.monotonic() < deadline, "events did not reach the log"
            time.sleep(0.05)
        time.sleep(0.5)  # both followers ran again: nothing is copied twice
    finally:
        for follower in followers:
            follower.close()
    events = LogReader(authority.store).search(kind="identity")
    assert [e["status"] for e in reversed(events)] == ["active", "quarantined"]
    assert {e["spiffe_id"] for e in events} == {"spiffe://example.org/agent/hr-bot"}
    verified(authority)


def test_a_closed_log_refuses_to_record(authority: IdentityAuthority) -> None:
    log = open_decision_log(authority)
    log.close()
    decision, request = a_decision()
    with pytest.raises(AuditError):
        log.record(decision, request, enforcement_point=GATEWAY)


def test_entries_of_one_loop_turn_keep_their_order(
    authority: IdentityAuthority, log: DecisionLog
) -> None:
    import asyncio

    ids = asyncio.run(_record_many(log, 50))  # all fifty submitted in one turn of the loop
    positions = [LogReader(authority.store).decision(i)["seq"] for i in ids]  # type: ignore[index]
    assert positions == sorted(positions)
    verified(authority)


def test_a_log_closed_before_the_turn_ends_refuses_what_was_staged(
    authority: IdentityAuthority,
) -> None:
    import asyncio

    log = open_decision_log(authority)
    decision, request = a_decision()

    async def go() -> None:
        staged = asyncio.ensure_future(
            log.record_async(decision, request, enforcement_point=GATEWAY)
        )
        await asyncio.sleep(0)  # the entry is staged; the hand-over comes at the turn's end
        log.close()
        with pytest.raises(AuditError) as refused:
            await staged
        assert refused.value.code == "record_failed"

    asyncio.run(go())
    assert LogReader(authority.store).decision(decision.decision_id) is None


def test_response_actions_are_entries_too(authority: IdentityAuthority, log: DecisionLog) -> None:
    log.append("response", {"action": "quarantine", "agent": AGENT, "playbook": "bulk-export"})
    (entry,) = LogReader(authority.store).search(kind="response")
    assert entry["action"] == "quarantine" and entry["seq"] == 0


def test_export_as_ocsf_and_opentelemetry(authority: IdentityAuthority, log: DecisionLog) -> None:
    for allow in (True, False):
        decision, request = a_decision(allow=allow)
        log.record(decision, request, enforcement_point=GATEWAY)
    entries = list(reversed(LogReader(authority.store).search()))
    allowed, denied = (export.to_ocsf(e) for e in entries)
    assert (allowed["class_uid"], allowed["type_uid"], allowed["status_id"]) == (6003, 600302, 1)
    assert denied["actor"]["authorizations"][0] == {
        "decision": "denied",
        "policy": {
            "uid": "payroll-only-hr",
            "name": "payroll-only-hr",
            "desc": "invoice agents never read payroll",
        },
    }
    assert denied["actor"]["user"]["uid"] == AGENT and denied["time"] > 0
    otel = export.to_otel(entries)
    records = otel["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert [r["severityText"] for r in records] == ["INFO", "WARN"]
    json.dumps(otel)  # JSON all the way down


def test_sealed_history_moves_to_files_that_verify(
    authority: IdentityAuthority, log: DecisionLog, tmp_path: Path
) -> None:
    ids = []
    for _ in range(30):
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
    sealed = log.checkpoint()
    for _ in range(5):
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        ids.append(decision.decision_id)
    made = archive(authority.store, tmp_path / "archive", sealed.size)
    assert (made.start, made.end) == (0, 30)
    assert verify_archive(made.path, log_key(authority)) == []
    reader = LogReader(authority.store)
    assert reader.decision(ids[0]) is None and reader.decision(ids[-1]) is not None
    verified(authority)  # the store's part still verifies, from where the archive ends
    latest = open_checkpoint(log.checkpoint().note, log_key(authority))
    assert reader.prove_decision(ids[-1], latest).verifies()  # proofs still work
    lines = made.path.read_text().splitlines()
    lines[5] = lines[5].replace('\\"allow\\"', '\\"deny\\"')
    made.path.write_text("\n".join(lines) + "\n")
    assert verify_archive(made.path, log_key(authority)) != []
    with authority.store.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar_one() == 5


def test_positions_continue_after_everything_was_archived(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    log = open_decision_log(authority)
    try:
        for _ in range(4):
            decision, request = a_decision()
            log.record(decision, request, enforcement_point=GATEWAY)
        archive(authority.store, tmp_path, log.checkpoint().size)
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        entry = LogReader(authority.store).decision(decision.decision_id)
        assert entry is not None and entry["seq"] == 4
        assert log.checkpoint().size == 5
    finally:
        log.close()
    reopened = open_decision_log(authority)  # a new writer picks up from the archive too
    try:
        decision, request = a_decision()
        reopened.record(decision, request, enforcement_point=GATEWAY)
        assert LogReader(authority.store).decision(decision.decision_id)["seq"] == 5  # type: ignore[index]
    finally:
        reopened.close()
    verified(authority)


def test_log_writers_on_one_sqlite_file_take_turns(authority: IdentityAuthority) -> None:
    """The file lock beside a SQLite store: a second writer waits while the first holds it,
    and goes on once it is released (PostgreSQL needs none: its advisory lock wakes waiters)."""
    from warden.audit.writer_lock import WriterLock

    first, second = WriterLock(authority.store), WriterLock(authority.store)
    if authority.store.dialect != "sqlite":
        with first.held(), second.held():  # no file: nothing to wait for
            return
    acquired = threading.Event()

    def take() -> None:
        with second.held():
            acquired.set()

    with first.held():
        waiter = threading.Thread(target=take)
        waiter.start()
        assert not acquired.wait(0.3)  # held by the first writer
    assert acquired.wait(5)
    waiter.join()
    first.close()
    second.close()
