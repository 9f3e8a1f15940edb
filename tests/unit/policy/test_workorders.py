"""Work orders: constraints, matching, and atomic use under concurrency (both stores)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from warden.clock import utcnow
from warden.policy.workorders import (
    Constraint,
    InvalidWorkOrder,
    WorkOrderStore,
    matching_work_order,
    parse_constraint,
)
from warden.store import Store

AGENT = "spiffe://example.org/agent/bot"


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (Constraint("format", "equals", "csv"), "csv", "json"),
        (Constraint("rows", "equals", 5), 5, "5"),
        (Constraint("format", "one_of", ["csv", "json"]), "json", "xml"),
        (Constraint("rows", "max", 100), 100, 101),
        (Constraint("rows", "min", 1), 1, 0),
        (Constraint("path", "prefix", "/reports/"), "/reports/q3", "/etc/passwd"),
        (Constraint("account", "regex", r"[0-9]{8}"), "12345678", "12345678; DROP"),
    ],
)
def test_constraints(constraint: Constraint, good: object, bad: object) -> None:
    assert constraint.allows({constraint.arg: good})
    assert not constraint.allows({constraint.arg: bad})
    assert not constraint.allows({})  # a missing argument never satisfies a constraint


def test_numeric_bounds_refuse_booleans_and_text() -> None:
    bound = Constraint("rows", "max", 100)
    assert not bound.allows({"rows": True})
    assert not bound.allows({"rows": "1"})


def test_invalid_constraints() -> None:
    for args in (
        ("rows", "max", "x"),
        ("x", "lt", 1),
        ("x", "regex", "(a"),
        ("x", "one_of", []),
        ("", "equals", 1),
        ("x", "regex", "a" * 600),
    ):
        with pytest.raises(InvalidWorkOrder):
            Constraint(*args)  # type: ignore[arg-type]


def test_regex_runs_in_linear_time() -> None:
    evil = Constraint("x", "regex", r"(a+)+$")
    assert not evil.allows({"x": "a" * 50_000 + "!"})  # catastrophic for backtracking engines


def test_short_forms() -> None:
    assert parse_constraint("rows<=100") == Constraint("rows", "max", 100)
    assert parse_constraint("rows>=1") == Constraint("rows", "min", 1)
    assert parse_constraint("format in csv, json") == Constraint(
        "format", "one_of", ["csv", "json"]
    )
    assert parse_constraint("path^=/r/").op == "prefix"
    assert parse_constraint("acct~=[0-9]{8}").op == "regex"
    assert parse_constraint("dest=s3://x") == Constraint("dest", "equals", "s3://x")
    with pytest.raises(InvalidWorkOrder):
        parse_constraint("gibberish")


def test_matching_is_pure_and_picks_the_soonest(store: Store) -> None:
    orders = WorkOrderStore(store)
    late = orders.create(
        agent=AGENT,
        ticket="T-1",
        actions=["data:export"],
        resources=["Dataset:customers"],
        ttl_s=7200,
        max_uses=3,
        issued_by="t",
    )
    soon = orders.create(
        agent=AGENT,
        ticket="T-2",
        actions=["data:export"],
        resources=["Dataset:cust*"],
        ttl_s=600,
        max_uses=3,
        issued_by="t",
        constraints=[Constraint("rows", "max", 10)],
    )
    found = orders.list(agent=AGENT, open_only=True)
    now = utcnow()
    pick = matching_work_order(
        found,
        action="data:export",
        resource_type="Dataset",
        resource_id="customers",
        args={"rows": 5},
        now=now,
    )
    assert pick is not None and pick.id == soon.id
    pick = matching_work_order(
        found,
        action="data:export",
        resource_type="Dataset",
        resource_id="customers",
        args={"rows": 500},
        now=now,
    )
    assert pick is not None and pick.id == late.id
    assert (
        matching_work_order(
            found,
            action="http:GET",
            resource_type="Dataset",
            resource_id="customers",
            args={},
            now=now,
        )
        is None
    )
    assert (
        matching_work_order(
            found,
            action="data:export",
            resource_type="Dataset",
            resource_id="customers",
            args={},
            now=now + timedelta(hours=3),
        )
        is None
    )


def test_max_uses_hold_under_concurrent_requests(store: Store) -> None:
    orders = WorkOrderStore(store)
    order = orders.create(
        agent=AGENT,
        ticket="T-3",
        actions=["http:GET"],
        resources=["Endpoint:x"],
        max_uses=5,
        issued_by="t",
    )
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: orders.consume(order.id), range(40)))
    assert results.count(True) == 5
    assert orders.get(order.id).uses == 5


def test_expired_and_closed_orders_give_nothing(store: Store) -> None:
    orders = WorkOrderStore(store)
    order = orders.create(
        agent=AGENT,
        ticket="T-4",
        actions=["http:GET"],
        resources=["Endpoint:x"],
        max_uses=5,
        ttl_s=60,
        issued_by="t",
    )
    assert not orders.consume(order.id, now=utcnow() + timedelta(minutes=5))
    assert orders.consume(order.id)
    orders.close(order.id, "done")
    assert not orders.consume(order.id)
    assert orders.get(order.id).status == "closed"


def test_creation_is_validated(store: Store) -> None:
    orders = WorkOrderStore(store)
    good = {
        "agent": AGENT,
        "ticket": "T",
        "actions": ["http:GET"],
        "resources": ["Endpoint:x"],
        "issued_by": "t",
    }
    for bad in (
        {"ticket": ""},
        {"actions": []},
        {"resources": ["no-colon"]},
        {"max_uses": 0},
        {"ttl_s": 0},
    ):
        with pytest.raises(InvalidWorkOrder):
            orders.create(**{**good, **bad})  # type: ignore[arg-type]
