"""A/B: the same commands from two checkouts, alternated, on data bench/generate.py made.

    .venv/bin/python bench/ab.py OLD_CHECKOUT NEW_CHECKOUT [--data bench/out/n1000000]
                                 [--repeat 3] [--only ingest,verify,tail]

A refactor that must leave speed unchanged is measured here: each task runs in a fresh
process from each checkout's own ``.venv`` (``make setup`` there first), old and new in
turn so that a machine whose speed swings hurts both alike; the table gives each side's
best wall time and peak memory (``ru_maxrss`` of the child) and new/old. The full
``make bench`` (run.py) is for targets and baselines; this is for "did my change move it".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def tasks(data: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (group, arguments of caracal-forensics); ``{out}`` is a fresh directory."""
    meta = json.load(open(os.path.join(data, "meta.json"), encoding="utf-8"))
    request = meta.get("request_id")
    snap = os.path.join(data, "snapshot")
    found = {
        "ingest_db_csv": ("ingest", ["ingest", "-s", f"{data}/db.csv", "--out", "{out}"]),
        "ingest_db_jsonl": ("ingest", ["ingest", "-s", f"{data}/db.jsonl", "--out", "{out}"]),
        "ingest_ocsf": ("ingest", ["ingest", "-s", f"{data}/ocsf", "--out", "{out}"]),
        "verify_snapshot": ("verify", ["verify", "-s", snap]),
        "verify_db_csv": ("verify", ["verify", "-s", f"{data}/db.csv"]),
        "verify_db_jsonl": ("verify", ["verify", "-s", f"{data}/db.jsonl"]),
        "stats_snapshot": ("tail", ["stats", "-s", snap]),
        "tail_denies_snapshot": ("tail", ["audit", "tail", "-s", snap, "--decision", "deny",
                                          "--limit", "100"]),
    }
    if request:
        found["tail_request_snapshot"] = ("tail", ["audit", "tail", "-s", snap,
                                                   "--request-id", request])
        found["explain_cli_jsonl"] = ("tail", ["explain", request, "-s",
                                               f"{data}/cli.jsonl"])
    return found


def run_once(checkout: str, args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, peak RSS in KiB of the child, exit code)."""
    out = tempfile.mkdtemp(prefix="ab-out-")
    shutil.rmtree(out)
    argv = [os.path.join(checkout, ".venv", "bin", "caracal-forensics"),
            *[a.replace("{out}", out) for a in args]]
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env, cwd=checkout)
    _, err = child.communicate()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    shutil.rmtree(out, ignore_errors=True)
    if child.returncode not in (0, 1, 3):
        sys.stderr.write(f"{checkout}: {' '.join(args)}: exit {child.returncode}: "
                         f"{err.decode(errors='replace').strip()[:300]}\n")
    return seconds, peak, child.returncode


def run_measured(checkout: str, args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """run_once in a process of its own, so that ru_maxrss is this task's alone."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", checkout,
                           json.dumps(args)], capture_output=True, text=True, check=True,
                          env=env)
    seconds, peak, status = json.loads(done.stdout)
    return seconds, peak, status


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--one"]:  # one task, in a process of its own (see run_measured)
        print(json.dumps(run_once(argv[1], json.loads(argv[2]), dict(os.environ))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "out",
                                                       "n1000000"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    groups = {g for g in args.only.split(",") if g}
    env = dict(os.environ)
    env["AUDIT_HMAC_KEY_FILE"] = os.path.join(args.data, "key.hex")
    env.pop("AUDIT_HMAC_KEY", None)
    for name, (group, task) in tasks(args.data).items():
        if groups and group not in groups:
            continue
        best = {"old": (float("inf"), 0), "new": (float("inf"), 0)}
        codes = set()
        for _ in range(args.repeat):
            for side in ("old", "new"):
                seconds, peak, code = run_measured(getattr(args, side), task, env)
                codes.add((side, code))
                if seconds < best[side][0]:
                    best[side] = (seconds, peak)
        old, new = best["old"], best["new"]
        print(f"{name:24} old {old[0]:6.2f} s {old[1] / 1024:6.0f} MiB   "
              f"new {new[0]:6.2f} s {new[1] / 1024:6.0f} MiB   new/old {new[0] / old[0]:.2f}"
              f"   exits {sorted(codes)}", flush=True)


if __name__ == "__main__":
    main()
