"""Attacks on the stored decision log, each detected and located by ``warden audit verify``'s
verifier: a flipped decision, an edit with its hash recomputed, the newest 1,000 entries
dropped, two entries swapped, a deleted entry, a forged checkpoint; and a witness that will not
take a rolled-back or forked history, even one signed with the log's own key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from tests.support.audit import GATEWAY, a_decision, log_key
from warden.audit import checkpoint as checkpoints
from warden.audit.merkle import leaf_hash
from warden.audit.reader import LogReader
from warden.audit.setup import open_decision_log
from warden.audit.verify import Report, verify_log
from warden.audit.witness import (
    HttpWitnessClient,
    WitnessDirectory,
    WitnessPublisher,
    WitnessRefused,
    proof_source,
)
from warden.audit.witness_app import witness_app
from warden.identity.authority import IdentityAuthority
from warden.identity.ca.log_keys import LogKeys
from warden.transport import serving

ENTRIES = 1500


@pytest.fixture
def filled(authority: IdentityAuthority) -> Iterator[tuple[IdentityAuthority, list[str]]]:
    """A log of 1,501 decisions, every tenth a deny, sealed by a checkpoint."""
    log = open_decision_log(authority)
    pairs = [a_decision(allow=i % 10 != 0) for i in range(ENTRIES)]
    try:

        async def fill() -> None:
            for start in range(0, ENTRIES, 300):  # 300 waiting at a time: group commits
                await asyncio.gather(
                    *(
                        log.record_async(d, r, enforcement_point=GATEWAY)
                        for d, r in pairs[start : start + 300]
                    )
                )

        asyncio.run(fill())
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        log.checkpoint()
    finally:
        log.close()
    yield authority, [d.decision_id for d, _ in pairs]


def verify(authority: IdentityAuthority, *, kept: list[str] = (), mac: bool = True) -> Report:  # type: ignore[assignment]
    return verify_log(
        authority.store,
        log_key(authority),
        mac_key=authority.ca.log_keys().entry_mac_key if mac else None,
        kept=[("kept", note) for note in kept],
    )


def sql(authority: IdentityAuthority, statement: str, **params: object) -> None:
    with authority.store.begin() as conn:
        conn.execute(text(statement), params)


def entry_of(authority: IdentityAuthority, seq: int) -> bytes:
    with authority.store.begin() as conn:
        return bytes(
            conn.execute(
                text("SELECT entry FROM audit_entries WHERE seq = :s"), {"s": seq}
            ).scalar_one()
        )


def test_an_untouched_log_verifies(filled: tuple[IdentityAuthority, list[str]]) -> None:
    authority, _ = filled
    report = verify(authority)
    assert report.ok, [str(p) for p in report.problems]
    assert report.size == ENTRIES + 1 and report.verified_size == ENTRIES + 1


def test_a_flipped_decision_is_found(filled: tuple[IdentityAuthority, list[str]]) -> None:
    authority, _ = filled
    edited = entry_of(authority, 700).replace(b'"decision":"deny"', b'"decision":"allow"')
    sql(
        authority,
        "UPDATE audit_entries SET entry = :e, decision = 'allow' WHERE seq = 700",
        e=edited,
    )
    report = verify(authority)
    assert not report.ok
    assert "entry 700: modified: its hash does not match" in [str(p) for p in report.problems]
    assert any(
        "checkpoint 1501" in str(p) and "first bad entry 700" in str(p) for p in report.problems
    )


def test_an_edit_with_its_hash_recomputed_is_found(
    filled: tuple[IdentityAuthority, list[str]],
) -> None:
    authority, _ = filled
    edited = entry_of(authority, 300).replace(b'"decision":"deny"', b'"decision":"allow"')
    sql(
        authority,
        "UPDATE audit_entries SET entry = :e, leaf_hash = :h WHERE seq = 300",
        e=edited,
        h=leaf_hash(edited),
    )
    report = verify(authority)
    assert any(str(p).startswith("entry 300: modified and re-hashed") for p in report.problems)
    # Without the log's keys (an outside auditor): the signed root still catches it.
    outside = verify(authority, mac=False)
    assert not outside.ok
    assert any("checkpoint 1501" in str(p) for p in outside.problems)


def test_dropping_the_newest_thousand_entries_is_found(
    filled: tuple[IdentityAuthority, list[str]],
) -> None:
    authority, _ = filled
    kept = LogReader(authority.store).latest_checkpoint_note()  # a verifier kept this one
    assert kept is not None
    sql(authority, "DELETE FROM audit_entries WHERE seq >= :n", n=ENTRIES + 1 - 1000)
    sql(authority, "DELETE FROM audit_checkpoints")  # and hid the log's own checkpoints
    report = verify(authority, kept=[kept])
    assert [str(p) for p in report.problems] == [
        f"kept: covers {ENTRIES + 1} entries, the log holds only {ENTRIES + 1 - 1000}: truncated"
    ]


def test_two_swapped_entries_are_found(filled: tuple[IdentityAuthority, list[str]]) -> None:
    authority, _ = filled
    with authority.store.begin() as conn:
        rows = {
            r.seq: r
            for r in conn.execute(
                text("SELECT seq, entry, leaf_hash, mac FROM audit_entries WHERE seq IN (10, 11)")
            )
        }
        for seq, other in ((10, 11), (11, 10)):
            conn.execute(
                text(
                    "UPDATE audit_entries SET entry = :e, leaf_hash = :h, mac = :m WHERE seq = :s"
                ),
                {
                    "e": rows[other].entry,
                    "h": rows[other].leaf_hash,
                    "m": rows[other].mac,
                    "s": seq,
                },
            )
    report = verify(authority)
    located = {p.seq for p in report.problems if p.seq is not None}
    assert located == {10, 11}
    assert not verify(authority, mac=False).ok


def test_a_deleted_entry_is_found(filled: tuple[IdentityAuthority, list[str]]) -> None:
    authority, _ = filled
    sql(authority, "DELETE FROM audit_entries WHERE seq = 42")
    report = verify(authority)
    assert "entries 42-42: missing (deleted)" in [str(p) for p in report.problems]


def test_a_forged_checkpoint_is_found(
    filled: tuple[IdentityAuthority, list[str]], tmp_path: Path
) -> None:
    authority, _ = filled
    from cryptography.hazmat.primitives.asymmetric import ed25519

    impostor = LogKeys(authority.ca.log_keys().name, ed25519.Ed25519PrivateKey.generate())
    forged = checkpoints.sign(impostor, 99999, b"\x00" * 32)
    sql(
        authority,
        "INSERT INTO audit_checkpoints (size, root, note, at) VALUES (99999, :r, :n, :t)",
        r=b"\x00" * 32,
        n=forged.note,
        t="2026-12-01 00:00:00.000000",
    )
    report = verify(authority)
    assert [str(p) for p in report.problems] == [
        "checkpoint 99999: forged or damaged: the checkpoint is not signed by this log's key"
    ]


def test_the_log_refuses_to_sign_over_a_rewritten_past(
    filled: tuple[IdentityAuthority, list[str]],
) -> None:
    authority, _ = filled
    edited = entry_of(authority, 5).replace(b'"decision":"allow"', b'"decision":"deny"')
    sql(
        authority,
        "UPDATE audit_entries SET entry = :e, leaf_hash = :h WHERE seq = 5",
        e=edited,
        h=leaf_hash(edited),
    )
    # Rewrite the stored tree over it too, the way a careful attacker would.
    from warden.audit.merkle import Frontier

    frontier = Frontier()
    nodes = []
    for _, entry in LogReader(authority.store).entries(0, ENTRIES + 1):
        nodes.extend(frontier.append(leaf_hash(entry)))
    with authority.store.begin() as conn:
        for level, index, value in nodes:
            conn.execute(
                text("UPDATE audit_nodes SET hash = :h WHERE level = :l AND idx = :i"),
                {"h": value, "l": level, "i": index},
            )
    log = open_decision_log(authority)
    try:
        decision, request = a_decision()
        log.record(decision, request, enforcement_point=GATEWAY)
        with pytest.raises(Exception, match="not consistent"):
            log.checkpoint()
    finally:
        log.close()


# -- witnesses ------------------------------------------------------------------------------


def test_a_witness_takes_only_consistent_history(
    authority: IdentityAuthority, tmp_path: Path
) -> None:
    key = log_key(authority)
    witness = WitnessDirectory(tmp_path / "witness", key)
    log = open_decision_log(authority)
    publisher = WitnessPublisher(witness, proof_source(authority.store.engine))
    try:
        for round_ in range(3):
            for _ in range(20):
                decision, request = a_decision()
                log.record(decision, request, enforcement_point=GATEWAY)
            publisher.offer(log.checkpoint())
            _settled(publisher, 20 * (round_ + 1))
        latest = witness.latest()
        assert latest is not None and latest.size == 60
        # The log host, with its own key, signs a rolled-back head, then a forked one.
        keys = authority.ca.log_keys()
        with pytest.raises(WitnessRefused, match="rollback"):
            witness.submit(checkpoints.sign(keys, 40, b"\x11" * 32).note, [])
        with pytest.raises(WitnessRefused, match="fork"):
            witness.submit(checkpoints.sign(keys, 80, b"\x22" * 32).note, [b"\x33" * 32])
        assert (tmp_path / "witness" / "alarms.jsonl").exists()
        # And a verifier reading the witness finds a truncated log.
        sql(authority, "DELETE FROM audit_entries WHERE seq >= 50")
        report = verify(authority, kept=[latest.note])
        assert any("truncated" in str(p) for p in report.problems)
    finally:
        publisher.close()
        log.close()


def _settled(publisher: WitnessPublisher, size: int) -> None:
    import time

    deadline = time.monotonic() + 5
    while publisher.published is None or publisher.published.size < size:
        assert time.monotonic() < deadline, publisher.failure
        time.sleep(0.02)


def test_a_witness_over_http(authority: IdentityAuthority, tmp_path: Path) -> None:
    key = log_key(authority)
    app = witness_app(WitnessDirectory(tmp_path / "witness", key))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))

    async def serve() -> None:
        await server.serve()

    thread, port = serving.start_in_thread(server, serve, "witness")
    client = HttpWitnessClient(f"http://127.0.0.1:{port}", key)
    log = open_decision_log(authority)
    publisher = WitnessPublisher(client, proof_source(authority.store.engine))
    try:
        for _ in range(2):
            for _ in range(7):
                decision, request = a_decision()
                log.record(decision, request, enforcement_point=GATEWAY)
            publisher.offer(log.checkpoint())
        _settled(publisher, 14)
        assert client.latest().size == 14  # type: ignore[union-attr]
        forked = checkpoints.sign(authority.ca.log_keys(), 20, b"\x44" * 32).note
        with pytest.raises(WitnessRefused):
            client.submit(forked, [b"\x55" * 32])
        assert httpx.post(f"http://127.0.0.1:{port}/checkpoint", content=b"[]").status_code == 400
        assert json.loads(
            httpx.post(f"http://127.0.0.1:{port}/checkpoint", json={"note": "x"}).text
        )["error"]
    finally:
        publisher.close()
        log.close()
        serving.stop(server, thread)
