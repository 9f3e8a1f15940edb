"""The SPIFFE Workload API over a real Unix socket, driven by py-spiffe's own client."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from spiffe import TrustDomain, WorkloadApiClient, X509Source
from spiffe.workloadapi.errors import FetchX509SvidError

from warden.clock import utcnow
from warden.identity.authority import IdentityAuthority
from warden.identity.ca.authority import BACKDATE
from warden.identity.workload_api import WorkloadApi
from warden.server.run import ControlPlaneServer

AUD = "spiffe://example.org/svc/ledger"


def my_selectors() -> list[str]:
    return [f"unix:uid:{os.getuid()}", f"unix:path:{os.path.realpath(sys.executable)}"]


@pytest.fixture
def plane(sqlite_authority: IdentityAuthority) -> Iterator[ControlPlaneServer]:
    api = WorkloadApi(
        sqlite_authority,
        sqlite_authority.attestor,
        svid_ttl_s=30,
        renew_fraction=0.1,
        check_interval_s=0.1,
    )
    server = ControlPlaneServer(sqlite_authority, host="127.0.0.1", port=0, workload_api=api)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop()


def client(plane: ControlPlaneServer) -> WorkloadApiClient:
    return WorkloadApiClient(socket_path=plane.workload_api.endpoint, default_timeout=10)


def test_pyspiffe_fetches_and_validates(plane: ControlPlaneServer) -> None:
    authority = plane.authority
    authority.agents.register("tester", owner="qa", selectors=my_selectors())
    with client(plane) as api:
        svid = api.fetch_x509_svid()
        assert str(svid.spiffe_id) == "spiffe://example.org/agent/tester"
        authority.verifier.verify_x509(list(svid.cert_chain))
        bundles = api.fetch_x509_bundles()
        roots = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert set(roots.x509_authorities) == set(authority.ca.bundle.x509_authorities)
        jwt_svid = api.fetch_jwt_svid(audience={AUD})
        assert str(jwt_svid.spiffe_id) == "spiffe://example.org/agent/tester"
        authority.verifier.verify_jwt(jwt_svid.token, AUD)
        jwt_bundles = api.fetch_jwt_bundles()
        bundle = jwt_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert bundle is not None and len(bundle.jwt_authorities) == 1
        validated = api.validate_jwt_svid(jwt_svid.token, AUD)
        assert str(validated.spiffe_id) == "spiffe://example.org/agent/tester"


def test_unregistered_process_gets_nothing(plane: ControlPlaneServer) -> None:
    plane.authority.agents.register("someone-else", owner="qa", selectors=["unix:uid:4242"])
    with client(plane) as api, pytest.raises(FetchX509SvidError):
        api.fetch_x509_svid()
    events = plane.authority.store
    from warden.identity.attestation.events import recent_attempts

    last = recent_attempts(events, 1)[0]
    assert (last["outcome"], last["reason"]) == (
        "refused",
        "the caller matches no registered agent",
    )


def test_missing_security_header_is_refused(plane: ControlPlaneServer) -> None:
    plane.authority.agents.register("tester", owner="qa", selectors=my_selectors())
    from spiffe._proto import workload_pb2, workload_pb2_grpc

    channel = grpc.insecure_channel(plane.workload_api.endpoint)
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


def test_rotated_svid_arrives_before_half_life(plane: ControlPlaneServer) -> None:
    plane.authority.agents.register("tester", owner="qa", selectors=my_selectors())
    source = X509Source(socket_path=plane.workload_api.endpoint, timeout_in_seconds=10)
    try:
        first = source.get_x509_context().default_svid.leaf
        issued_at = first.not_valid_before_utc + BACKDATE
        half_life = issued_at + (first.not_valid_after_utc - issued_at) / 2
        deadline = time.monotonic() + 15
        while source.get_x509_context().default_svid.leaf.serial_number == first.serial_number:
            assert time.monotonic() < deadline, "no rotation pushed"
            time.sleep(0.05)
        assert utcnow() < half_life  # the new SVID was in hand before the old one's half-life
    finally:
        source.close()


def test_revoked_agent_stream_closes_and_renewal_fails(plane: ControlPlaneServer) -> None:
    authority = plane.authority
    authority.agents.register("tester", owner="qa", selectors=my_selectors())
    errors: list[Exception] = []
    updates: list[object] = []
    with client(plane) as api:
        handle = api.stream_x509_contexts(updates.append, errors.append, retry_connect=False)
        deadline = time.monotonic() + 10
        while not updates:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        authority.agents.revoke("tester", "test")
        while not errors:
            assert time.monotonic() < deadline, "the stream stayed open"
            time.sleep(0.05)
        handle.cancel()
        with pytest.raises(FetchX509SvidError):
            api.fetch_x509_svid()


def test_selector_sets_never_overlap(sqlite_authority: IdentityAuthority) -> None:
    from warden.identity.errors import InvalidSelector, SelectorConflict

    agents = sqlite_authority.agents
    agents.register("a", owner="x", selectors=["unix:uid:1000", "unix:path:/usr/bin/python3"])
    for selectors in (
        ["unix:uid:1000", "unix:path:/usr/bin/python3"],
        ["unix:uid:1000"],
        ["unix:uid:1000", "unix:path:/usr/bin/python3", "unix:gid:5"],
    ):
        with pytest.raises(SelectorConflict):
            agents.register("b", owner="x", selectors=selectors)
    agents.register("b", owner="x", selectors=["unix:uid:1000", "unix:path:/usr/bin/node"])
    for bad in ("uid:1000", "unix:uid:abc", "unix:colour:red", "k8s:ns:x", "unix:sha256:XYZ"):
        with pytest.raises(InvalidSelector):
            agents.set_selectors("b", [bad])
    with pytest.raises(SelectorConflict):
        agents.set_selectors("b", ["unix:uid:1000"])


def test_socket_path(plane: ControlPlaneServer, tmp_path: Path) -> None:
    assert plane.workload_api.socket_path.exists()
    assert plane.workload_api.socket_path.stat().st_mode & 0o777 == 0o777


def test_rotation_by_another_process_reaches_bundle_streams(
    plane: ControlPlaneServer,
) -> None:
    from warden.identity.authority import file_key_manager

    authority = plane.authority
    authority.agents.register("tester", owner="qa", selectors=my_selectors())
    received: list[int] = []
    with client(plane) as api:
        errors: list[Exception] = []
        domain = TrustDomain("example.org")
        handle = api.stream_jwt_bundles(
            lambda bundles: received.append(
                len(bundles.get_bundle_for_trust_domain(domain).jwt_authorities)
            ),
            errors.append,
        )
        deadline = time.monotonic() + 10
        while not received:
            assert time.monotonic() < deadline, errors
            time.sleep(0.05)
        other = IdentityAuthority.from_parts(
            authority.settings, authority.store, file_key_manager(authority.settings)
        )
        other.ca.rotate_intermediate()  # as `warden ca rotate` would, from another process
        while received[-1] != 2:
            assert time.monotonic() < deadline + 5, received
            time.sleep(0.05)
        handle.cancel()
