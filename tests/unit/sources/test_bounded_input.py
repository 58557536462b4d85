"""Memory stays bounded on hostile input (issue 14.2).

A line, JSON document or CSV record longer than the maximum (16 MiB, or
$CARACAL_FORENSICS_MAX_LINE_BYTES) is refused as a bad line naming the file and line, or
with ``--on-bad-line skip`` skipped and counted, never held whole: the CLI, run in a
child process, stays far below 1 GiB whatever the input. The hostile files are made
compactly: a gzip stream may hold many members, so 1 GiB of one byte costs one member
of 1 MiB repeated (about 1 MB on disk) and no compression time.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE
from support.peak import run_cli_measured
from support.tail import EXPORT, KEY_FILE

from caracal_forensics.errors import InputError
from caracal_forensics.sources import BadLines, read_alerts, read_events, scan

MIB = 1 << 20
#: Peak resident memory allowed to a child reading a hostile file.
PEAK = 1 << 30
#: The child's address space, so that a regression fails at once instead of taking the
#: machine's memory (a Python with DuckDB and Arrow maps far more than it touches).
ADDRESS_SPACE = 8 << 30
ENV = "CARACAL_FORENSICS_MAX_LINE_BYTES"
GOOD = (EXPORT / "db.jsonl").read_bytes().splitlines(keepends=True)


def _gzip_run(handle, byte: bytes, mib: int) -> None:
    """``mib`` MiB of ``byte`` as gzip members (one compressed once, written ``mib`` times)."""
    member = gzip.compress(byte * MIB, compresslevel=9, mtime=0)
    for _ in range(mib):
        handle.write(member)


def long_line_gz(path: Path, mib: int, before: int = 20, after: int = 0) -> Path:
    """``before`` good db.jsonl lines, one line of ``mib`` MiB, ``after`` good lines."""
    with path.open("wb") as handle:
        handle.write(gzip.compress(b"".join(GOOD[:before]) + b'{"id": "', mtime=0))
        _gzip_run(handle, b"a", mib)
        tail = b'"}\n' + b"".join(GOOD[before : before + after])
        handle.write(gzip.compress(tail, mtime=0))
    return path


def run_child(*args: str | os.PathLike[str], env: dict[str, str] | None = None
              ) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in bytes) of the CLI in a child process, its
    address space bounded (``ADDRESS_SPACE``); the peak its own (support/peak.py)."""
    import tempfile

    full = {k: v for k, v in os.environ.items()
            if k not in (ENV, "AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE")}
    full.update(env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code, peak = run_cli_measured(list(args), stdout=out, stderr=err, env=full,
                                      address_space=ADDRESS_SPACE)
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode(), peak


def assert_one_line(code: int, err: str, path: Path, *says: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert str(path) in err, err
    for text in says:
        assert text in err, err


def test_a_1_gib_line_is_refused_at_the_default_limit_in_bounded_memory(tmp_path: Path) -> None:
    """The issue's file: 20 good lines then a 1 GiB one, in a gzip of about 1 MB."""
    path = long_line_gz(tmp_path / "db.jsonl.gz", 1024)
    assert path.stat().st_size < 4 * MIB
    code, _, err, peak = run_child("stats", "-s", path)
    assert_one_line(code, err, path, "line 21", "longer than the maximum of 16,777,216 bytes",
                    ENV)
    assert peak < PEAK, f"peak RSS {peak / MIB:.0f} MiB"


@pytest.mark.parametrize("command", [
    ("stats",), ("verify", "--key-file", str(KEY_FILE)), ("ingest", "--out", "{out}"),
    ("audit", "tail"),
])
def test_every_command_refuses_a_long_line_naming_file_and_line(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    path = long_line_gz(tmp_path / "db.jsonl.gz", 64, before=20, after=5)
    args = [a.replace("{out}", str(tmp_path / "case")) for a in command]
    code, _, err, peak = run_child(*args, "-s", path, env={ENV: "1MiB"})
    assert_one_line(code, err, path, "line 21", "longer than the maximum of 1,048,576 bytes")
    assert peak < PEAK


def test_skip_reads_past_a_long_line_without_holding_it(tmp_path: Path) -> None:
    """A 1 GiB line skipped: never in memory, counted, and the lines after it are read."""
    path = long_line_gz(tmp_path / "db.jsonl.gz", 1024, before=20, after=5)
    code, out, err, peak = run_child("stats", "--json", "--on-bad-line", "skip", "-s", path)
    assert code == 0, err
    assert "skipped 1 malformed line" in err
    assert json.loads(out)["events"] == 25
    assert peak < PEAK, f"peak RSS {peak / MIB:.0f} MiB"


def _plain(tmp_path: Path, long: int, name: str = "db.jsonl", char: bytes = b"a") -> Path:
    """An uncompressed file: 3 good lines, one event of ``long`` bytes (padded by a key
    of its own), 3 more."""
    event = GOOD[3].rstrip(b"\n")
    body = b'{"pad": "' + char * (long - len(event) - 11) + b'", ' + event[1:]
    assert len(body) == long
    path = tmp_path / name
    path.write_bytes(b"".join(GOOD[:3]) + body + b"\n" + b"".join(GOOD[4:7]))
    return path


def _read(path: Path, skip: bool, limit: int) -> tuple[list[int], int]:
    source = scan([str(path)])[0]
    bad = BadLines(skip=skip, max_line=limit)
    lines: list[int] = []
    for batch in read_events(source, bad):
        lines += batch.column("source_line").to_pylist()
    return lines, bad.count


@pytest.fixture(params=["kernel", "python", "processes"])
def reader(request, monkeypatch) -> str:
    """Every JSON lines path: the C kernel's blocks, the Python line reader, and the
    worker processes that parse blocks of lines without the kernel."""
    from caracal_forensics import jsonb_native
    from caracal_forensics.sources import _parallel

    if request.param == "kernel" and not jsonb_native.AVAILABLE:
        pytest.skip("the C kernel is not built")
    if request.param != "kernel":
        monkeypatch.setattr(jsonb_native, "AVAILABLE", False)
    if request.param == "processes":
        monkeypatch.setattr(_parallel, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setenv(_parallel.WORKERS_ENV, "2")
    return request.param


@pytest.mark.parametrize("long", [4096, 200_000])
def test_the_limit_is_exact_and_the_same_on_every_path(tmp_path: Path, reader: str,
                                                       long: int) -> None:
    """A line of exactly the limit is read; one byte more is refused (line 4) or skipped,
    the lines after it keeping their numbers; a line shorter than the reader's buffer as
    much as one longer than it."""
    path = _plain(tmp_path, long)
    assert _read(path, False, long) == ([1, 2, 3, 4, 5, 6, 7], 0)
    with pytest.raises(InputError, match="line 4: a line longer than the maximum"):
        _read(path, False, long - 1)
    assert _read(path, True, long - 1) == ([1, 2, 3, 5, 6, 7], 1)


def test_the_block_reader_reads_past_a_line_longer_than_its_buffer(tmp_path: Path) -> None:
    """An uncompressed file's block reader at the default limit: a 40 MiB line is more
    than a read holds (32 MiB); it is refused, or skipped without growing the buffer."""
    path = _plain(tmp_path, 40 * MIB)
    with pytest.raises(InputError, match="line 4: a line longer"):
        _read(path, False, 16 * MIB)
    assert _read(path, True, 16 * MIB) == ([1, 2, 3, 5, 6, 7], 1)


def test_lines_close_to_the_limit_are_all_read(tmp_path: Path, reader: str) -> None:
    """Many lines just under the limit: blocks get fewer lines, none is refused."""
    from caracal_forensics.sources import _parallel

    path = tmp_path / "db.jsonl"
    body = b'{"id": "' + b"a" * (3000 - 10) + b'"}\n'
    path.write_bytes(b"".join(GOOD[:2]) + body * 50 + b"".join(GOOD[2:4]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_parallel, "MAX_READ_BYTES", 20_000)
        patch.setattr(_parallel, "READ_BYTES", 5000)
        lines, skipped = _read(path, True, 3000)
    assert skipped == 50 and lines == [1, 2, 53, 54]  # each long line is not an event


def test_a_search_page_past_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A page of 1 GiB (one string) gzipped: refused, memory bounded, exit 2."""
    path = tmp_path / "page.json.gz"
    page = (EXPORT / "search" / "page-000.json").read_bytes()
    head, tail = page.split(b'"latency_ms"', 1)
    with path.open("wb") as handle:
        handle.write(gzip.compress(head + b'"x": "', mtime=0))
        _gzip_run(handle, b"a", 1024)
        handle.write(gzip.compress(b'", "latency_ms"' + tail, mtime=0))
    code, _, err, peak = run_child("stats", "-s", path)
    assert_one_line(code, err, path, "a search page longer than the maximum")
    assert peak < PEAK, f"peak RSS {peak / MIB:.0f} MiB"
    plain = tmp_path / "page.json"
    plain.write_bytes(page)
    code, _, err, _ = run_child("stats", "-s", plain, env={ENV: str(len(page) - 1)})
    assert_one_line(code, err, plain, "a search page longer than the maximum")
    code, _, err, _ = run_child("stats", "-s", plain, env={ENV: str(len(page))})
    assert code == 0, err


def test_a_huge_csv_field_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A table dump whose line 5 holds a 1 GiB quoted field (gzip members again)."""
    rows = (EXPORT / "db.csv").read_bytes().splitlines(keepends=True)
    path = tmp_path / "db.csv.gz"
    fields = rows[4].split(b",")
    with path.open("wb") as handle:
        handle.write(gzip.compress(b"".join(rows[:4]) + b",".join(fields[:3]) + b',"', mtime=0))
        _gzip_run(handle, b"a", 1024)
        handle.write(gzip.compress(b'",' + b",".join(fields[4:]) + b"".join(rows[5:]), mtime=0))
    code, _, err, peak = run_child("stats", "-s", path)
    assert_one_line(code, err, path, "line 5: a CSV record longer than the maximum")
    assert peak < PEAK, f"peak RSS {peak / MIB:.0f} MiB"


def test_a_csv_record_past_the_limit_is_refused_or_skipped(tmp_path: Path) -> None:
    rows = (EXPORT / "db.csv").read_bytes().splitlines(keepends=True)
    fields = rows[4].split(b",")
    path = tmp_path / "db.csv"
    path.write_bytes(b"".join(rows[:4]) + b",".join(fields[:3] + [b"b" * 300_000]
                                                     + fields[4:]) + b"".join(rows[5:]))
    with pytest.raises(InputError, match="line 5: a CSV record longer than the maximum"):
        _read(path, False, 100_000)
    lines, skipped = _read(path, True, 100_000)
    assert skipped == 1 and 5 not in lines and lines[:4] == [2, 3, 4, 6]
    lines, skipped = _read(path, False, 16 * MIB)
    assert skipped == 0 and lines[:4] == [2, 3, 4, 5]


def test_a_bad_limit_is_one_line(tmp_path: Path) -> None:
    code, _, err, _ = run_child("stats", "-s", EXPORT / "db.jsonl", env={ENV: "lots"})
    assert code == 2 and err.count("\n") == 1 and ENV in err and "Traceback" not in err, err


def test_a_csv_record_longer_than_a_block_but_within_the_limit_is_read(
        tmp_path: Path, monkeypatch) -> None:
    """Arrow holds a record in two blocks at most: one longer is read again from there
    with blocks as large as the limit (the blocks stay small otherwise), a short row
    before it counted once."""
    from caracal_forensics.sources import db_csv

    monkeypatch.setattr(db_csv, "BLOCK_SIZE", 4096)
    rows = (EXPORT / "db.csv").read_bytes().splitlines(keepends=True)
    fields = rows[40].split(b",")
    long = b",".join(fields[:3] + [b"b" * 50_000] + fields[4:])
    path = tmp_path / "db.csv"
    path.write_bytes(b"".join(rows[:10]) + b"short,row\n" + b"".join(rows[10:40]) + long
                     + b"".join(rows[41:60]))
    lines, skipped = _read(path, True, 100_000)
    assert skipped == 1
    assert lines == [n for n in range(2, 62) if n != 11]
    lines, skipped = _read(path, True, 40_000)  # past the limit: skipped too
    assert skipped == 2
    assert lines == [n for n in range(2, 62) if n not in (11, 42)]


def test_batches_of_long_lines_hold_fewer_rows(tmp_path: Path, reader: str, monkeypatch) -> None:
    """Lines under the limit but long: a batch ends at BATCH_BYTES (the kernel's blocks at
    MAX_READ_BYTES, the worker processes' at BLOCK_BYTES), not only at 16,384 rows, so
    16,384 lines of 16 MiB are never one batch."""
    from caracal_forensics.sources import _batch, _parallel

    monkeypatch.setattr(_batch, "BATCH_BYTES", 1 << 20)
    monkeypatch.setattr(_parallel, "MAX_READ_BYTES", 1 << 20)
    monkeypatch.setattr(_parallel, "BLOCK_BYTES", 1 << 20)  # the worker processes' blocks
    event = json.loads(GOOD[3])
    event["metadata_json"]["pad"] = "p" * 300_000  # kept: the batches hold it
    line = json.dumps(event).encode() + b"\n"
    path = tmp_path / "db.jsonl"
    path.write_bytes(b"".join(GOOD[:3]) + line * 30 + b"".join(GOOD[4:7]))
    source = scan([str(path)])[0]
    sizes, lines = [], []
    for batch in read_events(source, BadLines(max_line=400_000)):
        sizes.append(batch.nbytes)
        lines += batch.column("source_line").to_pylist()
    assert lines == list(range(1, 37))
    # at most BATCH_BYTES and one block (of MAX_READ_BYTES) more: 9 MB in 4 batches or more
    assert max(sizes) < 3 << 20 and len(sizes) >= 4, sizes


def test_an_alerts_csv_record_past_the_limit_is_refused_or_skipped(tmp_path: Path) -> None:
    rows = (FIXTURE_EXPORT / "alerts.csv").read_bytes().splitlines(keepends=True)
    fields = rows[1].rstrip(b"\n").split(b",")
    long = b",".join(fields[:4] + [b'"' + b"d" * 50_000 + b'"'] + fields[5:]) + b"\n"
    path = tmp_path / "alerts.csv"
    path.write_bytes(rows[0] + long + b"".join(rows[1:]))
    source = scan([str(path)])[0]
    with pytest.raises(InputError, match="line 2: a CSV record longer than the maximum"):
        list(read_alerts(source, BadLines(max_line=10_000)))
    bad = BadLines(skip=True, max_line=10_000)
    got = sum(batch.num_rows for batch in read_alerts(source, bad))
    assert bad.count == 1 and got == len(rows) - 1


def _long_events(path: Path, count: int, pad: int) -> Path:
    """A valid chained db.jsonl of ``count`` events (the fixtures' generator), all but the
    first (shape detection reads the head of a file) with a string of ``pad`` bytes in
    metadata: many events each close to the maximum, not one hostile line."""
    import random

    from support.bundled import make_fixtures as mf

    from caracal_forensics.jsonb import jsonb_text

    events = mf._event_stream(count, random.Random(7))
    filler = "a" * pad
    for event in events[1:]:
        text = jsonb_text(event["metadata_json"][:-1] + ', "pad": "PAD"}')
        event["metadata_json"] = text.replace('"PAD"', '"' + filler + '"')
    mf.chain(events, bytes.fromhex(mf.KEY_HEX))
    with path.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(mf.db_json_line(event) + "\n")
    return path


@pytest.fixture(scope="module")
def long_events(tmp_path_factory) -> Path:
    """450 events of 1.9 MiB (855 MB): chunks, row groups and batches counted in rows
    held all of them (stats 1.5 GB, ingest 2.5 GB at 500 events)."""
    return _long_events(tmp_path_factory.mktemp("long") / "db.jsonl", 450, int(1.9 * MIB))


@pytest.mark.parametrize("command", [
    ("stats",), ("ingest", "--out", "{out}"),
    ("verify", "--key-file", str(FIXTURE_KEY_FILE)),
])
def test_many_events_near_the_maximum_stay_under_1_gib(
        tmp_path: Path, long_events: Path, command: tuple[str, ...]) -> None:
    args = [a.replace("{out}", str(tmp_path / "case")) for a in command]
    code, out, err, peak = run_child(*args, "-s", long_events)
    assert code == 0, err
    assert peak < PEAK, f"{command[0]}: peak RSS {peak / MIB:.0f} MiB"
    if command[0] == "ingest":
        import pyarrow.parquet as pq

        parts = (tmp_path / "case" / "events").iterdir()
        groups = [pq.ParquetFile(part).metadata for part in parts]
        assert sum(m.num_rows for m in groups) == 450
        # row groups bounded by bytes (ingest.ROW_GROUP_BYTES), not 61,440 rows of 1.9 MiB
        assert all(m.row_group(i).num_rows <= 30 for m in groups for i in range(m.num_row_groups))
