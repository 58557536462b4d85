"""What this machine allows: the essential work of ingest and verify, each step alone.

    .venv/bin/python bench/floors.py --csv db.csv --ocsf DIR --snapshot DIR --key-file K

Prints JSON: per step, the best wall and CPU seconds of a few runs, done with the fastest
tool here and nothing else (no checks, no output, no error handling), then per task a
floor: start-up, plus the steps' CPU seconds spread perfectly over the cores (never less
than the longest step that runs on one core). A task cannot take less than its floor with
these libraries on this machine, so ``floor / measured`` says how close the toolkit is,
and ``events / floor`` whether a target is reachable at all.

Steps:
- parse_csv: the table-dump CSV into Arrow string columns (the faster of pyarrow's and
  DuckDB's readers; typing the columns is not counted);
- read_ocsf: the hourly OCSF files' columns of an event into Arrow;
- decode_snapshot: the snapshot's event files into Arrow;
- sha256_*: the input's fingerprint (hashlib, one core: a SHA-256 does not split);
- encode: the events written as snapshot event files (``ingest.event_file_writer``), on
  two threads;
- row_hash: every event's content hash and HMAC recomputed by the C kernel, two threads;
- decode_tail_columns: the snapshot's columns a ``tail --json`` line and its order need
  (not prev_content_sha256, ingested_at, ...), row group by row group, the columns stored
  dictionary-encoded with few values read as dictionaries (as ``render/sweep.py`` reads
  them: request_id, nearly one value a row, dense);
- render_lines: every ``tail --json`` line written by the C kernel (``render/_lines.c``)
  into one reused buffer, two threads, from those columns as read (a dictionary's few
  values rendered once; no sort: the keys' sort is about 0.1 s a million);
- pipe_write: that many bytes written into a pipe that ``wc -c`` reads, 8 MiB at a time
  (CPU seconds of both ends).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from caracal_forensics.chain import native  # noqa: E402
from caracal_forensics.ingest import event_file_writer  # noqa: E402
from caracal_forensics.model import EVENT_SCHEMA  # noqa: E402
from caracal_forensics.sources import ocsf_parquet  # noqa: E402

CORES = os.cpu_count() or 1
#: task -> the steps it cannot do without
TASKS = {
    "ingest_db_csv": ["parse_csv", "sha256_db_csv", "encode"],
    "ingest_ocsf": ["read_ocsf", "sha256_ocsf", "encode"],
    "verify_db_csv": ["parse_csv", "sha256_db_csv", "row_hash"],
    "verify_snapshot": ["decode_snapshot", "sha256_snapshot", "row_hash"],
    "tail_json_all_snapshot": ["decode_tail_columns", "render_lines", "pipe_write"],
}
#: steps that run on one core however many there are
SERIAL = {"sha256_db_csv", "sha256_ocsf", "sha256_snapshot"}


def best_of(runs: int, work: Callable[[], object]) -> dict[str, float]:
    """The fastest of ``runs`` runs: wall seconds and the process's CPU seconds."""
    best: dict[str, float] | None = None
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        took = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        if best is None or took["wall"] < best["wall"]:
            best = took
    assert best is not None
    return best


def sha256_files(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")


def parse_csv(path: str) -> dict[str, float]:
    con = duckdb.connect()
    con.execute(f"SET threads = {CORES}")
    quoted = path.replace("'", "''")

    def with_duckdb() -> None:
        con.sql(f"SELECT * FROM read_csv('{quoted}', all_varchar = true)").to_arrow_table()

    def with_pyarrow() -> None:
        pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={}))

    return min(best_of(3, with_duckdb), best_of(3, with_pyarrow), key=lambda t: t["wall"])


def encode(table: pa.Table, scratch: str) -> dict[str, float]:
    half = table.num_rows // 2
    parts = [table.slice(0, half), table.slice(half)]

    def write(index: int) -> None:
        with event_file_writer(os.path.join(scratch, f"part-{index}.parquet")) as writer:
            writer.write_table(parts[index], row_group_size=61_440)

    def both() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, range(2)))

    return best_of(3, both)


def row_hash(table: pa.Table, key: bytes) -> dict[str, float]:
    batches = table.to_batches(max_chunksize=65_536)

    def check(batch: pa.RecordBatch) -> int:
        return native.first_unproven_row(batch, key)

    def all_rows() -> None:
        with ThreadPoolExecutor(CORES) as pool:
            if any(row >= 0 for row in pool.map(check, batches)):
                raise SystemExit("row_hash: the snapshot does not verify (floors need one)")

    return best_of(3, all_rows)


def tail_columns(paths: list[str]) -> list[pa.Table]:
    """Every row group of the files, the columns a ``tail --json`` line and its order
    need, read as ``render/sweep.py`` reads them."""
    from caracal_forensics.render.records import EVENT_COLUMNS
    from caracal_forensics.render.sweep import _dictionary_columns

    columns = list(dict.fromkeys([*EVENT_COLUMNS, "source_file", "source_line"]))
    groups = []
    for path in paths:
        handle = pq.ParquetFile(path, read_dictionary=_dictionary_columns(path, columns))
        for index in range(handle.metadata.num_row_groups):
            groups.append(handle.read_row_group(index, columns=columns))
    return groups


def decode_tail_columns(paths: list[str]) -> dict[str, float]:
    return best_of(3, lambda: tail_columns(paths))


def render_lines(groups: list[pa.Table]) -> tuple[dict[str, float], int]:
    """The render_lines step over row groups as ``tail_columns`` reads them, and how many
    bytes the lines take."""
    from caracal_forensics.render import native_lines

    lines = native_lines.LineTable([batch for group in groups for batch in group.to_batches()])
    halves = [(0, lines.rows // 2), (lines.rows // 2, lines.rows)]
    total = [0]

    def half(bounds: tuple[int, int]) -> int:
        out = bytearray(8 << 20)
        position, end, size = bounds[0], bounds[1], 0
        while position < end:
            position, written = lines.render(None, position, end, out)
            if written < 0:
                out = bytearray(-written)
                continue
            size += written
        return size

    def both() -> None:
        with ThreadPoolExecutor(2) as pool:
            total[0] = sum(pool.map(half, halves))

    return best_of(3, both), total[0]


def pipe_write(size: int) -> dict[str, float]:
    """``size`` bytes into a pipe read by ``wc -c``; CPU of both ends."""
    chunk = memoryview(b"x" * (8 << 20))

    def write() -> None:
        reader = subprocess.Popen(["wc", "-c"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL)
        assert reader.stdin is not None
        left = size
        descriptor = reader.stdin.fileno()
        while left:
            left -= os.write(descriptor, chunk[:min(left, len(chunk))])
        reader.stdin.close()
        reader.wait()

    best: dict[str, float] | None = None
    for _ in range(3):
        before, wall = os.times(), time.perf_counter()
        write()
        after = os.times()
        cpu = sum(after[:4]) - sum(before[:4])  # this process and the reader
        took = {"wall": time.perf_counter() - wall, "cpu": cpu}
        if best is None or took["wall"] < best["wall"]:
            best = took
    assert best is not None
    return best


def startup() -> dict[str, float]:
    """A fresh interpreter that imports pyarrow's Parquet reader: every task pays it."""
    argv = [sys.executable, "-c", "import pyarrow.parquet"]
    return best_of(5, lambda: subprocess.run(argv, check=True))


def floors(steps: dict[str, dict[str, float]], start: float) -> dict[str, dict]:
    out = {}
    for task, needs in TASKS.items():
        cpu = sum(steps[step]["cpu"] for step in needs)
        longest = max((steps[step]["wall"] for step in needs if step in SERIAL), default=0.0)
        out[task] = {"steps": needs, "cpu": cpu,
                     "floor": start + max(cpu / CORES, longest)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--ocsf", required=True)
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args()
    with open(args.key_file, encoding="ascii") as handle:
        key = bytes.fromhex(handle.read().strip())
    ocsf_files = sorted(glob.glob(os.path.join(args.ocsf, "**", "*.parquet"), recursive=True))
    snapshot_files = sorted(glob.glob(os.path.join(args.snapshot, "events", "*.parquet")))
    columns = list(ocsf_parquet.COLUMNS.values())

    steps: dict[str, dict[str, float]] = {}
    steps["parse_csv"] = parse_csv(args.csv)
    steps["read_ocsf"] = best_of(3, lambda: [pq.read_table(f, columns=columns)
                                             for f in ocsf_files])
    steps["decode_snapshot"] = best_of(3, lambda: pq.read_table(snapshot_files))
    steps["sha256_db_csv"] = best_of(2, lambda: sha256_files([args.csv]))
    steps["sha256_ocsf"] = best_of(2, lambda: sha256_files(ocsf_files))
    steps["sha256_snapshot"] = best_of(2, lambda: sha256_files(snapshot_files))
    events = pq.read_table(snapshot_files, schema=EVENT_SCHEMA)
    with tempfile.TemporaryDirectory(prefix="floors-") as scratch:
        steps["encode"] = encode(events, scratch)
    steps["row_hash"] = row_hash(events, key)
    count = events.num_rows
    del events  # the tail steps read their own columns
    steps["decode_tail_columns"] = decode_tail_columns(snapshot_files)
    steps["render_lines"], line_bytes = render_lines(tail_columns(snapshot_files))
    steps["pipe_write"] = pipe_write(line_bytes)
    start = startup()["wall"]
    json.dump({"cores": CORES, "events": count, "startup": start, "steps": steps,
               "tasks": floors(steps, start)}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
