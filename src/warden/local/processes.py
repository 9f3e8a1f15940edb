"""Ports and child processes on 127.0.0.1: what the demo's deployment, the throwaway servers,
the end-to-end tests and the benchmarks all need."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def stop_processes(processes: Iterable[subprocess.Popen[Any]], timeout_s: float = 15) -> None:
    """Terminate each process (each writes what waits, then exits), then kill those that do
    not end within ``timeout_s``."""
    chosen = list(processes)
    for process in chosen:
        process.terminate()
    for process in chosen:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
