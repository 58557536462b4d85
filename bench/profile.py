"""Where a command's wall time goes: py-spy over one run, summarised by function.

    .venv/bin/python bench/profile.py [--rate 100] [--top 25] -- caracal-forensics verify ...

Records the command with ``py-spy record --idle --threads --subprocesses --format raw``
(py-spy is on PyPI: ``.venv/bin/pip install py-spy``), then prints, per process, the share
of samples
and thread (idle included: a thread waiting on DuckDB's threads counts as time in the call
that waits) spent inside each function, cumulative ("incl.": the function or anything it
calls) and on top of the stack ("self"). Only frames of caracal_forensics, bench/ and the
libraries it calls into (duckdb, pyarrow, json, hashlib, ...) are listed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def frame_name(frame: str) -> str:
    """``function (path:line)`` -> ``module.function`` with the path shortened."""
    match = re.match(r"(?P<func>.*?) \((?P<path>[^:]*)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    path = match.group("path")
    for marker in ("/site-packages/", "/caracal_forensics/", "/bench/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker in ("/caracal_forensics/", "/bench/"):
                path = marker.strip("/") + "/" + path
            break
    return f"{path.removesuffix('.py')}:{match.group('func')}"


def summarise(raw_path: str, top: int) -> str:
    per_process: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    self_time: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    with open(raw_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                samples = int(count)
            except ValueError:
                continue
            frames = stack.split(";")
            process = frames[0] if frames and frames[0].startswith("process") else "process"
            found = re.match(r'process (\d+):"(.*)"?$', process)
            if found:
                words = [w.rsplit("/", 1)[-1] for w in found.group(2).split()[:4]]
                process = f"pid {found.group(1)} ({' '.join(words)})"
            body = [f for f in frames[1:] if not f.startswith("thread")]
            thread = next((f for f in frames if f.startswith("thread")), "")
            tid = re.search(r"\((\d+|0x[0-9a-f]+)\)", thread)
            key = f"{process} thread {tid.group(1) if tid else thread}".strip()
            totals[key] += samples
            seen = set()
            for frame in body:
                name = frame_name(frame)
                if name not in seen:
                    per_process[key][name] += samples
                    seen.add(name)
            if body:
                self_time[key][frame_name(body[-1])] += samples
    out = []
    longest = max(totals.values(), default=1)
    for key, total in totals.most_common():
        if total < longest * 0.05:
            continue
        out.append(f"\n== {key[:140]}: {total} samples ({100 * total / longest:.0f}% of the"
                   " longest thread; % below are of this thread)")
        out.append(f"{'incl.':>7} {'self':>7}  function")
        ranked = per_process[key].most_common()
        shown = 0
        for name, samples in ranked:
            if samples < total * 0.01:
                break
            out.append(f"{100 * samples / total:6.1f}% {100 * self_time[key][name] / total:6.1f}%"
                       f"  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print(__doc__)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="also keep the raw py-spy output here")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if command and command[0] == "caracal-forensics":
        command[0] = os.path.join(ROOT, ".venv", "bin", "caracal-forensics")
    spy = shutil.which("py-spy") or os.path.join(ROOT, ".venv", "bin", "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "profile.txt")
        started = time.perf_counter()
        done = subprocess.run(
            [spy, "record", "--idle", "--threads", "--subprocesses", "--rate", str(args.rate),
             "--format", "raw", "--output", raw, "--", *command],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        elapsed = time.perf_counter() - started
        if not os.path.exists(raw):
            print(done.stderr, file=sys.stderr)
            return 1
        if args.keep:
            shutil.copy(raw, args.keep)
        print(f"{' '.join(command)}\nwall {elapsed:.2f}s under py-spy (exit {done.returncode})")
        print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
