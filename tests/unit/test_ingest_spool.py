"""ingest without a sort: loaded events are spooled per zone, and a zone whose rows arrive
in chain order (give or take a few late rows) is written as it is. The snapshot must be
the one the sort writes: same rows, same order, same schema, same manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.tail import EXPORT, SHAPES

import caracal_forensics as cf
from caracal_forensics import ingest
from caracal_forensics import spool as spool_module
from caracal_forensics.ingest import SORT_ORDER, events_query, write_snapshot
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.snapshot import open_sources
from caracal_forensics.sources import db_csv
from caracal_forensics.sources.snapshot_dir import event_files


def _sorted_rows(snap) -> list[dict]:
    columns = ", ".join(f'"{n}"' for n in EVENT_SCHEMA.names)
    return (
        snap.duckdb.sql(f"SELECT {columns} FROM events ORDER BY {SORT_ORDER}")
        .to_arrow_table()
        .to_pylist()
    )


def _written_rows(out: Path) -> list[dict]:
    """The snapshot's events, part file after part file."""
    parts = [pq.read_table(path) for path in event_files(str(out))]
    return [row for part in parts for row in part.select(EVENT_SCHEMA.names).to_pylist()]


def _types(out: Path) -> list[tuple[str, pa.DataType]]:
    """Column names and types of every part file (nullability aside: DuckDB writes a
    column without NULLs as required, the spool declares every column as the model)."""
    schemas = {tuple((f.name, f.type) for f in pq.read_schema(p)) for p in event_files(str(out))}
    assert len(schemas) == 1
    return list(schemas.pop())


def _by_zone(path) -> cf.Snapshot:
    """The sources opened as ``ingest`` opens them: spooled by zone."""
    return open_sources([str(path)], by_zone=True)


def _force_sort(snap) -> None:
    """Replace the events view by an equivalent one: ingest then takes the sorting path."""
    con = snap.duckdb
    con.execute("ALTER VIEW events RENAME TO events_as_opened")
    con.execute("CREATE VIEW events AS SELECT * FROM events_as_opened")


def _comparable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("created_at", "files", "bytes")}


@pytest.mark.parametrize("shape", ["db_csv", "db_jsonl", "cli_jsonl", "ocsf", "search"])
def test_every_shape_is_written_in_canonical_order(tmp_path, shape):
    snap = cf.open(str(SHAPES[shape]))
    expected = _sorted_rows(snap)
    manifest = snap.ingest(str(tmp_path / "fast"))
    assert _written_rows(tmp_path / "fast") == expected
    reference = cf.open(str(SHAPES[shape]))
    _force_sort(reference)
    assert "ORDER BY" in events_query(reference)
    slow = write_snapshot(reference, str(tmp_path / "sorted"))
    assert _written_rows(tmp_path / "sorted") == expected
    assert _types(tmp_path / "fast") == _types(tmp_path / "sorted")
    assert _comparable(manifest) == _comparable(slow)


@pytest.mark.parametrize("shape", ["db_csv", "db_jsonl", "ocsf"])
def test_ordered_exports_need_no_sort(shape):
    snap = _by_zone(SHAPES[shape])
    assert "ORDER BY" not in events_query(snap)


@pytest.mark.parametrize("shape", ["db_csv", "cli_jsonl", "ocsf"])
def test_opened_in_arrival_order_ingest_reads_the_sources_again_by_zone(tmp_path, shape):
    """``cf.open`` spools as the events come (one file): its ingest opens the sources
    again by zone and moves the zones' files into place, a part file per zone."""
    snap = cf.open(str(SHAPES[shape]))
    assert not snap.layout.spool.by_zone and "ORDER BY" in events_query(snap)
    expected = _sorted_rows(snap)
    manifest = snap.ingest(str(tmp_path / "out"))
    assert _written_rows(tmp_path / "out") == expected
    assert len(event_files(str(tmp_path / "out"))) == len(manifest["zones"]) > 1
    assert manifest["inputs"] == [i.to_dict() for i in snap.inputs]


def test_mixed_shapes_with_duplicates_are_sorted(tmp_path):
    snap = cf.open(str(EXPORT))
    expected = _sorted_rows(snap)
    manifest = snap.ingest(str(tmp_path / "out"))
    assert manifest["duplicate_events"] > 0
    assert _written_rows(tmp_path / "out") == expected


def _shuffled_csv(tmp_path: Path, moves: list[tuple[int, int]]) -> Path:
    lines = (EXPORT / "db.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    for source, target in moves:
        rows.insert(target, rows.pop(source))
    path = tmp_path / "db.csv"
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("small", [False, True])
def test_late_rows_are_put_in_place(tmp_path, monkeypatch, small):
    if small:  # batches of a few rows, written out every few rows: late across chunks
        monkeypatch.setattr(spool_module, "SPOOL_ROWS", 8)
        monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 8)
        monkeypatch.setattr(spool_module, "VECTOR_ROWS", 4)
        monkeypatch.setattr(spool_module, "REORDER_ROWS", 64)
        monkeypatch.setattr(db_csv, "BLOCK_SIZE", 4096)
    path = _shuffled_csv(tmp_path, [(10, 30), (100, 140), (3, 200)])
    snap = _by_zone(path)
    assert "ORDER BY" not in events_query(snap)
    expected = _sorted_rows(snap)
    snap.ingest(str(tmp_path / "out"))
    assert _written_rows(tmp_path / "out") == expected


def test_rows_later_than_the_hold_back_make_ingest_sort(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SPOOL_ROWS", 8)
    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 8)
    monkeypatch.setattr(spool_module, "VECTOR_ROWS", 4)
    monkeypatch.setattr(spool_module, "REORDER_ROWS", 4)
    monkeypatch.setattr(db_csv, "BLOCK_SIZE", 4096)  # batches of a few rows
    path = _shuffled_csv(tmp_path, [(2, 230)])
    snap = _by_zone(path)
    assert "ORDER BY" in events_query(snap)
    expected = _sorted_rows(snap)
    snap.ingest(str(tmp_path / "out"))
    assert _written_rows(tmp_path / "out") == expected
    # small spool row groups, held-back rows: still every row, in order
    unsorted = _by_zone(SHAPES["db_csv"])
    assert "ORDER BY" not in events_query(unsorted)
    unsorted.ingest(str(tmp_path / "small"))
    assert _written_rows(tmp_path / "small") == _sorted_rows(unsorted)


def test_zones_beyond_the_spool_files_share_one_and_are_sorted(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SPOOL_ZONE_FILES", 2)
    snap = _by_zone(SHAPES["db_csv"])
    assert "ORDER BY" in events_query(snap)
    assert snap.count() == 240
    expected = _sorted_rows(snap)
    snap.ingest(str(tmp_path / "out"))
    assert _written_rows(tmp_path / "out") == expected


def test_a_snapshot_is_reingested_without_a_sort(tmp_path):
    cf.open(str(SHAPES["db_csv"])).ingest(str(tmp_path / "first"))
    snap = cf.open(str(tmp_path / "first"))
    assert "ORDER BY" not in events_query(snap)
    second = snap.ingest(str(tmp_path / "second"))
    assert _written_rows(tmp_path / "second") == _written_rows(tmp_path / "first")
    first = json.loads((tmp_path / "first" / "manifest.json").read_text())
    assert second["zones"] == first["zones"] and second["events"] == 240


def test_inputs_are_fingerprinted_while_read(tmp_path):
    manifest = cf.open(str(SHAPES["db_csv"])).ingest(str(tmp_path / "out"))
    (source,) = manifest["inputs"]
    data = (SHAPES["db_csv"]).read_bytes()
    assert source["sha256"] == hashlib.sha256(data).hexdigest()
    assert source["bytes"] == len(data) and source["rows"] == 240


@pytest.mark.parametrize("shape", ["db_csv", "cli_jsonl", "ocsf"])
def test_spooled_as_they_come_the_events_and_the_snapshot_are_the_same(tmp_path, shape):
    """Commands that do not ingest spool the events in arrival order (one file, no split
    by zone): every query sees the same events, and an ingest from it sorts."""
    by_zone = _by_zone(SHAPES[shape])
    arrival = open_sources([str(SHAPES[shape])])
    assert len(arrival.layout.spool.files) == 1
    assert _sorted_rows(arrival) == _sorted_rows(by_zone)
    assert arrival.tail(limit=0).equals(by_zone.tail(limit=0))
    assert "ORDER BY" in events_query(arrival)
    manifest = arrival.ingest(str(tmp_path / "arrival"))
    reference = by_zone.ingest(str(tmp_path / "by_zone"))
    assert _written_rows(tmp_path / "arrival") == _written_rows(tmp_path / "by_zone")
    assert _comparable(manifest) == _comparable(reference)


def _lines_file(path: Path, text: bytes) -> Path:
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("batch_rows", [1, 2, 7, 65536])
@pytest.mark.parametrize("variant", ["as is", "crlf", "no final newline", "blank lines",
                                     "huge line"])
def test_json_lines_are_fingerprinted_by_their_reader_exactly(tmp_path, monkeypatch,
                                                              batch_rows, variant):
    """An uncompressed JSON lines file is fingerprinted by the block reader on its way
    through (read once); the size and SHA-256 must be those of the file, byte for byte."""
    from caracal_forensics.chain.files import verify_files
    from caracal_forensics.sources import _batch, _io
    from caracal_forensics.sources._io import file_sha256

    monkeypatch.setattr(_batch, "BATCH_ROWS", batch_rows)
    lines = SHAPES["db_jsonl"].read_bytes().split(b"\n")
    if variant == "crlf":
        lines = [line + b"\r" if line else line for line in lines]
    elif variant == "no final newline":
        lines = lines[:-1]
    elif variant == "blank lines":
        lines = [lines[0], b"", b"  ", *lines[1:]]
    elif variant == "huge line":
        lines = [*lines[:3], b" " * (3 << 20) + lines[3], *lines[4:]]
    path = _lines_file(tmp_path / "db.jsonl", b"\n".join(lines))
    expected = file_sha256(str(path))
    hashed_alone = []
    original = _io.file_sha256
    monkeypatch.setattr(_io, "file_sha256", lambda p: hashed_alone.append(p) or original(p))
    snap = cf.open(str(path))
    assert (snap.inputs[0].bytes, snap.inputs[0].sha256) == expected
    key = (EXPORT / "key.hex").read_text().strip()
    report = verify_files([str(path)], key=key).report
    assert (report.inputs[0].bytes, report.inputs[0].sha256) == expected
    assert hashed_alone == []  # the file was not read a second time to be fingerprinted


def test_a_reader_that_stops_early_leaves_the_fingerprint_to_wait(tmp_path):
    """The clean pass gives up at an edited line (the stream is not read to its end): the
    fingerprint is still the whole file's."""
    from caracal_forensics.chain.files import verify_files
    from caracal_forensics.sources._io import file_sha256

    lines = SHAPES["db_jsonl"].read_bytes().split(b"\n")
    edited = lines[3].replace(b'"decision":"', b'"decision":"x', 1)
    assert edited != lines[3]
    lines[3] = edited
    path = _lines_file(tmp_path / "db.jsonl", b"\n".join(lines))
    key = (EXPORT / "key.hex").read_text().strip()
    report = verify_files([str(path)], key=key).report
    assert report.status == "tampered"
    assert (report.inputs[0].bytes, report.inputs[0].sha256) == file_sha256(str(path))


class _FullDisk:
    """A snapshot event file writer on a full disk: the first row group fails."""

    def __init__(self, path, *args):
        self.path = path

    def write_table(self, *args, **kwargs):
        raise OSError(28, "No space left on device", self.path)

    def close(self):
        pass


def test_a_spool_that_cannot_be_written_is_one_clear_error(monkeypatch):
    """The encoders fail while the inputs are still read: one typed error naming the
    temporary file, no encoder thread left behind."""
    import threading

    from caracal_forensics.errors import ForensicsError

    monkeypatch.setattr(ingest, "ROW_GROUP_ROWS", 8)  # row groups encoded while reading
    monkeypatch.setattr(spool_module, "SPOOL_ROWS", 8)
    monkeypatch.setattr(spool_module, "REORDER_ROWS", 8)
    monkeypatch.setattr(spool_module, "VECTOR_ROWS", 4)
    monkeypatch.setattr(db_csv, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(ingest, "event_file_writer", _FullDisk)
    with pytest.raises(ForensicsError) as error:
        _by_zone(SHAPES["db_csv"])
    message = str(error.value)
    assert "cannot write temporary data: No space left on device" in message
    assert ".parquet" in message and error.value.exit_code == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("spool")]


def test_a_snapshot_that_cannot_be_placed_is_one_clear_error(tmp_path, monkeypatch):
    import shutil

    from caracal_forensics.errors import ForensicsError

    def full(*args):
        raise OSError(28, "No space left on device")

    snap = _by_zone(SHAPES["db_csv"])
    monkeypatch.setattr(ingest.os, "link", full)
    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(ForensicsError, match="cannot write the snapshot: .*No space left"):
        snap.ingest(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # no half-written snapshot left
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForensicsError, match="cannot write the snapshot"):
        snap.ingest(str(tmp_path / "empty"))
    assert list((tmp_path / "empty").iterdir()) == []  # given empty, left empty


def test_an_input_broken_before_ingest_reads_it_again_leaves_no_snapshot(tmp_path):
    """Opened in arrival order, ingest reads the sources again: an input that broke
    meanwhile is the reader's usual error, and --out is not left half-written."""
    from caracal_forensics.errors import InputError

    path = tmp_path / "db.csv"
    path.write_bytes(SHAPES["db_csv"].read_bytes())
    snap = cf.open(str(path))
    with path.open("ab") as handle:
        handle.write(b'"unterminated\n')
    with pytest.raises(InputError, match="db.csv"):
        snap.ingest(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
