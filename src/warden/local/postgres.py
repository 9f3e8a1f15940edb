"""A throwaway PostgreSQL cluster on 127.0.0.1 (tests, `warden demo --distributed`).

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
``fsync=off`` keeps it fast; nothing here needs to survive a power cut.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from warden.local.processes import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (scripts/ensure-services.sh)")
    return path


def installed() -> bool:
    """Whether this machine has PostgreSQL's server programs."""
    try:
        _bin("initdb")
    except RuntimeError:
        return False
    return True


@dataclass
class PostgresCluster:
    directory: Path
    port: int
    user: str
    options: str = ""

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--", *args]
        return args

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate``: a crash, no shutdown checkpoint) and start again."""
        data = str(self.directory / "data")
        subprocess.run(
            self._as_owner([_bin("pg_ctl"), "-D", data, "-m", mode, "stop"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            self._as_owner(
                [
                    _bin("pg_ctl"),
                    "-D",
                    data,
                    "-o",
                    self.options,
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.directory / "log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            self._as_owner(
                [_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"]
            ),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def fresh_database(cluster: PostgresCluster, name: str, *, template: str | None = None) -> str:
    """A new database on ``cluster``, empty or a copy of ``template`` (a database nobody is
    connected to); its SQLAlchemy URL."""
    import psycopg

    copy = f" TEMPLATE {template}" if template else ""
    with psycopg.connect(cluster.dsn().replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}{copy}")
    return cluster.dsn(name)


def start_cluster(
    *, durable: bool = False, tls: tuple[Path, Path, Path] | None = None
) -> PostgresCluster:
    """``durable``: fsync and synchronous commits on, for tests that crash the server.
    ``tls``: (certificate, key, CA bundle) of the server; then only TLS connections with a
    client certificate from that CA get in."""
    root = Path(tempfile.mkdtemp(prefix="warden-pg-"))
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    cluster = PostgresCluster(root, free_port(), user)
    if os.geteuid() == 0:
        shutil.chown(root, user)
    data = root / "data"
    subprocess.run(
        cluster._as_owner(
            [_bin("initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    fast = "" if durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={cluster.port} {fast}"
        f"-c unix_socket_directories={root} -c max_connections=200"
    )
    if tls is not None:
        options += _tls_only(cluster, data, tls)
    cluster.options = options
    subprocess.run(
        cluster._as_owner(
            [
                _bin("pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-t",
                "30",
                "-l",
                str(root / "log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return cluster


def _tls_only(cluster: PostgresCluster, data: Path, tls: tuple[Path, Path, Path]) -> str:
    """Copy the server's files where its owner can read them (the key 0600, as PostgreSQL
    demands) and allow nothing but TLS with a client certificate over TCP."""
    names = ("server.crt", "server.key", "root.crt")
    for source, name in zip(tls, names, strict=True):
        target = data / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(target, cluster.user)
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    files = "-c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=root.crt"
    return f" -c ssl=on {files}"
