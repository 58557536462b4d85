"""The HMAC key never reaches a worker process: a real worker's /proc/<pid>/environ is
read while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.paths import ROOT

PROGRAM = """
import json, os
from caracal_forensics.sources import _parallel
pool = _parallel._executor()
pids = {pool.submit(os.getpid).result() for _ in range(4)}
from multiprocessing import resource_tracker
pids.add(resource_tracker._resource_tracker._pid)  # started by the pool's queues
found = {}
for pid in pids:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        found[pid] = [v.split(b"=", 1)[0].decode() for v in handle.read().split(b"\\0") if v]
print(json.dumps({"workers": found, "parent": [k for k in os.environ if k.startswith("AUDIT")]}))
pool.shutdown()
"""


def test_workers_do_not_inherit_the_key() -> None:
    env = dict(os.environ, AUDIT_HMAC_KEY="00" * 32, AUDIT_HMAC_KEY_FILE="/secret/key.hex",
               CARACAL_FORENSICS_WORKERS="2", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen["workers"]) >= 2  # real children were read: workers, resource tracker
    for names in seen["workers"].values():
        assert "PATH" in names  # the rest of the environment is passed on
        assert "AUDIT_HMAC_KEY" not in names and "AUDIT_HMAC_KEY_FILE" not in names
    # the parent keeps them (a notebook may load the key later)
    assert sorted(seen["parent"]) == ["AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE"]
