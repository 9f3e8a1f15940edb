"""Route matching, argument extraction and path tricks."""

from __future__ import annotations

import pytest

from warden.enforce.exchange import Incoming
from warden.enforce.routes import AmbiguousRequest, extract_args, parse_routes
from warden.errors import ConfigError

ROUTES = parse_routes(
    {
        "routes": [
            {
                "name": "ledger",
                "prefix": "/ledger",
                "upstream": "https://127.0.0.1:9001",
                "upstream_id": "spiffe://example.org/svc/ledger",
                "resource": {
                    "type": "Endpoint",
                    "id": "ledger/invoices",
                    "properties": {"domain": "finance", "classification": "internal"},
                },
                "args": {
                    "query": ["limit", "rows", "amount"],
                    "body": ["amount", "routing_number"],
                },
            },
            {
                "name": "payroll",
                "prefix": "/ledger/payroll",
                "upstream": "https://127.0.0.1:9002",
                "upstream_id": "spiffe://example.org/svc/payroll",
                "resource": {
                    "type": "Endpoint",
                    "id": "hr/payroll",
                    "properties": {"tags": ["payroll"]},
                },
            },
            {
                "name": "crm",
                "host": "crm.internal",
                "prefix": "/",
                "upstream": "https://127.0.0.1:9003",
                "upstream_id": "spiffe://example.org/svc/crm",
                "resource": {"type": "Dataset", "id": "customers"},
            },
        ]
    }
)


def test_longest_prefix_wins_and_hosts_are_respected() -> None:
    route, path = ROUTES.find("gw", b"/ledger/invoices/7")  # type: ignore[misc]
    assert (route.name, path) == ("ledger", "/ledger/invoices/7")
    assert ROUTES.find("gw", b"/ledger/payroll/2026")[0].name == "payroll"  # type: ignore[index]
    assert ROUTES.find("gw", b"/ledgerx") is None
    assert ROUTES.find("gw", b"/elsewhere") is None  # an unknown route: the gateway denies
    assert ROUTES.find("CRM.internal:443", b"/anything")[0].name == "crm"  # type: ignore[index]


@pytest.mark.parametrize(
    "raw",
    [
        b"/ledger/../ledger/payroll",
        b"/ledger/%2e%2e/payroll",
        b"/ledger%2fpayroll",
        b"/ledger//payroll",
        b"/ledger/%c0%ae%c0%ae/payroll",
        b"/ledger/%",
        b"/ledger/a%5cb",
    ],
)
def test_path_tricks_are_refused(raw: bytes) -> None:
    with pytest.raises(AmbiguousRequest):
        ROUTES.find("gw", raw)


def test_args_reach_the_policy() -> None:
    route = ROUTES.routes[0]
    args = extract_args(
        route,
        b"limit=50&other=x",
        b'{"amount": 120, "routing_number": "021000021", "memo": "hi"}',
        "application/json",
    )
    assert args == {"limit": 50, "amount": 120, "routing_number": "021000021"}
    with pytest.raises(AmbiguousRequest, match="twice"):
        extract_args(route, b"limit=5&limit=50000", None, "")
    with pytest.raises(AmbiguousRequest, match="both"):
        extract_args(route, b"amount=1", b'{"amount": 2}', "application/json")
    with pytest.raises(AmbiguousRequest, match="JSON"):
        extract_args(route, b"", b"amount=5", "application/x-www-form-urlencoded")


def test_the_body_is_parsed_once_for_the_args_and_outbound_checks() -> None:
    route = ROUTES.routes[0]
    body = b'{"amount": 120, "items": [{"sku": "a"}]}'
    incoming = Incoming("POST", b"/ledger/pay", b"", [], body, "gw", "127.0.0.1")
    args = extract_args(route, b"", body, "application/json", incoming.body_json)
    assert args == {"amount": 120}
    assert incoming.body_json() is incoming.body_json()  # one document, not two parses
    broken = Incoming("POST", b"/ledger/pay", b"", [], b'{"amount": ', "gw", "127.0.0.1")
    for _ in range(2):  # refused every time it is asked, not only the first
        with pytest.raises(AmbiguousRequest, match="JSON"):
            extract_args(route, b"", broken.body, "application/json", broken.body_json)


@pytest.mark.parametrize(
    "bad",
    [
        {
            "routes": [
                {
                    "prefix": "ledger",
                    "upstream": "https://x",
                    "upstream_id": "spiffe://e/svc/x",
                    "resource": {"type": "Endpoint", "id": "x"},
                }
            ]
        },
        {
            "routes": [
                {
                    "prefix": "/a/../b",
                    "upstream": "https://x",
                    "upstream_id": "spiffe://e/svc/x",
                    "resource": {"type": "Endpoint", "id": "x"},
                }
            ]
        },
        {
            "routes": [
                {
                    "prefix": "/a",
                    "upstream": "http://x",
                    "upstream_id": "spiffe://e/svc/x",
                    "resource": {"type": "Endpoint", "id": "x"},
                }
            ]
        },
        {
            "routes": [
                {
                    "prefix": "/a",
                    "upstream": "https://x",
                    "upstream_id": "not-spiffe",
                    "resource": {"type": "Endpoint", "id": "x"},
                }
            ]
        },
        {"routes": [{"prefix": "/a", "upstream": "https://x", "upstream_id": "spiffe://e/svc/x"}]},
        {"nothing": []},
    ],
)
def test_bad_route_files(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_routes(bad)
