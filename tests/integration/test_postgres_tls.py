"""PostgreSQL over mutual TLS with the trust domain's certificates: the server holds a
certificate from Warden's CA (``warden ca issue-tls``), Warden checks it (``verify-full``) and
presents its own; nothing without one, or with one from another CA, gets in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tests.support.audit import GATEWAY, a_decision
from warden.audit.setup import open_decision_log
from warden.cli.main import app
from warden.config import load_settings
from warden.identity.authority import open_authority
from warden.local.postgres import PostgresCluster, start_cluster
from warden.store import open_store

pytestmark = pytest.mark.postgres
runner = CliRunner()


def warden(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def trust_domain(root: Path, name: str) -> Path:
    state = root / name
    warden("--state-dir", str(state), "init", "--trust-domain", f"{name}.test", "--operator", "ops")
    return state


def issue(state: Path, name: str, out: Path, *extra: str) -> Path:
    output = warden("--state-dir", str(state), "ca", "issue-tls", name, "--out", str(out), *extra)
    assert f"svc/{name}" in output
    return out


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresCluster, Path]]:
    root = tmp_path_factory.mktemp("pg-tls")
    state = trust_domain(root, "acme")
    server = issue(state, "postgres", root / "server", "--ip", "127.0.0.1", "--dns", "localhost")
    cluster = start_cluster(tls=(server / "cert.pem", server / "key.pem", server / "ca.pem"))
    try:
        yield cluster, root
    finally:
        cluster.stop()


def libpq(cluster: PostgresCluster, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"postgresql://{cluster.user}@127.0.0.1:{cluster.port}/postgres?{query}"


def verified(client: Path, ca: Path) -> dict[str, str]:
    return {
        "sslmode": "verify-full",
        "sslrootcert": str(ca),
        "sslcert": str(client / "cert.pem"),
        "sslkey": str(client / "key.pem"),
    }


def test_plain_and_anonymous_connections_are_refused(
    tls_cluster: tuple[PostgresCluster, Path],
) -> None:
    cluster, root = tls_cluster
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(libpq(cluster, sslmode="disable"), connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        psycopg.connect(
            libpq(cluster, sslmode="verify-full", sslrootcert=str(root / "server" / "ca.pem")),
            connect_timeout=5,
        ).close()


def test_a_certificate_from_another_trust_domain_is_refused_both_ways(
    tls_cluster: tuple[PostgresCluster, Path],
) -> None:
    cluster, root = tls_cluster
    foreign = trust_domain(root, "other")
    client = issue(foreign, "intruder", root / "intruder")
    # Its client certificate is not from the server's CA...
    with pytest.raises(psycopg.OperationalError):
        params = verified(client, root / "server" / "ca.pem")
        psycopg.connect(libpq(cluster, **params), connect_timeout=5).close()
    # ...and a server that is not ours is not believed by a client of the other domain.
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        params = verified(client, client / "ca.pem")
        psycopg.connect(libpq(cluster, **params), connect_timeout=5).close()


def test_warden_runs_its_store_over_mutual_tls(
    tls_cluster: tuple[PostgresCluster, Path], tmp_path: Path
) -> None:
    cluster, root = tls_cluster
    client = issue(root / "acme", "warden-store", tmp_path / "client", "--ttl", "3600")
    assert oct((client / "key.pem").stat().st_mode & 0o777) == "0o600"
    with psycopg.connect(libpq(cluster, **verified(client, client / "ca.pem"))) as conn:
        conn.autocommit = True
        conn.execute("CREATE DATABASE warden_tls")
    params = verified(client, client / "ca.pem")
    url = libpq(cluster, **params).replace("postgresql://", "postgresql+psycopg://")
    url = url.replace("/postgres?", "/warden_tls?")
    state = tmp_path / "state"
    warden("--state-dir", str(state), "--database-url", url, "init", "--trust-domain", "db.test")
    warden("--state-dir", str(state), "--database-url", url, "agent", "register", "billing",
           "--owner", "finance")  # fmt: skip
    assert "billing" in warden("--state-dir", str(state), "--database-url", url, "agent", "list")
    authority = open_authority(load_settings(state_dir=state, database_url=url))
    log = open_decision_log(authority)
    for allow in (True, False, True):
        log.record(*a_decision(allow=allow), enforcement_point=GATEWAY)
    log.close()
    authority.store.dispose()
    # The verifier's worker processes open the store themselves, over the same mutual TLS.
    verified_log = warden(
        "--state-dir", str(state), "--database-url", url, "audit", "verify", "--workers", "2"
    )
    assert "verified 3 entries" in verified_log
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).one()
        assert row[0] is True and "warden-store" in row[1]
    finally:
        store.dispose()


def test_issue_tls_refuses_a_lifetime_past_the_bound(
    tls_cluster: tuple[PostgresCluster, Path], tmp_path: Path
) -> None:
    _, root = tls_cluster
    result = runner.invoke(
        app,
        ["--state-dir", str(root / "acme"), "ca", "issue-tls", "pg", "--out", str(tmp_path),
         "--ttl", str(365 * 86_400)],
    )  # fmt: skip
    assert result.exit_code != 0 and "tls_cert_max_ttl_s" in result.output
    assert not any(tmp_path.iterdir())
