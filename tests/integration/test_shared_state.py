"""DLP windows and throttles shared by every gateway through a real Redis on 127.0.0.1:
atomic across clients (two gateways cannot overshoot a limit together), the same answers as
the in-process windows, and closed when Redis is gone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.creds import context_for, write_svid
from tests.support.gateway import with_settings
from tests.support.reports import make_healthy
from tests.support.upstream import FINANCE, Upstream
from warden.audit.reader import LogReader
from warden.enforce.routes import parse_routes
from warden.enforce.server import GatewayServer
from warden.identity.authority import IdentityAuthority
from warden.local.redis import RedisServer
from warden.shared.client import Breaker, connect
from warden.shared.redis_state import RedisThrottles, RedisWindows
from warden.shared.risk import risk_key
from warden.trust.dlp import Dlp
from warden.trust.events import TrustEvents
from warden.trust.windows import DlpWindows, SharedStateUnavailable

AGENT = "spiffe://example.org/agent/triage-bot"
EHR = {"domain": "healthcare", "classification": "phi", "region": "eu"}
PHI_5 = {("phi", "minute"): 5}


@pytest.fixture(params=["memory", "redis"])
def windows(request: pytest.FixtureRequest, redis_server: RedisServer) -> Any:
    if request.param == "memory":
        return DlpWindows()
    return RedisWindows(connect(redis_server.url))


def test_windows_take_all_or_nothing(windows: Any) -> None:
    assert windows.take(AGENT, {"phi": 3}, PHI_5) == []
    over = windows.take(AGENT, {"phi": 3, "pii": 1}, PHI_5)
    assert [(e.data_class, e.window, e.limit, e.current, e.adding) for e in over] == [
        ("phi", "minute", 5, 3, 3)
    ]
    counts = windows.counts(AGENT)
    assert counts["phi_per_minute"] == 3 and counts["phi_per_hour"] == 3
    assert counts["pii_per_minute"] == 0  # nothing of a refused answer is counted
    assert windows.take(AGENT, {"phi": 2, "pii": 1}, PHI_5) == []
    assert windows.counts(AGENT)["pii_per_hour"] == 1
    assert windows.take(AGENT, {"pii": 50}, PHI_5) == []  # no limit on PII here
    hourly = windows.take(AGENT, {"pii": 1}, {("pii", "hour"): 51})
    assert [(e.window, e.current) for e in hourly] == [("hour", 51)]
    assert windows.get(AGENT).values["phi_per_minute"] == 5
    other = "spiffe://example.org/agent/nurse-bot"
    assert windows.counts(other)["phi_per_minute"] == 0


def test_two_gateways_cannot_overshoot_a_window_together(redis_server: RedisServer) -> None:
    gateways = [RedisWindows(connect(redis_server.url)) for _ in range(2)]

    def take(i: int) -> bool:
        return not gateways[i % 2].take(AGENT, {"phi": 1}, {("phi", "minute"): 50})

    with ThreadPoolExecutor(16) as pool:
        taken = sum(pool.map(take, range(200)))
    assert taken == 50
    assert gateways[0].counts(AGENT)["phi_per_minute"] == 50


def test_two_gateways_share_a_throttle(redis_server: RedisServer) -> None:
    gateways = [RedisThrottles(connect(redis_server.url)) for _ in range(2)]

    def take(i: int) -> float:
        return gateways[i % 2].take(AGENT, "ehr", "throttle:10/m")

    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(take, range(40)))
    assert waits.count(0.0) == 10
    assert all(0 < w <= 6.0 for w in waits if w)  # one token every six seconds
    assert gateways[0].take(AGENT, "ehr", "throttle:nonsense") == 60.0  # fails closed


def test_without_redis_shared_counters_fail_closed(redis_server: RedisServer) -> None:
    windows = RedisWindows(connect(redis_server.url))
    throttles = RedisThrottles(connect(redis_server.url))
    assert windows.take(AGENT, {"phi": 1}, PHI_5) == []
    redis_server.kill()
    with pytest.raises(SharedStateUnavailable):
        windows.take(AGENT, {"phi": 1}, PHI_5)
    with pytest.raises(SharedStateUnavailable):
        throttles.take(AGENT, "ehr", "throttle:10/m")
    assert windows.get(AGENT) is None  # the policy sees unknown counts, never zero
    dlp = Dlp(windows, TrustEvents())
    found = dlp.inspect(AGENT, "ehr", "phi", "eu", b'[{"mrn": "123"}]').classification
    assert found is not None
    assert dlp.take(AGENT, "ehr", ("dlp:phi_per_minute<=5",), found) == "shared_state_unavailable"


class TwoGateways:
    """Two gateways (each with its own SVID) on one store and one Redis, in front of a real
    EHR service and the ledger."""

    def __init__(self, authority: IdentityAuthority, root: Path, redis_url: str) -> None:
        self.store = authority.store
        self.upstream = Upstream(authority, root).start()
        self.upstream.answers["one"] = ("application/json", _patients(1))
        routes = parse_routes(
            {
                "routes": [
                    {
                        "name": name,
                        "prefix": f"/{name}",
                        "upstream": self.upstream.url,
                        "upstream_id": self.upstream.spiffe_id,
                        "resource": {"type": "Endpoint", "id": f"{name}/x", "properties": props},
                    }
                    for name, props in (("ehr", EHR), ("ledger", FINANCE))
                ]
            }
        )
        authority.agents.register(
            "triage-bot", owner="qa", groups=["healthcare", "finance"], labels={"region": "eu"}
        )
        self.gateways = [
            GatewayServer(
                with_settings(authority, redis_url=redis_url, gateway_name=f"gateway-{i}"),
                routes=routes,
                host="127.0.0.1",
                port=0,
            ).start_in_thread()
            for i in range(2)
        ]
        make_healthy(self.gateways[0].health, "triage-bot")
        for gateway in self.gateways:
            gateway.health.refresh()
        issued = authority.issuer.issue_agent_x509("triage-bot")
        self.creds = write_svid(root / "agent", issued, authority.ca.bundle.to_pem())
        self.bundle = root / "bundle.pem"
        self.bundle.write_bytes(authority.ca.bundle.to_pem())

    def get(self, i: int, path: str) -> httpx.Response:
        with httpx.Client(
            base_url=self.gateways[i % 2].url,
            timeout=10,
            verify=context_for(self.creds, self.bundle),
        ) as client:
            return client.get(path)

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.upstream.stop()


@pytest.fixture
def two(
    authority: IdentityAuthority, tmp_path: Path, redis_server: RedisServer
) -> Iterator[TwoGateways]:
    setup = TwoGateways(authority, tmp_path, redis_server.url)
    try:
        yield setup
    finally:
        setup.stop()


def test_concurrent_requests_across_two_gateways_stay_within_one_window(
    two: TwoGateways, redis_server: RedisServer
) -> None:
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: two.get(i, "/ehr/one"), range(24)))
    delivered = [a for a in answers if a.status_code == 200]
    assert len(delivered) == 5, [(a.status_code, a.text[:80]) for a in answers]
    refused = {a.json()["reason"] for a in answers if a.status_code != 200}
    # The window, then the policy reading it, then the risk its repeated hits raised.
    assert refused <= {
        "phi-five-per-minute",
        "dlp_window_exceeded:phi_per_minute",
        "high-risk-no-sensitive",
    }
    assert two.gateways[1].windows.counts(AGENT)["phi_per_minute"] == 5


def test_redis_gone_sensitive_data_stops_and_the_rest_goes_on(
    two: TwoGateways, redis_server: RedisServer
) -> None:
    assert two.get(0, "/ehr/one").status_code == 200
    redis_server.kill()
    for i in range(2):
        denied = two.get(i, "/ehr/one")
        assert denied.status_code == 403
        entry = LogReader(two.store).decision(denied.json()["decision_id"])
        assert entry is not None
        assert "sensitive-needs-known-state" in {r["policy"] for r in entry["reasons"]}
        assert two.get(i, "/ledger/x").status_code == 200  # no shared counter needed


def _patients(count: int) -> bytes:
    return json.dumps(
        [
            {"resourceType": "Patient", "id": f"p{i}", "birthDate": "1970-01-01"}
            for i in range(count)
        ]
    ).encode()


def test_risk_raised_on_one_gateway_restricts_the_agent_on_the_other(
    two: TwoGateways, redis_server: RedisServer
) -> None:
    assert two.get(1, "/ehr/one").status_code == 200
    two.gateways[0].risk.flag(AGENT, 700, "reported by the security team")
    # Published from a queue (a request that moves a score never waits for Redis): it lands
    # a moment later, and the other gateway's next request after that sees it.
    _until_published(redis_server, AGENT, lambda score: score >= 690)
    denied = two.get(1, "/ehr/one")  # the other gateway, at the agent's next request
    assert denied.status_code == 403
    entry = LogReader(two.store).decision(denied.json()["decision_id"])
    assert entry is not None
    assert "high-risk-no-sensitive" in {r["policy"] for r in entry["reasons"]}
    assert entry["risk"]["factors"][0][0] == "reported by the security team"
    assert 690 <= entry["risk"]["score"] <= 700  # as published, faded a little since
    assert two.get(1, "/ledger/x").status_code == 200  # non-sensitive data still served
    two.gateways[0].risk.clear(AGENT)  # withdrawn where it was raised: withdrawn everywhere
    _until_published(redis_server, AGENT, lambda score: score < 300)
    assert two.get(1, "/ehr/one").status_code == 200


def test_once_redis_fails_calls_fail_fast_until_it_is_back(redis_server: RedisServer) -> None:
    breaker = Breaker(pause_s=0.5)
    windows = RedisWindows(connect(redis_server.url), breaker)
    throttles = RedisThrottles(connect(redis_server.url), breaker)
    redis_server.kill()
    with pytest.raises(SharedStateUnavailable) as first:
        windows.take(AGENT, {"phi": 1}, PHI_5)
    assert "moment ago" not in str(first.value)  # this one asked Redis
    for call in (
        lambda: windows.take(AGENT, {"phi": 1}, PHI_5),
        lambda: windows.counts(AGENT),
        lambda: throttles.take(AGENT, "ehr", "throttle:10/m"),
    ):
        with pytest.raises(SharedStateUnavailable, match="Redis failed a moment ago"):
            call()  # refused without waiting on Redis
    redis_server.start()
    deadline = time.monotonic() + 5
    while breaker.open:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert windows.take(AGENT, {"phi": 1}, PHI_5) == []


def _until_published(
    redis_server: RedisServer, agent: str, seen: Callable[[int], bool], timeout_s: float = 5.0
) -> None:
    """Until the agent's score in Redis is one ``seen`` accepts."""
    client = connect(redis_server.url)
    deadline = time.monotonic() + timeout_s
    while not seen(json.loads(client.get(risk_key(agent)) or b'{"score": 0}')["score"]):
        assert time.monotonic() < deadline, "the score never reached Redis"
        time.sleep(0.01)
