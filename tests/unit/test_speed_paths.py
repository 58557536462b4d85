"""Fast paths: what makes the big cases fast, checked by what they read, not by timing.

- a canonical snapshot carries bloom filters on request_id, so a lookup by request id
  (``tail --request-id``, ``explain``) reads only the row groups that may hold it;
- the table-dump CSV reader parses on every core and falls back to one thread, which
  names the line, after any problem, with the same rows, lines and errors either way.
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
from support.tail import SHAPES

import caracal_forensics as cf
from caracal_forensics.filters import Filters, select_sql

COPIES = 120


def _many_row_groups(tmp_path, days_apart: bool = False):
    """28,800 events (120 renamed copies of the vectors) in row groups of 2,048 rows;
    ``days_apart``: each copy a day after the one before (its row groups hold its days)."""
    from caracal_forensics.ingest import write_snapshot

    snap = cf.open(str(SHAPES["db_csv"]))
    later = ", e.occurred_at + to_days(CAST(k AS INTEGER)) AS occurred_at" if days_apart else ""
    snap.duckdb.execute(
        "CREATE OR REPLACE VIEW events AS SELECT e.* REPLACE ("
        "e.zone_id || '-' || lpad(k::VARCHAR, 3, '0') AS zone_id, "
        "e.request_id || '-' || k::VARCHAR AS request_id, "
        f"e.id || '-' || k::VARCHAR AS id{later}) "
        f"FROM loaded_events e, range({COPIES}) r(k)"
    )
    out = tmp_path / "big"
    write_snapshot(snap, str(out), row_group_rows=2048)
    return snap, out


def _row_groups_scanned(con, sql: str, params) -> tuple[int, int]:
    plan = "\n".join(row[1] for row in con.sql("EXPLAIN ANALYZE " + sql, params=params).fetchall())
    found = re.search(r"Row Groups Scanned:\s*(\d+)\s*/\s*(\d+)", plan)
    if found is None:  # the optimizer ruled the whole file out from its statistics
        assert "READ_PARQUET" not in plan.upper(), plan
        return 0, 0
    return int(found.group(1)), int(found.group(2))


def test_snapshot_has_bloom_filters_on_request_id_and_keeps_unique_columns_plain(tmp_path):
    _snap, out = _many_row_groups(tmp_path)
    path = out / "events" / "part-00000.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 14
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    request, ident = names.index("request_id"), names.index("id")
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        assert "PLAIN_DICTIONARY" in group.column(request).encodings or (
            "RLE_DICTIONARY" in group.column(request).encodings
        )
    # a unique column stays plain except maybe in the short last row group
    plain = sum(
        1
        for index in range(meta.num_row_groups)
        if not any("DICTIONARY" in e for e in meta.row_group(index).column(ident).encodings)
    )
    assert plain >= meta.num_row_groups - 1
    con = cf.open(str(out)).duckdb
    rows = con.sql(
        "SELECT count(*), count(bloom_filter_offset) FROM parquet_metadata($p) "
        "WHERE path_in_schema = 'request_id'",
        params={"p": str(path)},
    ).fetchall()
    assert rows == [(meta.num_row_groups, meta.num_row_groups)]


def test_request_id_lookup_reads_few_row_groups(tmp_path):
    snap, out = _many_row_groups(tmp_path)
    big = cf.open(str(out))
    request = snap.sql(
        "SELECT request_id FROM loaded_events GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )["request_id"][0]
    wanted = f"{request}-37"
    sql, params = select_sql(Filters.build(request_id=wanted, limit=0))
    scanned, total = _row_groups_scanned(big.duckdb, sql, params)
    assert total >= 14 and scanned <= 2, (scanned, total)
    expected = snap.sql(
        "SELECT id || '-37' AS id FROM loaded_events WHERE request_id = $r ORDER BY id",
        params={"r": request},
    )["id"].to_list()
    got = big.tail(request_id=wanted, limit=0)["id"].to_list()
    assert sorted(got) == expected and expected
    assert sorted(big.explain(wanted).events["id"].to_list()) == expected
    # an unknown request id within the min/max range is ruled out by the bloom filters
    sql, params = select_sql(Filters.build(request_id=f"{request}-999", limit=0))
    scanned, total = _row_groups_scanned(big.duckdb, sql, params)
    assert scanned <= 1, (scanned, total)


def test_zone_filter_still_skips_row_groups(tmp_path):
    _snap, out = _many_row_groups(tmp_path)
    big = cf.open(str(out))
    sql, params = select_sql(Filters.build(zone="zone-beta-007", limit=0))
    scanned, total = _row_groups_scanned(big.duckdb, sql, params)
    assert total >= 14 and scanned <= 2, (scanned, total)


def test_the_newest_rows_are_read_from_the_row_groups_of_their_times(tmp_path):
    """tail's newest N (``select_sql`` given the connection): their times are looked up
    first on occurred_at alone, and only the row groups those times allow are read whole
    (they all were, for the six sort keys: 10M events took 1.2 s, and 5,000 whole events
    ran DuckDB out of memory); the rows are those of the plain statement."""
    from caracal_forensics.filters import run_query

    _snap, out = _many_row_groups(tmp_path, days_apart=True)
    big = cf.open(str(out))
    for filters in (Filters.build(limit=100), Filters.build(limit=700, decision="deny")):
        sql, params = select_sql(filters, con=big.duckdb)
        scanned, total = _row_groups_scanned(big.duckdb, sql, params)
        assert total >= 14 and scanned <= total // 2, (scanned, total)
        plain = run_query(big.duckdb, *select_sql(filters))
        assert run_query(big.duckdb, sql, params).equals(plain) and plain.num_rows
    assert big.tail(limit=100).equals(big.sql(
        "SELECT * FROM (SELECT * FROM unique_events ORDER BY occurred_at DESC, zone_id DESC, "
        "chain_seq DESC, id DESC, source_file DESC, source_line DESC LIMIT 100) "
        "ORDER BY occurred_at, zone_id, chain_seq, id, source_file, source_line"))


# --- table-dump CSV: parallel parse, sequential fallback --------------------------------


def _csv_events(path, monkeypatch, *, parallel: bool, block: int, skip: bool = False):
    from caracal_forensics.sources import BadLines, db_csv
    from caracal_forensics.sources._io import peek
    from caracal_forensics.sources.detect import csv_header

    monkeypatch.setattr(db_csv, "PARALLEL", parallel)
    monkeypatch.setattr(db_csv, "BLOCK_SIZE", block)
    bad = BadLines(skip=skip)
    batches = list(db_csv.read(str(path), bad, csv_header(str(path), peek(str(path)))))
    import pyarrow as pa

    return pa.Table.from_batches(batches), bad


def _big_csv(tmp_path, name: str, copies: int = 12, edit=None, compress=None):
    raw = SHAPES["db_csv"].read_bytes().rstrip(b"\n").split(b"\n")
    header, body = raw[0], raw[1:]
    lines = [header] + body * copies
    if edit:
        edit(lines)
    data = b"\n".join(lines) + b"\n"
    if compress == "gzip":
        import gzip

        data = gzip.compress(data)
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_parallel_csv_reads_what_the_sequential_reader_reads(tmp_path, monkeypatch, compress):
    path = _big_csv(tmp_path, "db.csv", compress=compress)
    fast, _ = _csv_events(path, monkeypatch, parallel=True, block=16384)
    slow, _ = _csv_events(path, monkeypatch, parallel=False, block=8 << 20)
    assert fast.num_rows == slow.num_rows == 240 * 12
    assert fast.equals(slow)
    assert fast.column("source_line").to_pylist()[:3] == [2, 3, 4]


def _short_row(lines):
    lines[2500] = b"ev-x,zone-alpha,token_exchange"


def test_parallel_csv_falls_back_and_names_the_short_row_line(tmp_path, monkeypatch):
    from caracal_forensics.errors import InputError

    path = _big_csv(tmp_path, "short.csv", edit=_short_row)
    with pytest.raises(InputError) as error:
        _csv_events(path, monkeypatch, parallel=True, block=16384)
    assert "line 2501: expected 19 columns, got 3" in str(error.value)
    fast, bad_fast = _csv_events(path, monkeypatch, parallel=True, block=16384, skip=True)
    slow, bad_slow = _csv_events(path, monkeypatch, parallel=False, block=8 << 20, skip=True)
    assert bad_fast.count == bad_slow.count == 1 and bad_fast.first == bad_slow.first
    assert fast.equals(slow) and fast.num_rows == 240 * 12 - 1


def test_parallel_csv_bad_timestamp_and_missing_field_name_their_lines(tmp_path, monkeypatch):
    from caracal_forensics.errors import InputError

    def bad_time(lines):
        lines[2000] = lines[2000].replace(b"2026-05-11 ", b"2026-13-11 ", 1)

    path = _big_csv(tmp_path, "time.csv", edit=bad_time)
    with pytest.raises(InputError) as error:
        _csv_events(path, monkeypatch, parallel=True, block=16384)
    assert "line 2001: occurred_at is not a timestamp" in str(error.value)

    def no_id(lines):
        lines[2800] = b"," + lines[2800].split(b",", 1)[1]

    path = _big_csv(tmp_path, "noid.csv", edit=no_id)
    with pytest.raises(InputError) as error:
        _csv_events(path, monkeypatch, parallel=True, block=16384)
    assert "line 2801: missing required field 'id'" in str(error.value)
    fast, bad_fast = _csv_events(path, monkeypatch, parallel=True, block=16384, skip=True)
    slow, bad_slow = _csv_events(path, monkeypatch, parallel=False, block=8 << 20, skip=True)
    assert bad_fast.count == bad_slow.count == 1 and fast.equals(slow)


def test_skipped_short_rows_leave_line_numbers_exact(tmp_path, monkeypatch):
    def two_short(lines):
        lines[1] = b"ev-x,zone-alpha"
        lines[5] = b"ev-y,zone-alpha"

    path = _big_csv(tmp_path, "two.csv", copies=1, edit=two_short)
    for parallel in (True, False):
        table, bad = _csv_events(path, monkeypatch, parallel=parallel, block=8 << 20, skip=True)
        assert bad.count == 2 and "line 2: expected 19 columns" in bad.first
        assert table.num_rows == 238
        assert table.column("source_line").to_pylist()[:5] == [3, 4, 5, 7, 8]


def test_spill_directory_is_removed_with_its_connection(tmp_path, monkeypatch):
    import gc
    import tempfile

    from caracal_forensics.engine import connect

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    con = connect()
    con.execute("SET memory_limit = '20MB'")
    con.execute("SET threads = 1")
    spilled = con.sql(
        "SELECT count(*) FROM (SELECT range AS n, repeat('x', 200) AS pad FROM range(400000) "
        "ORDER BY random())"
    ).fetchall()
    assert spilled == [(400000,)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("caracal-forensics-")]
    del con
    gc.collect()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("caracal-forensics-")]
