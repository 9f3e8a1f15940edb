"""Identity benchmark: SVID issuance and validation on one core, and how issuance scales with
the number of registered agents (100 against 100,000 in the same run).

    python benchmarks/identity.py [--quick] [--json PATH]

JSON keys: x509_issue_per_s, x509_issue_100k_per_s, x509_issue_raw_per_s, jwt_issue_per_s,
jwt_validate_per_s, jwt_validate_cached_per_s, pyjwt_decode_per_s, x509_verify_per_s,
issue_ratio_100k_vs_100, workload_api_fetch_p50_ms, workload_api_fetch_p99_ms,
issue_in_process_p50_ms, revocation_feed_lag_p50_ms, revocation_feed_lag_p99_ms.

The Workload API and feed figures run the control plane in this process and the workload or
the feed subscriber in another, as in production.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    latencies_us,
    parse_args,
    percentile,
    pin_to_one_core,
    rate,
    report,
    unpin,
)
from warden.clock import utcnow
from warden.config import load_settings
from warden.identity.authority import IdentityAuthority
from warden.identity.ca import CertificateAuthority, FileKeyManager
from warden.identity.feed import append_change
from warden.identity.verifier import CredentialVerifier
from warden.server.run import ControlPlaneServer
from warden.store import open_store, schema

AUD = "spiffe://bench.example/svc/gateway"


def make_authority(root: Path, agents: int) -> IdentityAuthority:
    """A fresh installation with ``agents`` registered agents (bulk-loaded for speed)."""
    settings = load_settings(state_dir=root, trust_domain="bench.example")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(settings.database)
    keys = FileKeyManager.create(root / "keys", settings.key_file)
    CertificateAuthority.initialise(store, keys, settings, "bench.example")
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "name": f"agent-{i}",
            "spiffe_id": f"spiffe://bench.example/agent/agent-{i}",
            "owner": "bench",
            "purpose": "",
            "labels": {},
            "selectors": [],
            "max_svid_ttl_s": 3600,
            "status": "active",
            "credential_epoch": 0,
            "created_at": now,
            "updated_at": now,
            "status_reason": "",
        }
        for i in range(agents)
    ]
    with store.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(schema.agents.insert(), rows[start : start + 5000])
        append_change(
            conn,
            spiffe_id="spiffe://bench.example/agent/agent-0",
            change="status",
            status="active",
            epoch=0,
            reason="bulk load",
        )
    return IdentityAuthority.from_parts(settings, store, keys)


def raw_issue_rate(authority: IdentityAuthority, count: int) -> float:
    """Baseline: cryptography alone signing a comparable leaf, no registry, no policy."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raw")])
    now = utcnow()

    def issue(_: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now.replace(year=now.year + 1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier("spiffe://bench.example/agent/raw")]
                ),
                False,
            )
            .sign(issuer_key, hashes.SHA256())
        )

    return rate(issue, count)


FETCHER = textwrap.dedent(
    """
    import json, sys, time
    from spiffe import WorkloadApiClient
    samples = []
    with WorkloadApiClient(socket_path=sys.argv[1], default_timeout=10) as client:
        client.fetch_x509_svid()
        for _ in range(int(sys.argv[2])):
            start = time.perf_counter()
            client.fetch_x509_svid()
            samples.append((time.perf_counter() - start) * 1000)
    print(json.dumps(samples))
    """
)


def workload_and_feed(root: Path, quick: bool) -> dict[str, float]:
    """Workload API fetch latency and revocation feed lag, across processes."""
    revocations = 50 if quick else 300
    authority = make_authority(root, revocations)
    authority.agents.register(
        "bench-workload",
        owner="bench",
        selectors=[f"unix:uid:{os.getuid()}", f"unix:path:{os.path.realpath(sys.executable)}"],
    )
    baseline = latencies_us(lambda _: authority.issuer.issue_agent_x509("bench-workload"), 200)
    server = ControlPlaneServer(authority, host="127.0.0.1", port=0).start_in_thread()
    try:
        fetches = subprocess.run(
            [
                sys.executable,
                "-c",
                FETCHER,
                server.workload_api.endpoint,
                "100" if quick else "500",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        fetch_ms = json.loads(fetches.stdout)
        lags = feed_lags(authority, server, root, revocations)
    finally:
        server.stop()
        authority.store.dispose()
    return {
        "workload_api_fetch_p50_ms": percentile(fetch_ms, 50),
        "workload_api_fetch_p99_ms": percentile(fetch_ms, 99),
        "issue_in_process_p50_ms": percentile(baseline, 50) / 1000,
        "revocation_feed_lag_p50_ms": percentile(lags, 50),
        "revocation_feed_lag_p99_ms": percentile(lags, 99),
    }


def feed_lags(
    authority: IdentityAuthority, server: ControlPlaneServer, root: Path, count: int
) -> list[float]:
    """From each revocation to a subscriber in another process applying it, in ms."""
    creds = root / "gateway-creds"
    creds.mkdir()
    issued = authority.issuer.issue_service_x509("gateway")
    (creds / "svid.pem").write_bytes(issued.cert_chain_pem())
    (creds / "key.pem").write_bytes(issued.key_pem())
    (creds / "bundle.pem").write_bytes(authority.ca.bundle.to_pem())
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "_feed_subscriber.py"),
            server.url,
            str(creds),
            str(count * 0.05 + 10),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    json.loads(child.stdout.readline())  # ready
    started: dict[int, float] = {}
    for i in range(count):
        name = f"agent-{i}"
        start = time.perf_counter()
        authority.agents.revoke(name, "benchmark")
        started[authority.status.sequence] = start
        time.sleep(0.02)
    lags: list[float] = []
    while len(lags) < count:
        line = child.stdout.readline()
        if not line:
            break
        seen = json.loads(line)
        if seen.get("seq") in started:
            lags.append((seen["t"] - started[seen["seq"]]) * 1000)
    child.kill()
    child.wait()
    return lags


def uncached_rate(
    authority: IdentityAuthority, verify: Callable[[CredentialVerifier, int], object], count: int
) -> float:
    """Best of three passes, each with a new verifier (an empty signature cache)."""
    best = 0.0
    for _ in range(3):
        verifier = CredentialVerifier(lambda: authority.ca.bundle, authority.status)
        best = max(best, rate(lambda i, v=verifier: verify(v, i), count, repeats=1))
    return best


def main() -> None:
    args = parse_args(__doc__ or "")
    core = pin_to_one_core()
    quick = args.quick
    n_issue = 300 if quick else 2000
    n_jwt = 1000 if quick else 5000
    big = 100_000
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        small = make_authority(Path(tmp) / "small", 100)
        large = make_authority(Path(tmp) / "large", big)

        def issuer(ia: IdentityAuthority, population: int) -> object:
            names = [f"agent-{random.randrange(population)}" for _ in range(n_issue)]
            return lambda i: ia.issuer.issue_agent_x509(names[i])

        x509_small = rate(issuer(small, 100), n_issue)  # type: ignore[arg-type]
        x509_large = rate(issuer(large, big), n_issue)  # type: ignore[arg-type]
        x509_raw = raw_issue_rate(small, n_issue)
        jwt_issue = rate(lambda i: small.issuer.issue_agent_jwt(f"agent-{i % 100}", [AUD]), n_jwt)
        tokens = [
            small.issuer.issue_agent_jwt(f"agent-{i % 100}", [AUD]).token for i in range(n_jwt)
        ]
        # Uncached: a fresh verifier per pass, so every credential pays for its signature.
        validate = uncached_rate(small, lambda v, i: v.verify_jwt(tokens[i], AUD), n_jwt)
        cached = rate(lambda i: small.verifier.verify_jwt(tokens[i], AUD), n_jwt)
        public_key = small.ca.bundle.jwt_authorities[0].public_key
        pyjwt = rate(
            lambda i: jwt.decode(tokens[i], public_key, algorithms=["ES256"], audience=AUD), n_jwt
        )
        svids = [small.issuer.issue_agent_x509(f"agent-{i % 100}") for i in range(n_issue)]
        x509_verify = uncached_rate(
            small, lambda v, i: v.verify_x509([svids[i].cert, *svids[i].chain]), n_issue
        )
        small.store.dispose()
        large.store.dispose()
        unpin()  # the cross-process figures use the whole machine, as a deployment would
        cross_process = workload_and_feed(Path(tmp) / "wl", quick)

    ratio = x509_small / x509_large
    figures = {
        "x509_issue_per_s": round(x509_small, 1),
        "x509_issue_100k_per_s": round(x509_large, 1),
        "x509_issue_raw_per_s": round(x509_raw, 1),
        "jwt_issue_per_s": round(jwt_issue, 1),
        "jwt_validate_per_s": round(validate, 1),
        "jwt_validate_cached_per_s": round(cached, 1),
        "pyjwt_decode_per_s": round(pyjwt, 1),
        "x509_verify_per_s": round(x509_verify, 1),
        "issue_ratio_100k_vs_100": round(ratio, 3),
        **{key: round(value, 3) for key, value in cross_process.items()},
    }
    rows = [
        ("X.509-SVID issuance, 100 agents", x509_small, "/s", ">= 1,000"),
        ("X.509-SVID issuance, 100,000 agents", x509_large, "/s", ""),
        ("  baseline: cryptography alone", x509_raw, "/s", ""),
        ("issuance time ratio 100k / 100", ratio, "x", "<= 1.2"),
        ("JWT-SVID issuance", jwt_issue, "/s", ""),
        ("JWT-SVID validation (each token new)", validate, "/s", ">= 5,000"),
        ("JWT-SVID validation (token seen before)", cached, "/s", ""),
        ("  baseline: PyJWT decode alone", pyjwt, "/s", ""),
        ("X.509-SVID verification (path + status)", x509_verify, "/s", ""),
        (
            "Workload API FetchX509SVID p50 (other process)",
            cross_process["workload_api_fetch_p50_ms"],
            "ms",
            "",
        ),
        ("Workload API FetchX509SVID p99", cross_process["workload_api_fetch_p99_ms"], "ms", ""),
        ("  baseline: issuance in process p50", cross_process["issue_in_process_p50_ms"], "ms", ""),
        (
            "revocation -> subscriber in another process p50",
            cross_process["revocation_feed_lag_p50_ms"],
            "ms",
            "",
        ),
        (
            "revocation -> subscriber in another process p99",
            cross_process["revocation_feed_lag_p99_ms"],
            "ms",
            "<= 50",
        ),
    ]
    report(
        f"identity benchmark ({'quick' if quick else 'full'}, one core: {core})",
        rows,
        figures,
        args.json,
    )


if __name__ == "__main__":
    main()
