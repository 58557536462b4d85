"""Run the CLI in a child process and measure the child's own peak memory.

A child's ``ru_maxrss`` (``os.wait4``) counts the address space it was forked from: Linux
carries the old memory's high-water mark over ``exec``, so ``python -c pass`` spawned
from a pytest process of 1.5 GiB reports 1.5 GiB. A memory test run late in a long
session (the pytest process grown) then failed by chance. So the command is started by
a small launcher (a fresh interpreter), which forks it: its peak is then its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import IO, Any

_LAUNCHER = r"""
import os, resource, signal, sys
report, limit, timeout, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
pid = os.fork()
if pid == 0:
    try:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(timeout)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024}")
"""


def run_cli_measured(args: list[Any], *, stdout: IO[Any] | int | None,
                     stderr: IO[Any] | int | None, env: dict[str, str] | None = None,
                     address_space: int = 0, timeout: int = 120) -> tuple[int, int]:
    """(exit code, peak RSS in bytes) of ``caracal-forensics ARGS`` in a child process
    writing to ``stdout`` and ``stderr``; ``address_space``: its RLIMIT_AS (0: none);
    killed after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "peak")
        subprocess.run(  # noqa: S603
            [sys.executable, "-c", _LAUNCHER, report, str(address_space), str(timeout),
             sys.executable, "-m", "caracal_forensics", *map(str, args)],
            stdout=stdout, stderr=stderr, env=env, check=True)
        with open(report, encoding="ascii") as handle:
            code, peak = handle.read().split()
    return int(code), int(peak)
