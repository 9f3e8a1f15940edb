"""A throwaway Redis server on 127.0.0.1 (no persistence, no daemon), started by the tests
that need shared state and stopped (or killed, to show what fails closed) by them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from warden.local.processes import free_port


def installed() -> bool:
    """Whether this machine has ``redis-server``."""
    return shutil.which("redis-server") is not None


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://localhost:{self.port}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    tls: tuple[Path, Path, Path] | None = None  # (certificate, key, CA): TLS only, mutual

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/ensure-services.sh)")
        command = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory)]
        if self.tls is None:
            command += ["--port", str(self.port)]
        else:
            cert, key, ca = self.tls
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            command += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
            command += ["--tls-auth-clients", "yes"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, **self._tls_options())
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self

    def _tls_options(self) -> dict[str, str]:
        if self.tls is None:
            return {}
        cert, key, ca = self.tls  # the server's own pair serves as a client's for the probe
        return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_ca_certs": str(ca)}

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def flush(self) -> None:
        redis.Redis(port=self.port, socket_timeout=1).flushall()


def start_redis(tls: tuple[Path, Path, Path] | None = None) -> RedisServer:
    directory = Path(tempfile.mkdtemp(prefix="warden-redis-"))
    return RedisServer(free_port(), directory, tls=tls).start()
