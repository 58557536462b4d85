"""render/bulk.py around a compiled --query: the events are sorted without the columns of
the events the evaluator answers until one turns up (then with them, the slice again),
and DuckDB refusing the compiled SQL is found on the first statement, before anything
is yielded."""

from __future__ import annotations

import io

import pytest
from support.paths import VECTOR_EXPORT

import caracal_forensics as cf
from caracal_forensics.errors import ForensicsError
from caracal_forensics.filters import Filters
from caracal_forensics.render.bulk import (
    Refused,
    ordered_batches,
    query_select,
    write_query_lines,
)
from caracal_forensics.render.query import Query


@pytest.fixture(scope="module")
def snap():
    """The vectors' db.csv in the table ``copied``: a decimal inside metadata_json (which
    only the evaluator prints as stored) in every fifth event of the newer half."""
    snap = cf.open(str(VECTOR_EXPORT / "db.csv"))
    con = snap.duckdb
    con.execute("CREATE TABLE copied AS SELECT * FROM unique_events")
    con.execute("UPDATE copied SET metadata_json = '{\"risk\": 1.50}' WHERE source_line % 5 = 0 "
                "AND occurred_at > (SELECT median(occurred_at) FROM copied)")
    yield snap
    snap.duckdb.close()


def _printed(snap, expression: str, switching: bool, limit: int = 0) -> str:
    query = Query(expression)
    compiled = query.to_sql()
    assert compiled is not None and not compiled.always_exact
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    select = query_select(compiled, events=not switching)
    write_query_lines(ordered_batches(
        snap.duckdb, Filters.build(limit=limit), select, relation="copied",
        bucket_rows=17, slice_bytes=5_000, wrap=compiled.relation,
        fallback_select=query_select(compiled) if switching else None), query, out)
    out.flush()
    return out.buffer.getvalue().decode()


@pytest.mark.parametrize("limit", [0, 100])
@pytest.mark.parametrize("expression", [
    "{id: id, risk: metadata.risk}",  # the evaluator prints the decimals
    "metadata.risk && {d: decision, r: metadata.risk}",
])
def test_switching_to_the_event_columns_prints_the_same(snap, expression, limit):
    """The first event the evaluator answers is in a later slice, inside a batch: the
    events before it come from the narrow statement, the rest from the wide one."""
    switched = _printed(snap, expression, switching=True, limit=limit)
    assert switched == _printed(snap, expression, switching=False, limit=limit)
    assert ": 1.50}" in switched  # the evaluator's own text, so it did answer
    assert switched.count("\n") > 10


def test_a_statement_duckdb_refuses_is_refused_before_anything_is_read(snap):
    filters = Filters.build(limit=0)
    with pytest.raises(Refused):
        next(ordered_batches(snap.duckdb, filters, "no_such_function(id) AS line",
                             refusable=True))
    with pytest.raises(ForensicsError) as raised:  # not refusable: a plain failure
        next(ordered_batches(snap.duckdb, filters, "no_such_function(id) AS line"))
    assert not isinstance(raised.value, Refused)
    # failing while running is no refusal: the evaluator would not answer for it
    with pytest.raises(ForensicsError) as raised:
        list(ordered_batches(snap.duckdb, filters, "CAST(id AS INTEGER) AS line",
                             refusable=True))
    assert not isinstance(raised.value, Refused)


def test_little_more_than_a_slice_is_one_slice() -> None:
    """240 events with slices of 200: one statement sorts them all (a second one for 40
    events would scan and plan again), 1000 are still cut."""
    snap = cf.open(str(VECTOR_EXPORT / "db.csv"))
    con = snap.duckdb
    con.execute("CREATE TABLE copied AS SELECT * FROM unique_events")
    batches = ordered_batches(con, Filters.build(limit=0), "id || chr(10) AS line",
                              relation="copied", bucket_rows=200, slice_bytes=800)
    assert sum(batch.num_rows for batch in [next(batches)]) == 240
    assert next(batches, None) is None
    batches = ordered_batches(con, Filters.build(limit=0), "id || chr(10) AS line",
                              relation="copied", bucket_rows=150, slice_bytes=800)
    assert next(batches).num_rows < 240
