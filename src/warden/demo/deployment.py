"""Where the demo runs: the embedded stack in this process, or a distributed deployment (the
control plane and two gateways as separate processes, on PostgreSQL and Redis).

The scenarios see only what both have in common: the control plane's and gateways' addresses,
the trust bundle, and the shared store, through which this process registers agents, reports
their health and opens work orders exactly as an operator's tooling would. ``settle`` waits
until every gateway has read the store's latest; ``seal`` until a checkpoint covers the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from warden.audit.reader import LogReader
from warden.config import Settings
from warden.errors import ConfigError
from warden.identity.authority import IdentityAuthority, open_authority
from warden.local import require
from warden.local.postgres import PostgresCluster, fresh_database, start_cluster
from warden.local.processes import free_port, listening, stop_processes
from warden.local.redis import RedisServer, start_redis
from warden.stack import EmbeddedStack

GATEWAYS = 2
STORE_POLL_S = 0.2  # the deployment's processes re-read the store this often


class Deployment(Protocol):
    """What the demo plays against."""

    mode: str
    env: dict[str, str]  # what a process of this deployment (`warden run`) needs

    @property
    def authority(self) -> IdentityAuthority:
        """The identity authority on the deployment's store, in this process."""

    @property
    def control_url(self) -> str: ...

    @property
    def gateway_urls(self) -> list[str]: ...

    @property
    def bundle_file(self) -> Path: ...

    def settle(self) -> None:
        """Return once every gateway has read the store's health reports and work orders."""

    def seal(self) -> None:
        """Return once a signed checkpoint covers every entry the log holds now."""

    def stop(self) -> None: ...


@dataclass
class Embedded:
    """The embedded stack (``warden up``): SQLite, everything in this process."""

    stack: EmbeddedStack
    mode: str = "embedded"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def authority(self) -> IdentityAuthority:
        return self.stack.authority

    @property
    def control_url(self) -> str:
        return self.stack.control.url

    @property
    def gateway_urls(self) -> list[str]:
        return [self.stack.gateway.url]

    @property
    def bundle_file(self) -> Path:
        return self.stack.control.credentials.ca_file

    def settle(self) -> None:
        self.stack.gateway.health.refresh()
        self.stack.gateway.engine.reload_work_orders()

    def seal(self) -> None:
        self.stack.control.log.checkpoint()
        self.stack.gateway.recorder.checkpoint()

    def stop(self) -> None:
        self.stack.stop()


@dataclass
class Backing:
    """The deployment's PostgreSQL (a new cluster, fsync on) and Redis."""

    cluster: PostgresCluster
    redis: RedisServer
    database_url: str

    @classmethod
    def start(cls) -> Backing:
        require("warden demo --distributed")
        cluster = start_cluster(durable=True)
        try:
            return cls(cluster, start_redis(), fresh_database(cluster, "warden"))
        except BaseException:
            cluster.stop()
            raise

    def stop(self) -> None:
        self.redis.kill()
        self.cluster.stop()


@dataclass
class Distributed:
    """``warden serve`` and two ``warden gateway`` processes on one PostgreSQL and one Redis,
    all started here on 127.0.0.1 and stopped with the demo."""

    root: Path
    backing: Backing
    authority: IdentityAuthority
    env: dict[str, str]
    control_url: str = ""
    gateway_urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    mode: str = "distributed"

    @property
    def bundle_file(self) -> Path:
        path = self.root / "bundle.pem"
        if not path.exists():
            path.write_bytes(self.authority.ca.bundle.to_pem())
        return path

    def start_processes(self, routes: dict[str, Any], settings: Settings) -> None:
        """The control plane, then the gateways; returns when each one listens."""
        route_file = self.root / "routes.json"
        route_file.write_text(json.dumps(routes))
        warden = [sys.executable, "-m", "warden.cli.main", "--state-dir", str(settings.state_dir)]
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        try:
            # All three start at once (each checks the store and its bundle as it starts).
            port = free_port()
            started = [
                self._spawn(
                    [*warden, "serve", "--host", "127.0.0.1", "--port", str(port)],
                    self.env,
                    logs / "control-plane.log",
                    port,
                )
            ]
            self.control_url = f"https://localhost:{port}"
            for i in range(GATEWAYS):
                port = free_port()
                started.append(
                    self._spawn(
                        [*warden, "gateway", "--routes", str(route_file), "--host", "127.0.0.1",
                         "--port", str(port)],
                        {**self.env, "WARDEN_GATEWAY_NAME": f"gateway-{i}"},
                        logs / f"gateway-{i}.log",
                        port,
                    )
                )  # fmt: skip
                self.gateway_urls.append(f"https://localhost:{port}")
            for process, port, log in started:
                _wait_listening(process, port, log)
        except BaseException:
            self.stop()  # what started, and the backing: the caller has nothing left to stop
            raise

    def _spawn(
        self, command: list[str], env: dict[str, str], log: Path, port: int
    ) -> tuple[subprocess.Popen[bytes], int, Path]:
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, port, log

    def settle(self) -> None:
        # Each gateway re-reads health reports and work orders from the store on a timer.
        time.sleep(STORE_POLL_S + 0.3)

    def seal(self) -> None:
        reader = LogReader(self.authority.store)
        size = reader.size()
        deadline = time.monotonic() + 10  # checkpoints come at least once a second
        while time.monotonic() < deadline:
            signed = reader.checkpoints()
            if signed and signed[-1][0] >= size:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the processes (each writes what waits, then seals), then PostgreSQL and Redis."""
        stop_processes(self.processes)
        self.processes.clear()
        self.authority.store.dispose()
        self.backing.stop()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(
                f"{log.stem} exited at start: {log.read_text(errors='replace')[-1500:]}"
            )
        if listening(port):
            return
        time.sleep(0.1)
    raise ConfigError(f"{log.stem} did not listen on {port} within a minute (see {log})")


def process_env(settings: Settings, database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of the deployment's processes: the shared store and Redis, and the
    demo's webhook and hooks (settings that the processes would otherwise not know)."""
    return {
        **os.environ,
        "WARDEN_DATABASE_URL": database_url,
        "WARDEN_REDIS_URL": redis_url,
        "WARDEN_STORE_POLL_S": str(STORE_POLL_S),
        "WARDEN_RESPONSE_WEBHOOKS": json.dumps(
            {
                name: hook.model_dump(mode="json")
                for name, hook in settings.response_webhooks.items()
            }
        ),
        "WARDEN_RESPONSE_HOOKS": json.dumps(settings.response_hooks),
    }


def open_distributed(root: Path, settings: Settings, backing: Backing) -> Distributed:
    env = process_env(settings, backing.database_url, backing.redis.url)
    return Distributed(root, backing, open_authority(settings), env)
