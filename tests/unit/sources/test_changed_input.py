"""A file that changes while it is read is refused (issue 14.3).

Every reader is held, in one place (``sources.read_events`` / ``read_alerts`` and the
stream ``_io.open_binary`` returns), to the state its file had when it was found: a
file truncated, grown, rewritten or replaced before its reading ends is one InputError
naming it, never half its events with the fingerprint of the truncated file.

The library tests are deterministic: the file is changed after the reader has handed
over its first batch and before it is exhausted. The CLI test truncates a real file
while a child process reads it, at a moment read from the child's own file position
(/proc/PID/fdinfo), so that the truncation always falls inside the reading.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.paths import FIXTURE_EXPORT
from support.tail import EXPORT

import caracal_forensics as cf
from caracal_forensics.errors import InputError
from caracal_forensics.sources import (
    BadLines,
    Fingerprints,
    _batch,
    _parallel,
    read_alerts,
    read_events,
    read_inputs,
    scan,
)

LINES = (EXPORT / "db.jsonl").read_bytes().splitlines(keepends=True)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch) -> None:
    """Batches (and the kernel's blocks) of 64 rows, reads of 16 KiB: many of them."""
    monkeypatch.setattr(_batch, "BATCH_ROWS", 64)
    monkeypatch.setattr(_parallel, "READ_BYTES", 16 << 10)


def _repeat(lines: list[bytes], times: int) -> bytes:
    return b"".join(lines) * times


def _write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    elif path.suffix == ".zst":
        import zstandard

        data = zstandard.ZstdCompressor(level=1).compress(data)
    path.write_bytes(data)
    return path


def _change_after_first_batch(path: Path, change, read=read_events) -> InputError:
    """Read the file with the library, ``change(path)`` once the first batch is handed
    over, read on to the end: the InputError it must end with."""
    source = scan([str(path)])[0]
    batches = read(source, BadLines())
    first = next(batches)
    assert first.num_rows > 0
    change(path)
    with pytest.raises(InputError) as caught:
        for _ in batches:
            pass
    assert "changed while it was read" in str(caught.value), caught.value
    return caught.value


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


def _jsonl(tmp_path: Path, name: str = "db.jsonl") -> Path:
    return _write(tmp_path / name, _repeat(LINES, 20))


@pytest.fixture(params=["kernel", "python", "processes"])
def reader(request, monkeypatch) -> str:
    """Every JSON lines path (see test_bounded_input.reader)."""
    from caracal_forensics import jsonb_native

    if request.param == "kernel" and not jsonb_native.AVAILABLE:
        pytest.skip("the C kernel is not built")
    if request.param != "kernel":
        monkeypatch.setattr(jsonb_native, "AVAILABLE", False)
    if request.param == "processes":
        monkeypatch.setattr(_parallel, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(_parallel, "BLOCK_BYTES", 64 << 10)
        monkeypatch.setenv(_parallel.WORKERS_ENV, "2")
    return request.param


@pytest.mark.parametrize("name", ["db.jsonl", "db.jsonl.gz", "db.jsonl.zst"])
def test_json_lines_truncated_while_read(tmp_path: Path, reader: str, name: str) -> None:
    path = _jsonl(tmp_path, name)
    size = path.stat().st_size
    error = _change_after_first_batch(path, truncate)
    assert error.path == str(path)
    assert f"{size:,}" in str(error) and f"it has {size // 3:,} now" in str(error)


def test_a_grown_file_is_refused_too(tmp_path: Path, reader: str) -> None:
    """Lines appended meanwhile: neither the events before nor those after are whole."""
    path = _jsonl(tmp_path)

    def append(p: Path) -> None:
        with p.open("ab") as handle:
            handle.write(b"".join(LINES[:5]))

    _change_after_first_batch(path, append)


def test_a_file_replaced_under_its_name_is_refused(tmp_path: Path, reader: str) -> None:
    path = _jsonl(tmp_path)
    other = _write(tmp_path / "other", _repeat(LINES, 20))

    error = _change_after_first_batch(path, lambda p: os.replace(other, p))
    assert "another file has its name now" in str(error)


def test_a_same_size_rewrite_is_refused(tmp_path: Path, reader: str) -> None:
    """Same size, same inode, even the old mtime put back: st_ctime still tells."""
    path = _jsonl(tmp_path)
    stat = path.stat()

    def rewrite(p: Path) -> None:
        data = bytearray(p.read_bytes())
        data[-3] = ord("0") if data[-3] != ord("0") else ord("1")
        with p.open("r+b") as handle:
            handle.write(data)
        os.utime(p, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    _change_after_first_batch(path, rewrite)


@pytest.mark.parametrize("name", ["db.csv", "db.csv.gz"])
def test_a_table_dump_truncated_while_read(tmp_path: Path, name: str) -> None:
    rows = (EXPORT / "db.csv").read_bytes().splitlines(keepends=True)
    path = _write(tmp_path / name, rows[0] + _repeat(rows[1:], 20))
    _change_after_first_batch(path, truncate)


def test_an_alerts_dump_truncated_while_read(tmp_path: Path) -> None:
    lines = (FIXTURE_EXPORT / "alerts.jsonl"
             ).read_bytes().splitlines(keepends=True)
    path = _write(tmp_path / "alerts.jsonl", _repeat(lines, 200))
    _change_after_first_batch(path, truncate, read_alerts)


def test_a_search_page_changed_while_read(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    shutil.copy(EXPORT / "search" / "page-000.json", path)
    _change_after_first_batch(path, truncate)


def test_an_ocsf_file_truncated_while_read(tmp_path: Path) -> None:
    """A cut Parquet file would be "corrupt data" in its next row group: the change
    that cut it is what the error says."""
    source = next((EXPORT / "ocsf").rglob("*.parquet"))
    table = pq.read_table(source)
    path = tmp_path / "2026-05-11T08.parquet"
    pq.write_table(table, path, row_group_size=16)
    assert pq.ParquetFile(path).num_row_groups > 3
    _change_after_first_batch(path, truncate)


def test_a_snapshot_part_changed_while_read(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    cf.open(str(EXPORT / "db.jsonl")).ingest(str(out))
    parts = sorted((out / "events").glob("*.parquet"))
    assert len(parts) > 1
    error = _change_after_first_batch(out, lambda _: truncate(parts[-1]))
    assert error.path == str(parts[-1])


def test_the_fingerprint_is_never_of_a_truncated_file(tmp_path: Path, reader: str) -> None:
    """The fingerprint is taken on the way (the kernel's tap) or on a thread of its own;
    either way a file truncated meanwhile ends in an error, not in its new hash."""
    path = _jsonl(tmp_path)
    inputs = scan([str(path)], fingerprint=False)
    hashing = Fingerprints(inputs)
    batches = read_inputs(inputs, BadLines())
    next(batches)
    truncate(path)
    with pytest.raises(InputError, match="changed while it was read"):
        for _ in batches:
            pass
        hashing.wait()
    hashing.cancel()
    assert inputs[0].sha256 == ""


def test_an_unchanged_file_reads_as_before(tmp_path: Path, reader: str) -> None:
    path = _jsonl(tmp_path, "db.jsonl.gz")
    snap = cf.open(str(path))
    assert snap.inputs[0].rows == 20 * len(LINES)
    assert snap.inputs[0].bytes == path.stat().st_size


# --- the CLI, with a real concurrent truncation --------------------------------------


def _positions(pid: int, path: Path) -> list[int]:
    """The file positions of ``pid``'s descriptors open on ``path`` (its reader's, and
    its fingerprint thread's)."""
    found = []
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == str(path):
                    info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
                    found.append(int(info.split("pos:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        pass
    return found


def _blank_padded(path: Path) -> Path:
    """20 events, 256 MiB of blank lines, 20 more events: a reading that takes a while
    (compressed: a 250 KB gzip; plain: 64 MiB of blank lines)."""
    blank = b" " * 1023 + b"\n"
    if path.suffix == ".gz":
        member = gzip.compress(blank * 1024, compresslevel=9, mtime=0)  # 1 MiB
        with path.open("wb") as handle:
            handle.write(gzip.compress(b"".join(LINES[:20]), mtime=0))
            for _ in range(256):
                handle.write(member)
            handle.write(gzip.compress(b"".join(LINES[20:40]), mtime=0))
    else:
        with path.open("wb") as handle:
            handle.write(b"".join(LINES[:20]))
            for _ in range(64):
                handle.write(blank * 1024)
            handle.write(b"".join(LINES[20:40]))
    return path


def _truncated_while_read(path: Path, args: list[str]) -> tuple[int, str, str]:
    """Run the CLI on ``path`` and truncate it to half while the child holds it open:
    the child is stopped (SIGSTOP) once a descriptor of it on the file is seen, and the
    file truncated only if one is still open then (else, the reading missed, again).
    Every descriptor is opened after the file's state is noted, and none is closed
    before the reading it serves is checked, so the truncation is always inside."""
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_HMAC")}
    data = path.read_bytes()
    # a loaded machine may let a child read the file between two looks: try again, up
    # to 20 times (each try is one short CLI run), rather than fail by chance
    for _ in range(20):
        path.write_bytes(data)
        child = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "caracal_forensics", *args, "-s", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        truncated = False
        try:
            deadline = time.monotonic() + 60
            while child.poll() is None and time.monotonic() < deadline:
                if _positions(child.pid, path):
                    os.kill(child.pid, signal.SIGSTOP)
                    try:
                        if any(at < len(data) for at in _positions(child.pid, path)):
                            os.truncate(path, len(data) // 2)
                            truncated = True
                    finally:
                        os.kill(child.pid, signal.SIGCONT)
                    if truncated:
                        break
                time.sleep(0.0002)
            stdout, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
            child.wait()
        if truncated:
            return child.returncode, stdout.decode(), stderr.decode()
    raise AssertionError("the child was never seen reading the file")


@pytest.mark.parametrize("name", ["db.jsonl", "db.jsonl.gz"])
@pytest.mark.parametrize("command", [("ingest", "--out", "{out}"), ("verify",)])
def test_a_file_truncated_while_the_cli_reads_it(tmp_path: Path, command, name: str) -> None:
    """The issue's case: ``ingest`` printed "wrote N events", exit 0, for the part it
    read, and ``verify`` said INTACT."""
    path = _blank_padded(tmp_path / name)
    size = path.stat().st_size
    out = tmp_path / "case"
    code, stdout, err = _truncated_while_read(
        path, [a.replace("{out}", str(out)) for a in command])
    assert code == 2, (stdout, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path}: changed while it was read" in err, err
    assert f"{size:,}" in err, err
    assert "INTACT" not in stdout and "wrote" not in stdout
    assert not out.exists() or not any(out.iterdir())


def test_a_snapshot_part_changed_before_its_fingerprint_is_handed_over(tmp_path: Path) -> None:
    """Parts DuckDB (or verify's row groups) read straight: the fingerprints are handed
    over only for files still as they were found."""
    out = tmp_path / "snap"
    cf.open(str(EXPORT / "db.jsonl")).ingest(str(out))
    inputs = scan([str(out)], fingerprint=False)
    hashing = Fingerprints(inputs)
    part = sorted((out / "events").glob("*.parquet"))[0]
    with part.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match="changed while it was read") as caught:
        hashing.wait()
    hashing.cancel()
    assert caught.value.path == str(part)
