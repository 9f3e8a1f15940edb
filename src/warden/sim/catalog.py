"""What the simulated organisation has: its services (as the policy sees them) and the roles
its agents play.

Every endpoint is a resource the default policy pack knows how to decide (domain,
classification, tags, region), so benign traffic is allowed for the agents whose job it is,
and an attacker who uses a valid credential gets exactly what the pack would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A service the gateway fronts: the resource the policy sees, and the class of what it
    answers with."""

    resource_type: str
    resource_id: str
    properties: dict[str, Any]

    @property
    def classification(self) -> str:
        return str(self.properties.get("classification", ""))


FINANCE = {"domain": "finance", "classification": "internal"}
FINANCE_PII = {"domain": "finance", "classification": "pii"}

CATALOG: dict[str, Endpoint] = {
    "ledger/invoices": Endpoint("Endpoint", "ledger/invoices", FINANCE),
    "ledger/reconcile": Endpoint("Endpoint", "ledger/reconcile", FINANCE),
    "payments/vendors": Endpoint("Endpoint", "payments/vendors", FINANCE_PII),
    "crm/customers": Endpoint("Endpoint", "crm/customers", FINANCE_PII),
    "dataset/customers": Endpoint("Dataset", "customers", FINANCE_PII),
    "dataset/invoice-report": Endpoint("Dataset", "invoice-report", FINANCE),
    "hr/payroll": Endpoint("Endpoint", "hr/payroll", {**FINANCE, "tags": ["payroll"]}),
    "invoices/send": Endpoint("Endpoint", "invoices/send", {**FINANCE, "tags": ["outbound"]}),
    "fraud/transactions": Endpoint("Endpoint", "fraud/transactions", FINANCE_PII),
    "fraud/scores": Endpoint("Endpoint", "fraud/scores", FINANCE),
    "ehr/patients": Endpoint(
        "Endpoint",
        "ehr/patients",
        {"domain": "healthcare", "classification": "phi", "region": "eu"},
    ),
    "ehr/formulary": Endpoint(
        "Endpoint", "ehr/formulary", {"domain": "healthcare", "classification": "internal"}
    ),
    "inventory/items": Endpoint(
        "Endpoint",
        "inventory/items",
        {"domain": "retail", "classification": "internal", "tags": ["inventory"]},
    ),
    "pricing/prices": Endpoint(
        "Endpoint",
        "pricing/prices",
        {"domain": "retail", "classification": "internal", "tags": ["pricing"]},
    ),
}


@dataclass(frozen=True)
class Use:
    """One thing a role does: the action on an endpoint, how often relative to the role's
    other uses, and how many records the service answers with (a range)."""

    action: str
    endpoint: str
    weight: float
    records: tuple[int, int] = (0, 0)
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Role:
    """A kind of agent: its groups, when it works (hour -> requests a minute, on weekdays and
    at weekends) and what it does."""

    name: str
    groups: tuple[str, ...]
    weekday: tuple[float, ...]  # 24 hourly rates, requests a minute
    weekend: tuple[float, ...]
    uses: tuple[Use, ...]


def _hours(default: float, **spans: float) -> tuple[float, ...]:
    """24 hourly rates: ``default``, with spans like ``h8_18=3.0`` (from 8:00 to 18:00)."""
    rates = [default] * 24
    for span, rate in spans.items():
        start, end = (int(x) for x in span[1:].split("_"))
        for hour in range(start, end):
            rates[hour % 24] = rate
    return tuple(rates)


ROLES: dict[str, Role] = {
    "recon": Role(  # finance reconciliation: office hours, and a nightly batch at 02:00
        "recon",
        ("finance",),
        _hours(0.02, h2_3=6.0, h7_19=2.5),
        _hours(0.02, h2_3=6.0),
        (
            Use("http:GET", "ledger/invoices", 6, (20, 200), {"limit": 200}),
            Use("http:POST", "ledger/reconcile", 3, (0, 0)),
            Use("http:GET", "payments/vendors", 1, (1, 20)),
        ),
    ),
    "invoice": Role(
        "invoice",
        ("finance",),
        _hours(0.0, h8_18=1.2),
        _hours(0.0),
        (
            Use("http:GET", "ledger/invoices", 5, (1, 30), {"limit": 50}),
            Use("http:PATCH", "payments/vendors", 1, (1, 1)),
            Use("http:POST", "invoices/send", 3, (0, 0)),
        ),
    ),
    "fraud": Role(  # fraud detection: around the clock, busier by day
        "fraud",
        ("finance",),
        _hours(1.0, h7_22=2.5),
        _hours(1.0, h9_21=1.8),
        (
            Use("http:GET", "fraud/transactions", 5, (20, 100), {"limit": 100}),
            Use("http:POST", "fraud/scores", 4, (0, 0)),
        ),
    ),
    "records": Role(  # healthcare records: clinic hours, every day
        "records",
        ("healthcare",),
        _hours(0.0, h6_22=0.8),
        _hours(0.0, h8_20=0.5),
        (
            Use("http:GET", "ehr/patients", 3, (1, 2)),
            Use("http:GET", "ehr/formulary", 5, (5, 40)),
        ),
    ),
    "inventory": Role(
        "inventory",
        ("retail",),
        _hours(0.4, h6_23=2.0),
        _hours(0.4, h8_22=1.5),
        (Use("http:GET", "inventory/items", 1, (20, 100), {"limit": 100}),),
    ),
    "pricing": Role(
        "pricing",
        ("retail",),
        _hours(0.1, h7_21=1.5),
        _hours(0.1, h9_19=1.0),
        (Use("http:GET", "pricing/prices", 1, (10, 50)),),
    ),
}
