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
