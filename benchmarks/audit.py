"""Decision log benchmark: durable appends (32 concurrent writers, group commit, a checkpoint
every second) on SQLite, verification of the whole log, and inclusion proofs, with entries of
about 1 KB; against the baselines of the same run: the same rows written by plain executemany
commits, and read back without checking anything.

    python benchmarks/audit.py [--quick] [--json PATH]

JSON keys: durable_appends_per_s, baseline_appends_per_s, verify_records_per_s,
baseline_reads_per_s, verify_1m_s, inclusion_proof_ms, entries_verified, fsync_p50_ms.
``--quick`` verifies 200,000 entries and gives verify_1m_s from their rate; the full run
verifies 1,000,000. Appends run in rounds (2 quick, 5 full), each followed by its baseline, and
the log is verified three times; the figures are medians (with the lowest and highest round in
``*_min`` / ``*_max``).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.support.audit import GATEWAY, a_decision

from _common import parse_args, percentile, report
from warden.audit.checkpoint import VerifierKey
from warden.audit.checkpoint import verify as open_checkpoint
from warden.audit.reader import LogReader
from warden.audit.recorder import fsync_probe
from warden.audit.setup import open_decision_log
from warden.audit.verify import verify_log
from warden.clock import utcnow
from warden.config import load_settings
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.policy.model import Decision, new_decision_id
from warden.store import open_store
from warden.transport.loop import tune_for_serving

WRITERS = 32
# About 1 KB of canonical JSON per entry: a decision with a realistic context.
CONTEXT = {
    "route": "ledger",
    "destination_region": "eu",
    "args": {"limit": 10, "query": "invoices due this week for the northern region " * 3},
    "tool": "ledger-search",
}


def authority_in(root: Path) -> IdentityAuthority:
    settings = load_settings(state_dir=root / "state")
    settings.state_dir.mkdir(mode=0o700, parents=True)
    store = open_store(settings.database)
    keys = FileKeyManager.create(settings.state_dir / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, "bench.example")
    return IdentityAuthority.from_parts(settings, store, keys)


async def append_for(authority: IdentityAuthority, seconds: float) -> tuple[int, float]:
    log = open_decision_log(authority)
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        # The decision is made once; each append is a new decision (its own id and time),
        # made with the constructor: what the log costs, not what dataclasses.replace costs.
        d, request = a_decision(**CONTEXT)
        rest = (d.reasons, d.obligations, d.risk, d.policy_revision, d.work_order)
        while time.perf_counter() < deadline:
            fresh = Decision(new_decision_id(), d.decision, *rest, utcnow(), d.errors, d.health)
            await log.record_async(fresh, request, enforcement_point=GATEWAY)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    elapsed = time.perf_counter() - start
    await asyncio.to_thread(log.close)
    return done, elapsed


def fill(authority: IdentityAuthority, count: int) -> list[str]:
    """Append ``count`` entries as fast as the log takes them; some decision ids to prove."""
    log = open_decision_log(authority)
    sample: list[str] = []

    async def go() -> None:
        batch = 2000
        for start in range(0, count, batch):
            pairs = [a_decision(**CONTEXT) for _ in range(min(batch, count - start))]
            await asyncio.gather(
                *(log.record_async(d, r, enforcement_point=GATEWAY) for d, r in pairs)
            )
            sample.append(pairs[0][0].decision_id)

    asyncio.run(go())
    log.checkpoint()
    log.close()
    return sample


def baseline_appends(db: Path, entry: bytes, seconds: float) -> float:
    """Rows of the same size, committed in batches of 32 with fsync, no hashing."""
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, entry BLOB, h BLOB)")
    done, seq = 0, 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        rows = [(seq + i, entry, entry[:32]) for i in range(WRITERS)]
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        connection.commit()
        seq += WRITERS
        done += WRITERS
    elapsed = time.perf_counter() - start
    connection.close()
    return done / elapsed


def baseline_reads(db: Path) -> float:
    connection = sqlite3.connect(db)
    start = time.perf_counter()
    count = 0
    cursor = connection.execute("SELECT seq, entry, leaf_hash, mac FROM audit_entries ORDER BY seq")
    while rows := cursor.fetchmany(8192):
        count += len(rows)
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


def main() -> None:
    args = parse_args(__doc__ or "")
    # Rounds of appends, each followed by its baseline, and repeated verifications: the
    # figures are medians, so one slow spell of a shared machine does not decide them.
    rounds, each = (2, 2.5) if args.quick else (5, 3.0)
    entries = 200_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="warden-audit-bench-") as tmp:
        root = Path(tmp)
        writes = authority_in(root / "appends")
        # As in Warden's servers, where the log runs: the start-up heap frozen and the young
        # generation collected once per 20,000 allocations.
        tune_for_serving()
        appends, baselines = [], []
        for number in range(rounds):
            done, elapsed = asyncio.run(append_for(writes, each))
            appends.append(done / elapsed)
            sample_entry = LogReader(writes.store).entries(0, 1)[0][1]
            baseline_db = root / f"baseline-{number}.db"
            baselines.append(baseline_appends(baseline_db, sample_entry, each / 2))
        writes.store.dispose()

        log_root = root / "verify"
        authority = authority_in(log_root)
        sample = fill(authority, entries)
        key = VerifierKey.parse(authority.ca.log_keys().verifier_key)
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            result = verify_log(authority.store, key, mac_key=authority.ca.log_keys().entry_mac_key)
            timings.append(time.perf_counter() - start)
            assert result.ok, [str(p) for p in result.problems][:5]
        verify_s = median(timings)
        reads = baseline_reads(log_root / "state" / "warden.db")

        reader = LogReader(authority.store)
        note = reader.latest_checkpoint_note()
        assert note is not None
        checkpoint = open_checkpoint(note, key)
        proofs = []
        for decision_id in random.sample(sample, min(len(sample), 200)) * 3:
            begin = time.perf_counter()
            proof = reader.prove_decision(decision_id, checkpoint)
            proofs.append((time.perf_counter() - begin) * 1000)
            assert proof.verifies()
        authority.store.dispose()
        fsyncs = [fsync_probe(root / "fsync.probe") * 1000 for _ in range(100)]
    rate = result.size / verify_s
    figures = {
        "durable_appends_per_s": round(median(appends), 1),
        "durable_appends_per_s_min": round(min(appends), 1),
        "durable_appends_per_s_max": round(max(appends), 1),
        "baseline_appends_per_s": round(median(baselines), 1),
        "verify_records_per_s": round(rate, 1),
        "baseline_reads_per_s": round(reads, 1),
        "verify_1m_s": round(1_000_000 / rate, 3),
        "verify_s_min": round(min(timings), 3),
        "verify_s_max": round(max(timings), 3),
        "inclusion_proof_ms": round(percentile(proofs, 50), 3),
        "entries_verified": result.size,
        "entry_bytes": len(sample_entry),
        "fsync_p50_ms": round(percentile(fsyncs, 50), 3),
        "cpus": os.cpu_count() or 1,
    }
    rows = [
        (
            "durable appends, 32 writers, checkpoint/s",
            figures["durable_appends_per_s"],
            "/s",
            ">= 20,000",
        ),
        (
            "  lowest round / highest round",
            figures["durable_appends_per_s_min"],
            f"/s / {figures['durable_appends_per_s_max']:,.0f}/s",
            "",
        ),
        ("baseline: plain SQLite commits of 32 rows", figures["baseline_appends_per_s"], "/s", ""),
        (f"verification of {result.size:,} entries", verify_s, "s", ""),
        (
            "  fastest / slowest of 3",
            figures["verify_s_min"],
            f"s / {figures['verify_s_max']:.2f} s",
            "",
        ),
        ("verification rate", figures["verify_records_per_s"], "/s", ""),
        ("baseline: reading the rows back", figures["baseline_reads_per_s"], "/s", ""),
        (
            "1,000,000 entries verified in"
            + (" (from the 200,000 rate, start-up included)" if args.quick else ""),
            figures["verify_1m_s"],
            "s",
            "<= 5",
        ),
        ("inclusion proof p50", figures["inclusion_proof_ms"], "ms", "<= 1"),
        ("entry size", figures["entry_bytes"], "bytes", "about 1 KB"),
        ("fdatasync of a small append p50", figures["fsync_p50_ms"], "ms", ""),
    ]
    report(
        f"decision log benchmark ({'quick' if args.quick else 'full'}, medians of {rounds} rounds)",
        rows,
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
