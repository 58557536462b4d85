"""render/records.py: rendering long events a few at a time gives the same lines."""

from __future__ import annotations

import pyarrow as pa
from support.paths import VECTOR_EXPORT

import caracal_forensics as cf
from caracal_forensics.render.records import (
    EVENT_COLUMNS,
    OCCURRED_AT_SQL,
    OCCURRED_AT_TEXT,
    byte_slices,
    json_lines,
)


def _events(pad: int = 0) -> pa.Table:
    """The vectors' 240 events as tail selects them; with ``pad``, every request id
    ``pad`` characters long (events as long as the maximum line allows)."""
    snap = cf.open(str(VECTOR_EXPORT / "db.csv"))
    table = snap.duckdb.sql(
        f"SELECT {', '.join(EVENT_COLUMNS)}, {OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT} "
        "FROM events ORDER BY zone_id, chain_seq"
    ).to_arrow_table()
    if pad:
        index = table.schema.get_field_index("request_id")
        table = table.set_column(index, "request_id",
                                 pa.array(["r" * pad] * table.num_rows, pa.string()))
    return table


def test_real_events_are_rendered_in_one_piece() -> None:
    table = _events()
    assert [part.num_rows for part in byte_slices(table, max_bytes=1024)] == [table.num_rows]


def test_long_events_are_rendered_a_few_at_a_time_with_the_same_lines() -> None:
    table = _events(100_000)  # 240 rows of ~100 KB: 24 MB
    parts = list(byte_slices(table, max_bytes=1 << 20))
    assert len(parts) > 1 and sum(p.num_rows for p in parts) == table.num_rows
    assert all(p.nbytes <= 2 << 20 for p in parts)
    assert [line for p in parts for line in json_lines(p)] == json_lines(table)


def test_occurred_at_text_is_that_of_the_time_zone_conversion() -> None:
    """OCCURRED_AT_SQL formats the UTC instant without a time zone conversion per event:
    the same text as ``strftime(occurred_at AT TIME ZONE 'UTC', ...)`` for every time
    DuckDB holds (BC years, years past 9999, the ends of its range, the infinities,
    NULL), and Python's for years 1-9999."""
    import datetime as dt
    import random

    import duckdb

    from caracal_forensics.render.records import OCCURRED_AT_SQL

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    low, high = con.sql("SELECT epoch_us(TIMESTAMPTZ '290308-12-22 (BC) 00:00:00+00'), "
                        "epoch_us(TIMESTAMPTZ '294247-01-10 04:00:54.775806+00')").fetchall()[0]
    rng = random.Random(7)
    micros = [low, high, 0, -1, 1, -62135596800000000, -62135596800000001,
              253402300799999999, 253402300800000000, *(rng.randint(low, high)
                                                        for _ in range(2000))]
    con.execute("CREATE TABLE t (occurred_at TIMESTAMPTZ)")
    con.executemany("INSERT INTO t VALUES (make_timestamptz(?::BIGINT))", [[m] for m in micros])
    con.execute("INSERT INTO t VALUES ('infinity'), ('-infinity'), (NULL)")
    rows = con.sql(f"SELECT epoch_us(occurred_at), {OCCURRED_AT_SQL}, strftime(occurred_at AT "
                   "TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') FROM t").fetchall()
    assert len(rows) == len(micros) + 3
    for at, text, converted in rows:
        assert text == converted, at
        if at is not None and -62135596800000000 <= at < 253402300800000000:
            moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=at)
            assert text == f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.%fZ")
