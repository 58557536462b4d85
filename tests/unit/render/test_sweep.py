"""``tail --json`` of every event by the sweep over Parquet row groups (``render/sweep.py``):
row groups read once, in the order of their smallest occurred_at, print exactly what the
slices and DuckDB's lines print, whatever the layout (overlapping row groups across files,
equal times, NULL times, empty jsonb text), and a layout holding too much is sliced."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from caracal_forensics.engine import create_empty_table, sql_list
from caracal_forensics.filters import Filters
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.queries import ensure_views
from caracal_forensics.render import bulk, native_lines, sweep

pytestmark = pytest.mark.skipif(native_lines._native is None, reason="C kernel not built")

UTC = dt.timezone.utc


def _events(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    start = dt.datetime(2026, 5, 11, tzinfo=UTC)
    events = []
    for n in range(count):
        moment = None if rng.random() < 0.05 else start + dt.timedelta(
            seconds=rng.choice([0, 1, 2, rng.randrange(500)]),
            microseconds=rng.choice([0, rng.randrange(10**6)]))
        events.append({
            "id": f"ev-{rng.randrange(50)}-{n}", "zone_id": rng.choice(["a", "b", None]),
            "decision": rng.choice(["allow", "deny", "DENY", "Deny ", None, 'q"\n']),
            "event_type": rng.choice(["a", "b", None]), "request_id": rng.choice(["r1", "r2"]),
            "chain_seq": n,
            "occurred_at": moment, "metadata_json": rng.choice(["", '{"k" : 1}', None]),
            "diagnostics_json": rng.choice(["[]", ""]), "source_file": "f.csv",
            "source_line": rng.randrange(5),
            "absent_fields": rng.choice([None, "chain_seq,chain_hmac"]),
        })
    return events


def _connection(tmp_path, events: list[dict], files: int, group_rows: int):
    """A connection whose events are ``files`` Parquet files of ``events`` (dealt out at
    random, in row groups of ``group_rows``), laid out as a snapshot's views are."""
    paths = []
    for index in range(files):
        part = events[index::files]
        table = pa.table({name: pa.array([event.get(name) for event in part], kind)
                          for name, kind in zip(EVENT_SCHEMA.names, EVENT_SCHEMA.types,
                                                strict=True)}, schema=EVENT_SCHEMA)
        path = tmp_path / f"part-{index}.parquet"
        pq.write_table(table, path, row_group_size=group_rows)
        paths.append(str(path))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_empty_table(con, "loaded_events", EVENT_SCHEMA)
    columns = ", ".join(f'"{name}"' for name in EVENT_SCHEMA.names)
    con.execute(f"CREATE VIEW events AS SELECT {columns} FROM ((SELECT * FROM loaded_events) "
                f"UNION ALL BY NAME (SELECT * FROM read_parquet({sql_list(paths)})))")
    ensure_views(con)
    return con


def _written(con, native: bool, monkeypatch, tmp_path, filters: Filters | None = None) -> bytes:
    monkeypatch.setattr(native_lines, "AVAILABLE", native)
    path = tmp_path / f"out-{native}"
    with open(path, "w", encoding="utf-8") as out:
        bulk.write_json_lines(con, filters or Filters.build(limit=0), out)
    return path.read_bytes()


@pytest.mark.parametrize(("seed", "files", "group_rows"), [(1, 1, 7), (2, 3, 5), (3, 2, 64)])
def test_sweep_prints_what_duckdb_prints(seed, files, group_rows, tmp_path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events(seed, 300)
    con = _connection(tmp_path, events, files, group_rows)
    used = []
    real = sweep.sorted_pieces
    monkeypatch.setattr(sweep, "sorted_pieces", lambda *a: used.append(real(*a)) or used[-1])
    native = _written(con, True, monkeypatch, tmp_path)
    assert used and used[0] is not None, "the sweep was not taken"
    assert native == _written(con, False, monkeypatch, tmp_path)
    assert native.count(b"\n") == len(events)


def test_a_layout_holding_too_much_is_sliced(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups whose times all overlap would be held together: the slices print."""
    events = _events(4, 200)
    con = _connection(tmp_path, events, 1, 10)
    monkeypatch.setattr(sweep, "HELD_BYTES", 1000)
    assert sweep.sorted_pieces(con, list(EVENT_SCHEMA.names)) is None
    assert _written(con, True, monkeypatch, tmp_path) == _written(con, False, monkeypatch,
                                                                    tmp_path)


def test_only_the_events_of_parquet_files_alone(tmp_path) -> None:
    """A copy to choose (duplicates) or rows loaded otherwise: no sweep."""
    events = _events(5, 40)
    con = _connection(tmp_path, events + events[:3], 1, 8)  # the same events twice
    assert sweep.parquet_files(con) is None
    con = _connection(tmp_path, events, 1, 8)
    assert sweep.parquet_files(con) == [str(tmp_path / "part-0.parquet")]
    con.execute("INSERT INTO loaded_events SELECT * FROM events LIMIT 1")
    assert sweep.parquet_files(con) is None


def test_most_held_counts_the_row_groups_whose_times_overlap() -> None:
    """Held after reading a row group: those read whose highest time the next one's
    lowest has not passed (the bound the sweep is allowed by)."""
    def group(low: int, high: int, rows: int) -> sweep._Group:
        return sweep._Group("f", 0, low, high, rows)

    apart = [group(0, 9, 10), group(10, 19, 10), group(20, 29, 10)]
    assert sweep._most_held(apart) == 10
    overlapping = [group(0, 15, 10), group(10, 25, 10), group(20, 29, 10)]
    assert sweep._most_held(overlapping) == 20
    nulls_first = [group(sweep._FIRST, 50, 10), *apart]  # NULL times: held to the end
    assert sweep._most_held(nulls_first) == 20


FILTERS = {
    "zone": {"zone": "a"},
    "zones": {"zone": ["b", "a"]},
    "denies": {"decision": "deny"},
    "window": {"since": "2026-05-11T00:00:01Z", "until": "2026-05-11T00:00:02Z"},
    "since": {"since": "2026-05-11T00:00:02Z", "event_type": ["b"]},
    "request": {"request_id": "r2", "decision": "allow", "zone": "b"},
    "none": {"zone": "nowhere"},
}


@pytest.mark.parametrize("laid_out", [False, True], ids=["mixed", "by_zone_and_time"])
@pytest.mark.parametrize("case", FILTERS)
def test_filtered_sweep_prints_what_duckdb_prints(case: str, laid_out: bool, tmp_path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The filters evaluated on each row group select what DuckDB's WHERE selects (NULLs
    dropped, the window's ends, the decision in any case), row groups their zones or
    times rule out unread (laid out by zone and time, as a snapshot is, most are)."""
    events = _events(6, 300)
    if laid_out:
        events.sort(key=lambda event: (event["zone_id"] or "", event["occurred_at"] or
                                       dt.datetime.min.replace(tzinfo=UTC)))
    con = _connection(tmp_path, events, 1 if laid_out else 2, 9)
    filters = Filters.build(limit=0, **FILTERS[case])
    assert sweep.sorted_pieces(con, list(EVENT_SCHEMA.names), filters) is not None
    native = _written(con, True, monkeypatch, tmp_path, filters)
    assert native == _written(con, False, monkeypatch, tmp_path, filters)
    assert (native.count(b"\n") > 0) == (case != "none")


def test_a_decision_not_in_ascii_is_left_to_duckdb(tmp_path) -> None:
    """DuckDB's lower() of non-ASCII text is its own: with --decision such events leave
    the selection to the slices."""
    events = _events(7, 50)
    events[3]["decision"] = "DÉNY"
    con = _connection(tmp_path, events, 1, 9)
    columns = list(EVENT_SCHEMA.names)
    assert sweep.sorted_pieces(con, columns, Filters.build(limit=0, decision="deny")) is None
    assert sweep.sorted_pieces(con, columns, Filters.build(limit=0, zone="a")) is not None


def test_a_view_whose_rows_are_not_the_files_rows_is_not_swept(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row of the events view is counted against the files' rows (the view's text
    names the files alone, yet a condition may drop rows): fewer, and the slices print."""
    events = _events(8, 60)
    con = _connection(tmp_path, events, 1, 8)
    sql = con.sql("SELECT sql FROM duckdb_views() WHERE view_name = 'events'").fetchall()[0][0]
    con.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW").rstrip(";")
                + " WHERE source_line > 1")
    assert sweep.parquet_files(con) == [str(tmp_path / "part-0.parquet")]
    assert sweep.sorted_pieces(con, list(EVENT_SCHEMA.names)) is None
    native = _written(con, True, monkeypatch, tmp_path)
    assert native == _written(con, False, monkeypatch, tmp_path)
    assert native.count(b"\n") == sum(event["source_line"] > 1 for event in events)


def test_the_sweeps_thread_hands_over_its_error_and_stops_with_its_caller() -> None:
    """``bulk._ahead``: the pieces in order; an error of the sweep is raised to the caller;
    a caller that stops (a closed pipe) stops the thread, the sweep closed behind it."""
    import threading

    closed = []

    def pieces(count: int, fail: bool):
        try:
            yield from range(count)
            if fail:
                raise OSError("disk gone")
        finally:
            closed.append(count)

    assert list(bulk._ahead(pieces(5, False))) == [0, 1, 2, 3, 4]
    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for piece in bulk._ahead(pieces(3, True)):
            seen.append(piece)
    assert seen == [0, 1, 2]
    ahead = bulk._ahead(pieces(10**9, False))
    assert next(ahead) == 0
    ahead.close()
    assert closed == [5, 3, 10**9]
    assert not [thread for thread in threading.enumerate()
                if thread.name == "tail-json-sweep"]


def test_a_column_of_mostly_distinct_values_is_read_dense(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dictionary-encoded column whose values nearly all differ (request_id) is read as
    plain strings, one of repeating values as an Arrow dictionary; the lines are the
    same."""
    events = _events(9, 200)
    for number, event in enumerate(events):
        event["request_id"] = f"req-{number:08d}-{'x' * 12}"
    con = _connection(tmp_path, events, 1, 50)
    path = str(tmp_path / "part-0.parquet")
    chunks = {chunk.path_in_schema: chunk for chunk in
              (pq.ParquetFile(path).metadata.row_group(0).column(index)
               for index in range(len(EVENT_SCHEMA.names)))}
    assert any("DICTIONARY" in encoding for encoding in chunks["request_id"].encodings)
    read_as_dictionary = sweep._dictionary_columns(path, list(EVENT_SCHEMA.names))
    assert "request_id" not in read_as_dictionary
    assert {"zone_id", "decision", "event_type"} <= set(read_as_dictionary)
    native = _written(con, True, monkeypatch, tmp_path)
    assert native == _written(con, False, monkeypatch, tmp_path)


def test_times_before_a_moment_are_counted_by_a_binary_search() -> None:
    """``_before``: how many sorted times lie below a moment, in a sliced array too (its
    offset) and an empty one, as comparing every time counts them."""
    import pyarrow.compute as pc

    times = pa.array([sweep._FIRST, -5, 0, 0, 3, 9, 9, 12], pa.int64())
    for array in (times, times.slice(2, 5), times.slice(3, 0)):
        for moment in (sweep._FIRST, -6, 0, 1, 9, 10, 13, sweep._LAST):
            expected = pc.sum(pc.less(array, pa.scalar(moment, pa.int64()))).as_py() or 0
            assert sweep._before(array, moment) == expected


def test_a_time_outside_the_kernels_years_leaves_the_sweep(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep is taken without counting the times outside the years the kernel writes
    (DuckDB read every time for it): the row groups' statistics say there is none. A row
    group whose statistics reach past 9999 (or a filter's rows in one) leaves the sweep,
    and DuckDB writes the lines."""
    events = _events(10, 80)
    con = _connection(tmp_path, events, 1, 16)
    path = tmp_path / "part-0.parquet"
    table = pq.read_table(path)
    columns = list(EVENT_SCHEMA.names)

    def rewritten(micros: int | None) -> None:
        times = table.column("occurred_at").cast(pa.int64()).to_pylist()
        if micros is not None:
            times[40] = micros
        pq.write_table(table.set_column(
            table.schema.get_field_index("occurred_at"), "occurred_at",
            pa.array(times, pa.int64()).cast(table.schema.field("occurred_at").type)),
            path, row_group_size=16)

    rewritten(None)
    assert sweep.sorted_pieces(con, columns) is not None
    rewritten(native_lines.TIME_RANGE[1] + 86_400_000_000)  # 10000-01-02
    assert sweep.sorted_pieces(con, columns) is None
    zone = table.column("zone_id")[40].as_py()
    if zone is not None:
        assert sweep.sorted_pieces(con, columns, Filters.build(limit=0, zone=zone)) is None
    native = _written(con, True, monkeypatch, tmp_path)
    assert native == _written(con, False, monkeypatch, tmp_path)
    assert b'"10000-01-02T00:00:00.000000Z"' in native
