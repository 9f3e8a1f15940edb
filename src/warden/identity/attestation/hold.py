"""The launcher's shim: wait on a pipe until the process is bound to its agent, then ``exec``.

``warden run`` starts ``python -m warden.identity.attestation.hold FD CMD...``; the pid and start
time stay the same across ``exec``, so the binding made while this waits names the workload.
Only one byte ``g`` releases it; anything else (the launcher died, the binding was refused) ends
it without running the command.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.stderr.write("usage: hold FD CMD [ARG...]\n")
        os._exit(2)
    fd = int(argv[1])
    go = os.read(fd, 1)
    os.close(fd)
    if go != b"g":
        os._exit(125)
    try:
        os.execvp(argv[2], argv[2:])  # noqa: S606 - the operator's own command line
    except OSError as exc:
        sys.stderr.write(f"warden run: cannot run {argv[2]!r}: {exc}\n")
        os._exit(127)


if __name__ == "__main__":
    main(sys.argv)
