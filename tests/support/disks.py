"""A real full disk for tests: a small tmpfs (we are root in the test machine) and a way
to fill it up, so that writers meet ENOSPC as they would on a user's machine."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mount`` (made), unmounted afterwards."""
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` up, leaving about ``leave`` bytes (page-rounded) free."""
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                stat = os.statvfs(disk)
                free = stat.f_bavail * stat.f_frsize - leave
                if free <= 0:
                    break
                handle.write(b"\0" * min(free, 1 << 16))
                handle.flush()
        except OSError:
            pass
