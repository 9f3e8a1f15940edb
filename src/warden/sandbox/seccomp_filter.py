"""The seccomp program every bubblewrap run gets (libseccomp, through pyseccomp).

Default allow, then refuse (EPERM) what a jailed Python script never needs and an escape
would: sockets of any family but AF_UNIX, ptrace and process_vm_*, mount and its relatives,
new namespaces (unshare, setns, clone with namespace flags is left to the user namespace's
own limits), bpf, userfaultfd, io_uring, kernel modules, kexec, keyrings, perf events.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile

import pyseccomp

REFUSED = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "bpf", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load",
    "add_key", "request_key", "keyctl",
    "perf_event_open", "swapon", "swapoff", "reboot", "syslog",
    "acct", "quotactl", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at",
)  # fmt: skip


def build() -> pyseccomp.SyscallFilter:
    refuse = pyseccomp.ERRNO(errno.EPERM)
    program = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in REFUSED:
        try:
            program.add_rule(refuse, name)
        except (OSError, ValueError):
            continue  # not a system call on this architecture
    # Sockets: only AF_UNIX (the interpreter may use one for nothing; TCP, UDP, raw,
    # netlink and the rest are refused before the network namespace is even asked).
    program.add_rule(refuse, "socket", pyseccomp.Arg(0, pyseccomp.NE, socket.AF_UNIX))
    program.add_rule(refuse, "socketpair", pyseccomp.Arg(0, pyseccomp.NE, socket.AF_UNIX))
    return program


def bpf_file() -> int:
    """A file descriptor holding the compiled program, at offset 0 (bwrap ``--seccomp``)."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115  (the descriptor outlives this call)
    build().export_bpf(handle)
    handle.flush()
    fd = os.dup(handle.fileno())
    handle.close()
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
