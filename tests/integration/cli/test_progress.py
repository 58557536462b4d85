"""Progress on long work on a terminal, nothing in pipes (issue 15.17)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import FIXTURE_EXPORT, ROOT

DB_CSV = str(FIXTURE_EXPORT / "db.csv")


def _env() -> dict[str, str]:
    env = {**os.environ, "TERM": "xterm-256color"}
    for name in ("CARACAL_FORENSICS_DEBUG", "COLUMNS", "AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE"):
        env.pop(name, None)
    return env


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    return {
        "ingest": ["ingest", "--out", str(tmp_path / "snap"), "-s", DB_CSV],
        "verify": ["verify", "-s", DB_CSV],
        "tail": ["audit", "tail", "-n", "0", "--json", "-s", DB_CSV],
    }


@pytest.mark.parametrize("command", ["ingest", "verify", "tail"])
def test_nothing_on_stderr_when_it_is_not_a_terminal(tmp_path: Path, command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "caracal_forensics",
                           *_commands(tmp_path)[command]],
                          capture_output=True, cwd=ROOT, env=_env(), timeout=120)
    assert proc.returncode in (0, 3)  # verify without a key: partial
    assert proc.stderr == b""
    assert b"\x1b" not in proc.stdout


@pytest.mark.parametrize(("command", "says"), [
    ("ingest", [b"reading the sources", b"writing the snapshot"]),
    ("verify", [b"verifying"]),
    ("tail", [b"reading the sources"]),
])
def test_a_terminal_sees_progress(tmp_path: Path, command: str, says: list[bytes]) -> None:
    """stderr on a pseudo-terminal: the progress line is drawn there, stdout stays clean."""
    leader, follower = pty.openpty()
    out_file = tmp_path / "stdout"
    with out_file.open("wb") as stdout:  # a file, not a pipe nobody reads while we wait
        proc = subprocess.Popen([sys.executable, "-m", "caracal_forensics",
                                 *_commands(tmp_path)[command]],
                                stdout=stdout, stderr=follower, cwd=ROOT, env=_env())
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    os.close(leader)
    out = out_file.read_bytes()
    assert proc.returncode in (0, 3)
    for text in says:
        assert text in seen
    assert b"\x1b" not in out and b"reading the sources" not in out
