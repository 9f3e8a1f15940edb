"""Policy decision benchmark: decide() with the default pack, 1,000 agents and 100 open work
orders, against the same requests through a naive cedarpy.is_authorized call (policies parsed
each call, the full entity set converted each call), in one run, on one core.

    python benchmarks/decide.py [--quick] [--json PATH]

JSON keys: decide_p50_us, decide_p99_us, decide_per_s, decide_uncached_p50_us,
decide_uncached_p99_us, decide_uncached_per_s, naive_p50_us, p50_ratio_100k_vs_100,
uncached_p50_ratio_100k_vs_100.

"decide" is the engine as deployed: Cedar's answers are memoised on exactly the inputs Cedar
sees (agent facts, action, resource, the context attributes the policies read). "uncached"
turns that memo off, so every decision calls Cedar. Traffic: each agent keeps to a profile of
three routes with varied arguments (3% unusual); the engine is warmed on one stretch of traffic
and timed on the next, so memo misses are counted too.
"""

from __future__ import annotations

import gc
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

import cedarpy

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_args, percentile, pin_to_one_core, report
from warden.clock import utcnow
from warden.policy.bundle import BundleFiles, compile_bundle
from warden.policy.decide import decide
from warden.policy.model import DecisionRequest
from warden.policy.packs import shipped_policies
from warden.policy.schema_actions import action_entities
from warden.policy.snapshot import AgentFacts, EntityCache, PolicySnapshot, Signal
from warden.policy.workorders import Constraint, WorkOrder

GROUPS = ["finance", "healthcare", "retail", "hr"]
ROUTES = [
    (
        "http:GET",
        "Endpoint",
        "ledger/invoices",
        {"domain": "finance", "classification": "internal"},
    ),
    ("http:POST", "Endpoint", "ledger/payments", {"domain": "finance", "classification": "pci"}),
    (
        "http:GET",
        "Endpoint",
        "hr/payroll",
        {"domain": "finance", "tags": ["payroll"], "classification": "pii"},
    ),
    ("data:export", "Dataset", "customers", {"domain": "finance", "classification": "pii"}),
    (
        "http:GET",
        "Endpoint",
        "ehr/patients",
        {"domain": "healthcare", "classification": "phi", "region": "eu"},
    ),
    ("http:GET", "Endpoint", "ehr/formulary", {"domain": "healthcare"}),
    ("http:GET", "Endpoint", "inventory/items", {"domain": "retail", "tags": ["inventory"]}),
    ("http:GET", "Endpoint", "pricing/list", {"domain": "retail", "tags": ["pricing"]}),
    ("mcp:tools/call", "Tool", "crm-search", {"domain": "finance", "classification": "pii"}),
    ("http:DELETE", "Endpoint", "backups/nightly", {"domain": "finance", "tags": ["backup"]}),
]


def agent_id(i: int) -> str:
    return f"spiffe://bench.example/agent/agent-{i}"


def make_snapshot(agents: int, orders: int, *, memo: bool) -> PolicySnapshot:
    bundle = compile_bundle(BundleFiles.read(shipped_policies() / "default"))
    now = utcnow()
    facts = {
        agent_id(i): AgentFacts.of(
            agent_id(i), f"team-{i % 17}", {"tier": str(i % 3)}, [GROUPS[i % len(GROUPS)]], "active"
        )
        for i in range(agents)
    }
    good = {a: Signal({"score": 100, "status": "healthy", "phi_per_minute": 1}, now) for a in facts}
    work_orders: dict[str, tuple[WorkOrder, ...]] = {}
    for i in range(orders):
        owner = agent_id(i * 7 % agents)
        work_orders[owner] = (
            *work_orders.get(owner, ()),
            WorkOrder(
                id=f"wo-{i}",
                agent=owner,
                ticket=f"FIN-{i}",
                actions=frozenset({"data:export"}),
                resources=("Dataset:customers",),
                constraints=(Constraint("rows", "max", 500),),
                not_before=now - timedelta(hours=1),
                expires_at=now + timedelta(hours=1),
                max_uses=1_000_000,
                uses=0,
                status="open",
                issued_by="bench",
                created_at=now,
            ),
        )
    snapshot = PolicySnapshot(
        bundle,
        facts,
        work_orders,
        good,
        good,
        good,
        entity_cache=EntityCache(remember_answers=memo),
    )
    gc.collect()
    gc.freeze()  # keep the large, long-lived snapshot out of full collections
    return snapshot


ARGS = [{}, {"limit": 10}, {"limit": 50}, {"rows": 100}, {"limit": 25}, {"rows": 10}]
OUTLIERS = [{"limit": 5000}, {"rows": 50_000}, {"limit": 731}, {"rows": 2048}]


def requests(population: int, count: int, seed: int) -> list[DecisionRequest]:
    """Traffic where each agent keeps to its own profile (a few routes, one way of
    authenticating, one destination) with varied arguments and 3% unusual ones."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        agent = rng.randrange(population)
        profile = random.Random(agent)
        routes = profile.sample(ROUTES, 3)
        authn = profile.choice(["mtls", "mtls", "jwt"])
        region = profile.choice(["eu", "us"])
        action, rtype, rid, props = rng.choice(routes)
        args = rng.choice(OUTLIERS) if rng.random() < 0.03 else rng.choice(ARGS)
        out.append(
            DecisionRequest.from_dict(
                {
                    "subject": {"type": "Agent", "id": agent_id(agent)},
                    "action": {"name": action},
                    "resource": {"type": rtype, "id": rid, "properties": props},
                    "context": {"authn": authn, "args": args, "destination_region": region},
                }
            )
        )
    return out


def measure(
    snapshot: PolicySnapshot, warm: list[DecisionRequest], batch: list[DecisionRequest]
) -> tuple[list[float], float]:
    """Warm on earlier traffic, then time different traffic from the same agents."""
    now = utcnow()
    for request in warm:
        decide(request, snapshot, now=now)
    samples = []
    start = time.perf_counter()
    for request in batch:
        t0 = time.perf_counter_ns()
        decide(request, snapshot, now=now)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    elapsed = time.perf_counter() - start
    return samples, len(batch) / elapsed


def naive(snapshot: PolicySnapshot, batch: list[DecisionRequest]) -> list[float]:
    """Policies as text and every entity as a Python list, on every call."""
    bundle = snapshot.bundle
    entities = [
        {
            "uid": {"type": "Agent", "id": f.spiffe_id},
            "attrs": {"owner": f.owner, "labels": list(f.labels)},
            "parents": [{"type": "Group", "id": g} for g in f.groups],
        }
        for f in snapshot.agents.values()
    ] + [{"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in GROUPS]
    entities += action_entities(bundle.action_parents)
    for _, rtype, rid, props in ROUTES:
        entities.append(
            {
                "uid": {"type": rtype, "id": rid},
                "parents": [],
                "attrs": {
                    "classification": props.get("classification", "unclassified"),
                    "region": props.get("region", ""),
                    "domain": props.get("domain", ""),
                    "tags": props.get("tags", []),
                },
            }
        )
    samples = []
    for request in batch:
        context = {
            "authn": request.context["authn"],
            "args": request.context["args"],
            "bulk": False,
            "destination_region": request.context["destination_region"],
            "risk": {"score": 100, "status": "known"},
            "health": {"status": "healthy"},
            "dlp": {"status": "known", "phi_per_minute": 1},
            "work_order": {"present": False},
        }
        t0 = time.perf_counter_ns()
        cedarpy.is_authorized(
            {
                "principal": {"type": "Agent", "id": request.subject_id},
                "action": {"type": "Action", "id": request.action},
                "resource": {"type": request.resource.type, "id": request.resource.id},
                "context": context,
            },
            bundle.policy_text,
            entities,
        )
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def main() -> None:
    args = parse_args(__doc__ or "")
    core = pin_to_one_core()
    count = 5_000 if args.quick else 30_000
    figures: dict[str, float] = {}
    rows: list[tuple[str, float, str, str]] = []

    warm = requests(1000, count, seed=1)
    batch = requests(1000, count, seed=2)
    for memo, prefix in ((True, "decide"), (False, "decide_uncached")):
        snapshot = make_snapshot(1000, 100, memo=memo)
        samples, per_s = measure(snapshot, warm, batch)
        figures[f"{prefix}_p50_us"] = round(percentile(samples, 50), 1)
        figures[f"{prefix}_p99_us"] = round(percentile(samples, 99), 1)
        figures[f"{prefix}_per_s"] = round(per_s)
    naive_samples = naive(
        make_snapshot(1000, 100, memo=False), batch[: 200 if args.quick else 1000]
    )
    figures["naive_p50_us"] = round(percentile(naive_samples, 50), 1)

    for memo, key in ((True, "p50_ratio_100k_vs_100"), (False, "uncached_p50_ratio_100k_vs_100")):
        p50 = {}
        for population in (100, 100_000):
            snapshot = make_snapshot(population, 100, memo=memo)
            samples, _ = measure(
                snapshot, requests(population, count, seed=3), requests(population, count, seed=4)
            )
            p50[population] = percentile(samples, 50)
            del snapshot
            gc.unfreeze()
        figures[key] = round(p50[100_000] / p50[100], 3)

    rows = [
        ("decide() p50 (1,000 agents, 100 work orders)", figures["decide_p50_us"], "us", "<= 100"),
        ("decide() p99", figures["decide_p99_us"], "us", "<= 300"),
        ("decide() throughput", figures["decide_per_s"], "/s", ">= 10,000"),
        ("decide() p50, memo off (Cedar every time)", figures["decide_uncached_p50_us"], "us", ""),
        ("decide() p99, memo off", figures["decide_uncached_p99_us"], "us", ""),
        ("decide() throughput, memo off", figures["decide_uncached_per_s"], "/s", ""),
        ("baseline: naive cedarpy.is_authorized p50", figures["naive_p50_us"], "us", ""),
        ("p50 100,000 agents / 100 agents", figures["p50_ratio_100k_vs_100"], "x", "<= 1.2"),
        ("p50 100,000 / 100, memo off", figures["uncached_p50_ratio_100k_vs_100"], "x", ""),
    ]
    report(
        f"decide benchmark ({'quick' if args.quick else 'full'}, one core: {core})",
        rows,
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
