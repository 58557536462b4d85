"""`... | head`: a reader that closes the pipe early is not an error (exit 0, stderr quiet)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest
from support.paths import FIXTURE_EXPORT as EXPORT
from support.paths import ROOT


def _run_into_closed_pipe(args: list[str], lines: int) -> tuple[int, str]:
    """Run the CLI with stdout into a real pipe (made small, so output fills it), read
    ``lines`` lines, close the read end as `head` does, and return (exit code, stderr)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("CARACAL_FORENSICS_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "caracal_forensics", *args],
        stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT, env=env,
    )
    os.close(write_end)
    seen = 0
    while seen < lines:
        byte = os.read(read_end, 1)
        if not byte:
            break
        seen += byte == b"\n"
    os.close(read_end)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr.decode()


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (["audit", "tail", "-n", "0", "-s", str(EXPORT / "db.csv")], 1),
        (["audit", "tail", "-n", "0", "--json", "-s", str(EXPORT / "db.csv")], 1),
        (["stats", "-s", str(EXPORT / "db.csv")], 0),
        (["sql", "SELECT id, zone_id FROM events", "-s", str(EXPORT / "db.csv")], 1),
        (["sql", "SELECT id FROM events", "--json", "-s", str(EXPORT / "db.csv")], 1),
    ],
    ids=["tail", "tail-json", "stats", "sql", "sql-json"],
)
def test_a_reader_closing_the_pipe_early_is_not_an_error(args: list[str], lines: int) -> None:
    code, stderr = _run_into_closed_pipe(args, lines)
    assert (code, stderr) == (0, "")
