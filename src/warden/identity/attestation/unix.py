"""The Unix attestor: what the kernel says about the process at the other end of a socket.

From the caller's pid (SO_PEERCRED on the Workload API's Unix socket) it reads, from ``/proc``:
the process start time (so a reused pid is told apart), its executable's path and SHA-256, and
its cgroup. The start time is read before and after the rest; if it changed, the process did
and nothing is attested. Selectors: ``unix:uid:N``, ``unix:gid:N``, ``unix:path:P``,
``unix:sha256:H``, ``unix:cgroup:C``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from warden.identity.errors import AttestationFailed

PROC = Path("/proc")
_HASH_CACHE: dict[tuple[int, int, int, int], str] = {}
_HASH_LOCK = threading.Lock()


@cache
def boot_id() -> str:
    """This boot's id: (boot, pid, start time) names one process for ever."""
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (clock ticks after boot), or None if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """One process, for ever: a pid alone can be reused, (boot, pid, start time) cannot."""

    boot_id: str
    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        start = process_start_time(pid)
        if start is None:
            raise AttestationFailed(f"process {pid} is gone")
        return cls(boot_id(), pid, start)

    def is_alive(self) -> bool:
        """Still the same process (not exited, pid not reused)?"""
        return self.boot_id == boot_id() and process_start_time(self.pid) == self.start_time


@dataclass(frozen=True)
class UnixEvidence:
    process: ProcessRef
    uid: int
    gid: int
    exe_path: str | None
    exe_sha256: str | None
    cgroup: str | None

    def selectors(self) -> frozenset[str]:
        found = {f"unix:uid:{self.uid}", f"unix:gid:{self.gid}"}
        if self.exe_path:
            found.add(f"unix:path:{self.exe_path}")
        if self.exe_sha256:
            found.add(f"unix:sha256:{self.exe_sha256}")
        if self.cgroup:
            found.add(f"unix:cgroup:{self.cgroup}")
        return frozenset(found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid,
            "start_time": self.process.start_time,
            "uid": self.uid,
            "gid": self.gid,
            "exe_path": self.exe_path,
            "exe_sha256": self.exe_sha256,
            "cgroup": self.cgroup,
        }


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _exe_sha256(pid: int) -> tuple[str | None, str | None]:
    link = PROC / str(pid) / "exe"
    try:
        path = os.readlink(link)
        # Hash through /proc/<pid>/exe: the very file the process runs, even if the path was
        # replaced since. Cached by (device, inode, size, mtime).
        with open(link, "rb") as handle:
            info = os.fstat(handle.fileno())
            key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            with _HASH_LOCK:
                cached = _HASH_CACHE.get(key)
            if cached is not None:
                return path, cached
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None, None
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return path, digest


def _cgroup(pid: int) -> str | None:
    try:
        lines = (PROC / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # cgroup v2: "0::/path"
        if line.startswith("0::"):
            return line[3:] or "/"
    return lines[0].split(":", 2)[-1] if lines else None


def attest_process(pid: int, uid: int, gid: int) -> UnixEvidence:
    """Evidence about ``pid``; :class:`AttestationFailed` if it is gone or changed meanwhile."""
    if pid <= 0:
        raise AttestationFailed("the peer's pid is unknown (another pid namespace?)")
    before = ProcessRef.of(pid)
    exe_path, exe_sha256 = _exe_sha256(pid)
    cgroup = _cgroup(pid)
    if not before.is_alive():
        raise AttestationFailed(f"process {pid} changed during attestation")
    return UnixEvidence(before, uid, gid, exe_path, exe_sha256, cgroup)
