"""What `audit tail --query` imports on a canonical snapshot: not pyarrow.compute (some
25 ms of every start; only the readers of other shapes and the evaluator's record
building use it). Speed itself is measured in bench/; this checks the cause."""

from __future__ import annotations

import subprocess
import sys

from support.paths import VECTOR_EXPORT

import caracal_forensics as cf

PROBE = """
import sys
from caracal_forensics.cli.app import run
try:
    run({argv!r})
except SystemExit:
    pass
print(sorted(m for m in ("pyarrow", "pyarrow.compute") if m in sys.modules))
"""


def test_a_compiled_query_on_a_snapshot_imports_no_pyarrow_compute(tmp_path) -> None:
    snapshot = tmp_path / "snap"
    cf.open(str(VECTOR_EXPORT / "db.csv")).ingest(str(snapshot))
    for query in ("event_type == 'nope'", "decision == 'deny' && {id: id, z: zone_id}"):
        code = PROBE.format(argv=["audit", "tail", "--source", str(snapshot), "--limit", "0",
                                  "--query", query])
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert eval(proc.stdout.strip().splitlines()[-1]) == ["pyarrow"], query
