"""The bubblewrap backend: Linux namespaces, a seccomp filter, rlimits and an unprivileged
host uid per run.

Layers, each enough to stop a class of escape on its own:

- its own unprivileged host uid (never root: under root RLIMIT_NPROC does not bind), taken at
  random from a range no account uses, so runs cannot touch each other's files or processes;
- new user, pid, network, ipc, uts and cgroup namespaces; all capabilities dropped; a
  read-only root holding ``/usr`` (read-only), ``/proc`` of its own pid namespace, a private
  ``/tmp`` and a private writable ``/work``; nothing else of the host (no ``/etc``, no state
  directory);
- the seccomp program of :mod:`warden.sandbox.seccomp_filter`;
- rlimits for CPU time, address space, file size, open files and processes, set before exec;
- a wall-clock bound: past it the run's process group is killed, and whatever is left of its
  uid after the run is killed too.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from warden.sandbox.limits import Limits
from warden.sandbox.seccomp_filter import bpf_file

BWRAP = "/usr/bin/bwrap"
PYTHON = "/usr/bin/python3"  # Debian's: the jail sees /usr only
UID_RANGE = (3_000_000, 3_999_999)  # far above any account's uid
MAIN = "main.py"
MiB = 1024 * 1024


@dataclass
class Execution:
    """What a run did, as the host saw it."""

    exit_code: int | None  # None: killed by a signal (see ``signal``)
    signal: str | None
    reason: str  # ok | exit | wall_clock | cpu_time | file_size | killed
    wall_ms: float
    cpu_ms: float
    max_rss_kb: int
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    outputs: dict[str, bytes] = field(default_factory=dict)


def available() -> str | None:
    """Why this backend cannot run here, or None when it can."""
    if not os.path.exists(BWRAP):
        return f"{BWRAP} is not installed (apt-get install bubblewrap)"
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is not installed (apt-get install python3)"
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"libseccomp cannot be loaded: {exc}"
    return None


def run(root: Path, code: bytes, files: dict[str, bytes], limits: Limits) -> Execution:
    """Run ``code`` (Python) with ``files`` in its work directory, under ``limits``."""
    uid = secrets.randbelow(UID_RANGE[1] - UID_RANGE[0]) + UID_RANGE[0]
    run_dir = root / f"run-{uid}-{secrets.token_hex(4)}"
    work, host = run_dir / "work", run_dir / "host"
    try:
        _lay_out(run_dir, work, host, uid, code, files)
        return _execute(work, host, uid, limits, set(files) | {MAIN})
    finally:
        _kill_uid(uid)  # nothing it started outlives the run
        shutil.rmtree(run_dir, ignore_errors=True)


def _lay_out(
    run_dir: Path, work: Path, host: Path, uid: int, code: bytes, files: dict[str, bytes]
) -> None:
    run_dir.mkdir(mode=0o711, parents=True)
    host.mkdir(mode=0o700)  # stdout and stderr land here, out of the jail's sight
    work.mkdir(mode=0o700)
    for name, data in {**files, MAIN: code}.items():
        (work / name).write_bytes(data)
        os.chown(work / name, uid, uid)
    os.chown(work, uid, uid)


def _execute(work: Path, host: Path, uid: int, limits: Limits, inputs: set[str]) -> Execution:
    seccomp_fd = bpf_file()
    argv = [
        BWRAP,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",  # noqa: S108  (the jail's own)
        "--bind", str(work), "/work", "--remount-ro", "/", "--chdir", "/work",
        "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/work",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--seccomp", str(seccomp_fd),
        PYTHON, "-I", "-S", f"/work/{MAIN}",
    ]  # fmt: skip

    def drop() -> None:  # in the child, before exec: limits first, then the uid
        mb = limits.memory_mb * MiB
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mb, mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * MiB,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        # bubblewrap's own two processes count against its uid too.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes + 2,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    stdout_path, stderr_path = host / "stdout", host / "stderr"
    started = time.perf_counter()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=drop,  # noqa: PLW1509  (limits and the uid must be set before exec)
            pass_fds=(seccomp_fd,),
            start_new_session=True,
            close_fds=True,
        )
    os.close(seccomp_fd)
    reason = ""
    deadline = started + limits.wall_s
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() >= deadline:
            reason = "wall_clock"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            _, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.005)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall_ms = (time.perf_counter() - started) * 1000
    code = child.returncode
    if code > 128 and not reason:  # bubblewrap passes its child's death by signal as 128+N
        code = -(code - 128)
    signame = None
    if code < 0:
        signame = signal.Signals(-code).name
        reason = reason or {"SIGXCPU": "cpu_time", "SIGXFSZ": "file_size"}.get(signame, "killed")
    elif not reason:
        reason = "ok" if code == 0 else "exit"
    cap = limits.output_kb * 1024
    return Execution(
        exit_code=code if code >= 0 else None,
        signal=signame,
        reason=reason,
        wall_ms=wall_ms,
        cpu_ms=((usage.ru_utime + usage.ru_stime) * 1000) if usage else 0.0,
        max_rss_kb=int(usage.ru_maxrss) if usage else 0,
        stdout=head(stdout_path, cap),
        stderr=head(stderr_path, cap),
        stdout_bytes=stdout_path.stat().st_size,
        stderr_bytes=stderr_path.stat().st_size,
        outputs=outputs(work, inputs, cap),
    )


def head(path: Path, cap: int) -> bytes:
    """The first ``cap`` bytes of a file (nothing when it was never made)."""
    if not path.exists():
        return b""
    with path.open("rb") as handle:
        return handle.read(cap)


def outputs(work: Path, inputs: set[str], cap: int, most: int = 32) -> dict[str, bytes]:
    """Regular files the code left in its work directory (not its inputs), each capped; a
    symbolic link is never followed (it could point anywhere on the host)."""
    found: dict[str, bytes] = {}
    for entry in sorted(os.scandir(work), key=lambda e: e.name):
        if entry.name in inputs or not entry.is_file(follow_symlinks=False):
            continue
        if len(found) >= most:
            break
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            found[entry.name] = handle.read(cap)
    return found


def _kill_uid(uid: int) -> None:
    """Kill every process still running as ``uid`` (a run's last line of defence)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
