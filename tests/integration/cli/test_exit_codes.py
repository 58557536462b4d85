"""Exit codes hold whatever happens: 1 means tampered and nothing else, also when
CARACAL_FORENSICS_DEBUG asks for the traceback of an error no check foresaw."""

from __future__ import annotations

import os
import subprocess
import sys

from support.paths import ROOT, VECTOR_EXPORT

CSV = VECTOR_EXPORT / "db.csv"

# a failure no check names, injected where the sources are resolved, in a real process
PROGRAM = """
import sys
import caracal_forensics.cli.app as app
import caracal_forensics.cli.options as options
def broken(_sources):
    raise RuntimeError("something no check foresaw")
options.resolve_sources = broken
app.run(sys.argv[1:])
"""


def run_broken(debug: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CARACAL_FORENSICS_DEBUG"}
    if debug:
        env["CARACAL_FORENSICS_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", PROGRAM, "stats", "--source", str(CSV)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_debug_shows_the_traceback_and_still_exits_2() -> None:
    plain = run_broken(debug=False)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = run_broken(debug=True)
    assert debug.returncode == 2, debug.stderr
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith("RuntimeError: something no check foresaw")


def test_running_out_of_memory_is_said_as_such_not_as_bad_evidence() -> None:
    """DuckDB out of memory was "reading the data failed ... `verify` checks a snapshot's
    files", which reads like corrupt evidence: it is the machine's limit."""
    env = {**os.environ, "CARACAL_FORENSICS_MEMORY_LIMIT": "1MB"}
    done = subprocess.run([sys.executable, "-m", "caracal_forensics", "stats", "--source",
                           str(VECTOR_EXPORT)], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "error: out of memory: " in done.stderr
    assert "CARACAL_FORENSICS_MEMORY_LIMIT" in done.stderr
    assert "verify" not in done.stderr
