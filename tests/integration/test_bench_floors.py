"""bench/floors.py still runs against the library it times (it calls the snapshot writer,
the C kernel and the OCSF reader's column map directly), on the bundled fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE, ROOT

import caracal_forensics as cf

EXPORT = str(FIXTURE_EXPORT)


def test_floors_times_every_step_and_task(tmp_path) -> None:
    snapshot = str(tmp_path / "snapshot")
    cf.open(os.path.join(EXPORT, "db.csv")).ingest(snapshot)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "floors.py"),
         "--csv", os.path.join(EXPORT, "db.csv"), "--ocsf", os.path.join(EXPORT, "ocsf"),
         "--snapshot", snapshot, "--key-file", str(FIXTURE_KEY_FILE)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["events"] == cf.open(snapshot).count()
    for step, took in result["steps"].items():
        assert took["wall"] > 0 and took["cpu"] >= 0, step
    assert set(result["tasks"]) == {"ingest_db_csv", "ingest_ocsf", "verify_db_csv",
                                    "verify_snapshot", "tail_json_all_snapshot"}
    for task, floor in result["tasks"].items():
        assert set(floor["steps"]) <= set(result["steps"]), task
        # start-up, plus the steps' CPU over the cores, never under the one-core SHA-256
        assert floor["floor"] >= result["startup"] + floor["cpu"] / result["cores"] - 1e-9
        serial = [result["steps"][s]["wall"] for s in floor["steps"] if s.startswith("sha256")]
        assert floor["floor"] >= result["startup"] + max(serial, default=0) - 1e-9
