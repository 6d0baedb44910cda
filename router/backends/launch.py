"""`python -P router/backends/launch.py PARENT_PID -- ARGV...`: exec ARGV so that it dies with its parent.

PR_SET_PDEATHSIG survives execve, so the llama.cpp server gets SIGTERM even when the router is killed
with SIGKILL and cannot stop it. Set here rather than in a Popen preexec_fn, which is unsafe in a
process with threads (the router has gRPC's).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    """Arrange the death signal, check the parent still lives, then exec; returns only on bad usage."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("usage: python -P router/backends/launch.py PARENT_PID -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    parent_pid, command = int(argv[0]), argv[2:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            print(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
    # The parent may have died before prctl took effect: then no signal would ever come.
    if os.getppid() != parent_pid:
        return 1
    os.execv(command[0], command)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
