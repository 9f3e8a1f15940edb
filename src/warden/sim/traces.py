"""Traces of a simulated agent population: days of benign traffic with daily rhythms and
noise, agents that legitimately change how they work, and attacks injected at known times.

A trace is a list of :class:`Step` in time order, made deterministically from a seed: the same
arguments give the same trace, so detectors are tuned against traffic that does not move.
Time is seconds since the simulation's start, a Monday at 00:00 UTC; source addresses are in
127.0.0.0/8, one /24 per site, so days of traffic from many networks play on one machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from stdnum.us import rtn

from warden.sim.catalog import ROLES, Role, Use

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens: an agent's request, or a scan report about its workload
    (``kind="health"``, ``args["report"]``: ``critical`` or ``clean``)."""

    t: float
    agent: str
    action: str
    endpoint: str
    args: dict[str, Any] = field(default_factory=dict)
    source_ip: str = ""
    records: int = 0  # what the service answers with, if the request is allowed
    outbound: Any = None  # what the request body carries (a JSON document), if anything
    attack: str | None = None  # the attack this step belongs to; None: benign
    kind: str = "request"
    work_order: str | None = None  # the ticket of a work order the step acts under


@dataclass
class Agent:
    """One simulated agent: its role, where it runs from, how busy it is, what it knows."""

    name: str
    role: Role
    home: str  # its site's network, "127.S.N"
    hosts: tuple[int, ...]
    failover: str  # a second site it sometimes runs from, known from the start
    pace: float  # how busy it is against its role's rates
    vendors: dict[str, str] = field(default_factory=dict)  # vendor -> routing number
    customers: tuple[str, ...] = ()  # domains it sends invoices to

    def address(self, rng: random.Random, network: str | None = None) -> str:
        if network is None:
            network = self.failover if rng.random() < 0.02 else self.home
        return f"{network}.{rng.choice(self.hosts)}"


@dataclass
class Trace:
    steps: list[Step]
    agents: dict[str, Agent]
    days: float
    attacks: dict[str, float]  # attack -> when it starts
    changes: dict[str, str]  # agent -> the benign change it makes
    work_orders: list[dict[str, Any]]  # what the organisation grants (for the runner)


# The seed's attacks, and three more; each on its own agent, each named for what it does.
ATTACKS = {
    "bulk_export": "invoice-1",
    "payroll_new_network": "recon-2",
    "patient_flood": "records-1",
    "price_scraping": "pricing-2",
    "routing_change": "invoice-3",
    "container_vulnerable": "fraud-1",
    "slow_exfiltration": "records-3",
    "credential_replay": "inventory-2",
    "tool_misuse": "invoice-2",
}
SEED_ATTACKS = (
    "bulk_export",
    "payroll_new_network",
    "patient_flood",
    "price_scraping",
    "routing_change",
    "container_vulnerable",
)
# Benign agents that change how they work on the second day.
CHANGES = {
    "recon-1": "granted a new tool by a work order (exports the invoice report)",
    "pricing-3": "moves to night shifts",
    "records-2": "moves to a new office network",
    "inventory-1": "doubles its pace for the season",
}


def agent_name(role: str, index: int) -> str:
    return f"{role}-{index}"


def population(per_role: int, seed: int) -> dict[str, Agent]:
    rng = random.Random(seed)
    agents: dict[str, Agent] = {}
    for site, (role_name, role) in enumerate(ROLES.items(), start=1):
        for index in range(1, per_role + 1):
            name = agent_name(role_name, index)
            agent = Agent(
                name=name,
                role=role,
                home=f"127.{10 + site}.{index}",
                hosts=tuple(rng.sample(range(2, 250), rng.randint(1, 3))),
                failover=f"127.{60 + site}.{index}",
                pace=rng.uniform(0.6, 1.4),
            )
            if role_name == "invoice":
                for v in range(8):
                    head = f"{rng.randrange(1, 13):02d}{rng.randrange(10**6):06d}"
                    agent.vendors[f"V{v}"] = head + rtn.calc_check_digit(head)
                agent.customers = tuple(f"client{rng.randrange(1000)}.example" for _ in range(6))
            agents[name] = agent
    return agents


def benign(agent: Agent, days: float, rng: random.Random, start: float = 0.0) -> list[Step]:
    """The agent's own work from ``start`` to the end, minute by minute (Poisson counts at its
    role's hourly rate, on weekdays and at weekends), with its changes of behaviour."""
    steps: list[Step] = []
    change = CHANGES.get(agent.name)
    minutes = int(days * DAY / MINUTE)
    for minute in range(int(start / MINUTE), minutes):
        t0 = minute * MINUTE
        day, hour = int(t0 // DAY), int(t0 % DAY // HOUR)
        rates = agent.role.weekday if day % 7 < 5 else agent.role.weekend
        rate = rates[hour] * agent.pace
        changed = t0 >= DAY + 12 * HOUR  # the second day at noon
        if change and changed and "night shifts" in change:
            rate = rates[(hour + 12) % 24] * agent.pace
        if change and changed and "pace" in change:
            rate *= 2.0
        for _ in range(_poisson(rng, rate)):
            t = t0 + rng.random() * MINUTE
            network = None
            if change and changed and "network" in change:
                network = f"127.99.{agent.hosts[0]}"
            use = _pick(agent.role.uses, rng)
            steps.append(_request(agent, use, t, rng, network))
        if change and changed and "work order" in change and hour in (10, 15) and t0 % HOUR == 0:
            steps.append(
                Step(
                    t0 + 30,
                    agent.name,
                    "data:export",
                    "dataset/invoice-report",
                    {"rows": 500, "destination": "s3://finance-reports"},
                    agent.address(rng),
                    records=500,
                    work_order="FIN-7001",
                )
            )
    return steps


def _request(
    agent: Agent, use: Use, t: float, rng: random.Random, network: str | None = None
) -> Step:
    args = dict(use.args)
    outbound = None
    if use.endpoint == "payments/vendors" and use.action == "http:PATCH":
        vendor = rng.choice(sorted(agent.vendors))
        args = {"vendor": vendor, "routing_number": agent.vendors[vendor]}
    if use.endpoint == "invoices/send":
        domain = rng.choice(agent.customers)
        args = {"to_domain": domain}
        outbound = {"to": f"billing@{domain}", "text": f"Invoice {rng.randrange(10**5)} attached"}
    if use.endpoint == "inventory/items" and rng.random() < 0.004:
        args = {"limit": 150}  # a benign mistake the policy refuses
    low, high = use.records
    return Step(
        t,
        agent.name,
        use.action,
        use.endpoint,
        args,
        agent.address(rng, network),
        records=rng.randint(low, high) if high else 0,
        outbound=outbound,
    )


def _pick(uses: tuple[Use, ...], rng: random.Random) -> Use:
    total = sum(u.weight for u in uses)
    at = rng.random() * total
    for use in uses:
        at -= use.weight
        if at <= 0:
            return use
    return uses[-1]


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    limit, k, p = math.exp(-rate), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


# -- attacks -------------------------------------------------------------------------------------


def attack_steps(name: str, agent: Agent, start: float, rng: random.Random) -> list[Step]:
    """What an attacker does with ``agent``'s valid credential (or to its workload)."""

    def step(t: float, action: str, endpoint: str, **kw: Any) -> Step:
        kw.setdefault("source_ip", agent.address(rng, agent.home))
        return Step(start + t, agent.name, action, endpoint, attack=name, **kw)

    if name == "bulk_export":  # pages through every customer, a thousand at a time
        return [
            step(i * 8.0, "http:GET", "crm/customers", args={"limit": 1000}, records=1000)
            for i in range(30)
        ]
    if name == "payroll_new_network":
        return [
            step(i * 20.0, "http:GET", "hr/payroll", source_ip=f"127.201.7.{20 + i}", records=40)
            for i in range(6)
        ]
    if name == "patient_flood":  # one patient a request, as fast as the service answers
        return [step(i * 3.0, "http:GET", "ehr/patients", records=1) for i in range(40)]
    if name == "price_scraping":
        return [step(i * 0.2, "http:GET", "pricing/prices", records=50) for i in range(600)]
    if name == "routing_change":  # one vendor's payments redirected
        vendor = sorted(agent.vendors)[0]
        fake = "0210000" + "2"
        fake += rtn.calc_check_digit(fake)
        return [
            step(
                0.0,
                "http:PATCH",
                "payments/vendors",
                args={"vendor": vendor, "routing_number": fake},
                records=1,
            )
        ]
    if name == "container_vulnerable":
        return [step(0.0, "scan", "", kind="health", args={"report": "critical"})]
    if name == "slow_exfiltration":  # four patient records a minute, under the limit of five
        return [
            step(i * 30.0, "http:GET", "ehr/patients", records=2, args={"page": i})
            for i in range(120)
        ]
    if name == "credential_replay":  # the stolen credential, from another network
        return [
            step(i * 30.0, "http:GET", "inventory/items", args={"limit": 100}, records=100,
                 source_ip=f"127.202.9.{30 + i % 5}")
            for i in range(20)
        ]  # fmt: skip
    if name == "tool_misuse":  # its own send tool, mailing customer records out
        rows = [{"email": f"c{i}@shop.example.com", "phone": "+1 650-253-0000"} for i in range(50)]
        return [
            step(i * 45.0, "http:POST", "invoices/send", args={"to_domain": f"drop{i % 3}.example"},
                 outbound={"to": f"x@drop{i % 3}.example", "rows": rows})
            for i in range(8)
        ]  # fmt: skip
    raise ValueError(f"unknown attack {name!r}")


def build(per_role: int = 3, days: float = 2.0, seed: int = 20261201) -> Trace:
    """The trace: ``per_role`` agents of each role for ``days`` days; the attacks on the
    second day from 10:00, half an hour apart."""
    agents = population(per_role, seed)
    rng = random.Random(seed + 1)
    steps: list[Step] = []
    attacks: dict[str, float] = {}
    for index, (attack, victim) in enumerate(ATTACKS.items()):
        if victim not in agents:
            continue
        attacks[attack] = DAY + 10 * HOUR + index * 30 * MINUTE
    attacked = {ATTACKS[a]: t for a, t in attacks.items()}
    # A stolen credential or a scan report leaves the agent at its own work; otherwise the
    # agent is the attacker's from the attack on.
    keeps_working = {ATTACKS["credential_replay"], ATTACKS["container_vulnerable"]}
    for agent in agents.values():
        own = benign(agent, days, random.Random(f"{seed}:{agent.name}"))
        if agent.name in attacked and agent.name not in keeps_working:
            own = [s for s in own if s.t < attacked[agent.name]]
        steps.extend(own)
    for attack, start in attacks.items():
        steps.extend(attack_steps(attack, agents[ATTACKS[attack]], start, rng))
    steps.sort(key=lambda s: s.t)
    orders = [
        {
            "agent": "recon-1",
            "ticket": "FIN-7001",
            "actions": ["data:export"],
            "resources": ["Dataset:invoice-report"],
            "from": DAY + 9 * HOUR,
            "uses": 1000,
        }
    ]
    changes = {a: c for a, c in CHANGES.items() if a in agents}
    return Trace(steps, agents, days, attacks, changes, orders)
