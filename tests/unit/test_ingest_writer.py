"""The spool's zone files (``ingest.event_file_writer``), which ingest moves into a
snapshot as they are, against DuckDB's ordered COPY, the writer they replace for zones
spooled in canonical order: the same rows in the same order and column types, row groups
that never mix zones, and a request_id bloom filter that DuckDB uses to skip row
groups."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tail import SHAPES

import caracal_forensics as cf
from caracal_forensics import ingest
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.snapshot import open_sources
from caracal_forensics.sources.snapshot_dir import event_files
from caracal_forensics.spool import Spool

#: columns the generated events leave NULL in some rows (the rest are never NULL)
NULLABLE = ("request_id", "decision", "diagnostics_json", "prev_content_sha256",
            "ingest_signature", "absent_fields")  # fmt: skip
ZONES = ("zone-a", "zone-b", "zone:prod/eu-1", "zöne-ü", "a")
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _events(rows: list[tuple[str | None, int]], nulls: int) -> pa.Table:
    """Events of (zone_id, chain_seq) in this order; every ``nulls``-th row (0: none)
    holds NULL in the NULLABLE columns."""
    columns: dict[str, list] = {name: [] for name in EVENT_SCHEMA.names}
    for line, (zone, seq) in enumerate(rows):
        empty = bool(nulls) and line % nulls == 0
        values = {
            "id": f"ev-{line:07d}",
            "zone_id": zone,
            "request_id": f"req-{seq // 3:06d}-{zone}",
            "occurred_at": EPOCH + dt.timedelta(seconds=seq),
            "ingested_at": EPOCH + dt.timedelta(seconds=seq, microseconds=line),
            "occurred_at_digits": 6,
            "chain_seq": seq,
            "source_line": line + 1,
            "metadata_json": f'{{"n": {line}}}',
            "content_sha256": f"{line:064x}",
            "prev_content_sha256": f"{line - 1:064x}",
            "chain_hmac": f"{line * 7:064x}",
        }
        for name in EVENT_SCHEMA.names:
            if name in values:
                value = values[name]
            elif EVENT_SCHEMA.field(name).type == pa.string():
                value = f"{name}-{seq % 5}"
            if empty and name in NULLABLE:
                value = None
            columns[name].append(value)
    return pa.table(columns, schema=EVENT_SCHEMA)


def _spool(tmp: Path, table: pa.Table, batch_rows: int,
           group_rows: int = ingest.ROW_GROUP_ROWS) -> Spool:
    """The rows as ``open_sources`` spools them, in batches of ``batch_rows``."""
    tmp.mkdir()
    spool = Spool(str(tmp), group_rows=group_rows)
    for batch in table.to_batches(max_chunksize=batch_rows):
        spool.add(batch)
    spool.close()
    return spool


def _duckdb_copy(files: list[str], path: Path, rows: int) -> None:
    """DuckDB's ordered COPY (ingest._copy_events), the writer of unsorted zones."""
    from caracal_forensics.engine import union_files

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"COPY ({union_files(files)}) TO $p ({ingest.parquet_options(rows)})",
                {"p": str(path)})


def _check_same_as_duckdb(tmp: Path, files: list[str], rows: int) -> list[str]:
    """Place the spool's ``files`` as ingest does and write them with DuckDB too: the
    rows, their order and the column types must be the same."""
    (tmp / "new").mkdir()
    ingest._place(files, str(tmp / "new"))
    _duckdb_copy(files, tmp / "old.parquet", rows)
    new = sorted(str(p) for p in (tmp / "new").glob("*.parquet"))
    old = pq.read_table(tmp / "old.parquet")
    written = pa.concat_tables([pq.read_table(p) for p in new])
    # DuckDB writes a column without NULLs as required; the spool's writer cannot know
    # that before the last row, and declares every column as the model does
    assert written.schema == EVENT_SCHEMA
    assert written.equals(old.cast(EVENT_SCHEMA))
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    listed = ", ".join(f"'{p}'" for p in new)
    assert con.sql(f"SELECT * FROM read_parquet([{listed}])").fetchall() == con.sql(
        f"SELECT * FROM read_parquet('{tmp / 'old.parquet'}')").fetchall()
    return new


def _row_groups(files: list[str]) -> list[tuple[int, str | None, str | None]]:
    """(rows, min zone_id, max zone_id) of every row group, file after file."""
    groups = []
    for path in files:
        meta = pq.read_metadata(path)
        zone = meta.schema.names.index("zone_id")
        for index in range(meta.num_row_groups):
            stats = meta.row_group(index).column(zone).statistics
            groups.append((meta.row_group(index).num_rows, stats.min, stats.max))
    return groups


@st.composite
def _interleaved(draw) -> tuple[list[tuple[str | None, int]], int]:
    """Rows of a few zones (NULL among them) in chain order per zone, zones interleaved
    in runs; and how often a row holds NULLs."""
    zones = draw(st.lists(st.sampled_from((*ZONES, None)), min_size=1, max_size=4,
                          unique=True))
    runs = draw(st.lists(st.tuples(st.sampled_from(zones), st.integers(1, 90)), max_size=12))
    seqs = dict.fromkeys(zones, 0)
    rows = []
    for zone, length in runs:
        for _ in range(length):
            seqs[zone] += 1
            rows.append((zone, seqs[zone]))
    return rows, draw(st.sampled_from((0, 1, 3, 50)))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_interleaved(), rows=st.sampled_from((1, 7, 64)), batch=st.sampled_from((5, 97)))
def test_generated_events_are_written_as_duckdb_writes_them(tmp_path_factory, case, rows,
                                                            batch):
    events, nulls = case
    tmp = tmp_path_factory.mktemp("w")
    spool = _spool(tmp / "spool", _events(events, nulls), batch, rows)
    files = spool.ordered_files()
    if None in {zone for zone, _ in events}:
        assert files is None  # zone NULL: the shared file, sorted by DuckDB
        return
    if not events:
        assert files == []  # nothing spooled: DuckDB writes the empty file
        return
    new = _check_same_as_duckdb(tmp, files, rows)
    assert len(new) == len({zone for zone, _ in events})  # a part file per zone
    groups = _row_groups(new)
    assert all(low == high and count <= rows for count, low, high in groups)
    for zone in {zone for zone, _ in events}:
        count = sum(1 for z, _ in events if z == zone)
        sizes = [n for n, low, _ in groups if low == zone]
        assert sum(sizes) == count
        # full row groups from the zone's first row on, the last one shorter
        assert sizes == [rows] * (count // rows) + ([count % rows] if count % rows else [])


def test_a_zone_beyond_a_row_group_rolls_over(tmp_path):
    """Real row group size: 61,440 rows, then the rest, while later rows are held back
    for reordering; request_id dictionary-encoded, id plain."""
    count = 2 * ingest.ROW_GROUP_ROWS + 1_000
    events = [("zone-a", seq) for seq in range(1, count + 1)]
    events += [("zone-b", seq) for seq in range(1, 501)]
    spool = _spool(tmp_path / "spool", _events(events, nulls=1_000), 65_536)
    files = spool.ordered_files()
    assert files is not None
    new = _check_same_as_duckdb(tmp_path, files, ingest.ROW_GROUP_ROWS)
    assert [n for n, _, _ in _row_groups(new)] == [61_440, 61_440, 1_000, 500]
    assert len(new) == 2
    for path in new:
        meta = pq.read_metadata(path)
        names = meta.schema.names
        for index in range(meta.num_row_groups):
            group = meta.row_group(index)
            assert "RLE_DICTIONARY" in group.column(names.index("request_id")).encodings
            assert not any("DICTIONARY" in e for e in group.column(names.index("id")).encodings)


def _scanned(con, sql: str) -> tuple[int, int]:
    plan = "\n".join(row[1] for row in con.sql("EXPLAIN ANALYZE " + sql).fetchall())
    found = re.search(r"Row Groups Scanned:\s*(\d+)\s*/\s*(\d+)", plan)
    assert found, plan
    return int(found.group(1)), int(found.group(2))


def test_duckdb_skips_row_groups_by_the_request_id_bloom_filter(tmp_path):
    """Request ids are not sorted, so min/max cannot rule a row group out: the bloom
    filter pyarrow wrote must."""
    events = [("zone-a", seq) for seq in range(1, 20_001)]
    table = _events(events, nulls=0)
    # request ids in no order: the hex of a scrambled number
    scrambled = [f"req-{(i * 2_654_435_761) % 2**32:08x}" for i in range(table.num_rows)]
    table = table.set_column(EVENT_SCHEMA.get_field_index("request_id"), "request_id",
                             pa.array(scrambled, pa.string()))
    spool = _spool(tmp_path / "spool", table, 4_096, 2_048)
    files = spool.ordered_files()
    listed = ", ".join(f"'{p}'" for p in files)
    con = duckdb.connect()
    stats = con.sql(
        f"SELECT count(*), count(bloom_filter_offset), max(stats_min_value), "
        f"min(stats_max_value) "
        f"FROM parquet_metadata([{listed}]) WHERE path_in_schema = 'request_id'"
    ).fetchall()[0]
    assert stats[0] == stats[1] == 10  # every row group has one
    present = scrambled[12_345]
    absent = "req-7fffffff"
    assert stats[2] < absent < stats[3]  # within every row group's min/max
    source = f"SELECT id FROM read_parquet([{listed}]) WHERE request_id = "
    assert _scanned(con, f"{source}'{present}'") == (1, 10)
    assert _scanned(con, f"{source}'{absent}'")[0] == 0
    assert con.sql(f"{source}'{present}'").fetchall() == [("ev-0012345",)]


@pytest.mark.parametrize("linked", [True, False])
@pytest.mark.parametrize("shape", ["db_csv", "ocsf"])
def test_ingest_places_the_spool_and_reingests_without_a_sort(tmp_path, monkeypatch, shape,
                                                              linked):
    """Spooled in order: the zone files become the snapshot (a part file per zone, hard
    links or, across file systems, copies), which reads back as the same events and is
    itself re-ingested without a sort."""
    if not linked:
        def cross_device(source, target):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(ingest.os, "link", cross_device)
    snap = open_sources([str(SHAPES[shape])], by_zone=True)
    spooled = ingest._spooled_in_order(snap)
    assert spooled
    expected = snap.arrow()
    manifest = snap.ingest(str(tmp_path / "first"))
    parts = event_files(str(tmp_path / "first"))
    assert len(parts) == len(spooled) == len(manifest["zones"]) > 1
    assert [f["path"] for f in manifest["files"]][:2] == [
        "events/part-00000.parquet", "events/part-00001.parquet"]
    assert all((os.stat(p).st_nlink == 2) == linked for p in parts)
    again = cf.open(str(tmp_path / "first"))
    assert "ORDER BY" not in ingest.events_query(again)
    assert again.arrow().equals(expected)
    again.ingest(str(tmp_path / "second"))
    assert cf.open(str(tmp_path / "second")).arrow().equals(expected)
