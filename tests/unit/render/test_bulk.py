"""render/bulk.py and records.json_line_sql: the lines DuckDB writes are byte for byte the
lines Python wrote (every shape, hostile values), in the same order, streamed."""

from __future__ import annotations

import datetime as dt
import io
import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.paths import DATA, FIXTURE_EXPORT, VECTOR_EXPORT, VECTORS

import caracal_forensics as cf
from caracal_forensics.filters import ORDER_ASC, ORDER_COLUMNS, Filters, select
from caracal_forensics.model import EVENT_SCHEMA, JSONB_FIELDS, TEXT_FIELDS
from caracal_forensics.render.bulk import ordered_batches, query_select, write_query_lines
from caracal_forensics.render.jsonl import write_arrow_lines
from caracal_forensics.render.query import Query
from caracal_forensics.render.records import (
    EVENT_COLUMNS,
    OCCURRED_AT_SQL,
    OCCURRED_AT_TEXT,
    json_line_sql,
    json_lines,
    json_string_sql,
    json_text_columns_sql,
)

#: Every shape of the vectors and of the bundled fixtures.
SOURCES = {
    **{f"vectors/{p.name}": p for p in sorted(VECTOR_EXPORT.iterdir())
       if p.name not in ("key.hex", "alerts.csv")},
    **{f"fixtures/{p.name}": p for p in sorted(FIXTURE_EXPORT.iterdir())
       if not p.name.startswith("alerts")},
}


def _old_lines(snap: cf.Snapshot, filters: Filters) -> list[str]:
    """What tail --json printed before: the selection, then json_lines in Python."""
    table = select(snap.duckdb, filters, columns=EVENT_COLUMNS,
                   extra=(f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",))
    return [line + "\n" for line in json_lines(table)]


def _new_lines(snap: cf.Snapshot, filters: Filters, bucket_rows: int = 250_000,
               slice_bytes: int = 256 << 20) -> list[str]:
    batches = ordered_batches(snap.duckdb, filters, f"{json_line_sql(prepared=True)} AS line",
                              relation=f"(SELECT *, {json_text_columns_sql()} FROM "
                              "unique_events)", bucket_rows=bucket_rows,
                              slice_bytes=slice_bytes)
    return [line for batch in batches for line in batch.column(0).to_pylist()]


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_shape_prints_the_same_bytes_as_the_python_lines(name: str) -> None:
    snap = cf.open(str(SOURCES[name]))
    for filters in (Filters.build(limit=0), Filters.build(limit=7),
                    Filters.build(limit=0, decision="deny")):
        old = _old_lines(snap, filters)
        assert old
        assert _new_lines(snap, filters) == old
        # sorted in slices of a few events, the order is the same
        assert _new_lines(snap, filters, bucket_rows=17, slice_bytes=20_000) == old


def test_order_keys_are_those_of_the_filters() -> None:
    assert ORDER_ASC == ", ".join(f"{name} ASC NULLS FIRST" for name in ORDER_COLUMNS)


def _hostile_table(texts: list[str | None], jsonb: list[str | None]) -> pa.Table:
    rows = []
    for index, text in enumerate(texts):
        row: dict = {name: None for name in EVENT_SCHEMA.names}
        row.update(dict.fromkeys(TEXT_FIELDS, text))
        row["id"] = f"ev-{index}" if index % 3 else text
        row.update(dict.fromkeys(JSONB_FIELDS, jsonb[index % len(jsonb)]))
        row["occurred_at"] = (None if index % 7 == 3 else
                              dt.datetime(2026, 5, 11, 8, tzinfo=dt.timezone.utc)
                              + dt.timedelta(microseconds=index * 1001))
        row["chain_seq"] = [None, 0, -(2**63), 2**63 - 1][index % 4]
        row["absent_fields"] = [None, "chain_seq", "evaluation_status,chain_hmac,content_sha256",
                                ""][index % 4]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def _both(table: pa.Table) -> tuple[list[str], list[str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("hostile", table)
    sql = f"SELECT {json_line_sql()} AS line FROM hostile"
    ours = [row[0] for row in con.sql(sql).fetchall()]
    prepared = (f"SELECT {json_line_sql(prepared=True)} AS line FROM "
                f"(SELECT *, {json_text_columns_sql()} FROM hostile)")
    assert [row[0] for row in con.sql(prepared).fetchall()] == ours
    return ours, [line + "\n" for line in json_lines(table)]


#: jsonb text as PostgreSQL prints it: huge numbers, -0, 1e21 as stored, escapes, unicode.
JSONB_TEXTS = [None, "null", "{}", "[]", *(
    json.loads(line)["jsonb_text"]
    for line in (VECTORS / "jsonb.jsonl").read_text("utf-8").split("\n") if line
), '{"big": 123456789012345678901234567890, "neg": -0, "e": 1000000000000000000000}']

HOSTILE = [
    None, "", "plain", 'quote " and \\ backslash', "\\u000B literal, not a control",
    "".join(chr(code) for code in range(32)), "\x7f\x85\u2028\u2029\ufeff", "é日本😀",
    "\x0b\x0e\x0f\x1a\x1b\x1c\x1d\x1e\x1f", "tab\tnew\nline\r", "</script><b>x</b>",
    "1e21", "-0", "\U0010ffff",
]


def test_hostile_values_print_the_same_bytes() -> None:
    ours, theirs = _both(_hostile_table(HOSTILE, JSONB_TEXTS))
    assert ours == theirs


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.none(), _TEXT), min_size=1, max_size=12))
def test_any_text_prints_the_same_bytes(texts: list[str | None]) -> None:
    ours, theirs = _both(_hostile_table(texts, JSONB_TEXTS))
    assert ours == theirs


@settings(max_examples=100, deadline=None, derandomize=True)
@given(_TEXT)
def test_json_string_sql_is_encode_basestring(text: str) -> None:
    from json.encoder import encode_basestring

    got = duckdb.sql(f"SELECT {json_string_sql('$v')}", params={"v": text}).fetchall()
    assert got[0][0] == encode_basestring(text)


def test_write_arrow_lines_writes_the_buffers_as_they_stand() -> None:
    lines = ["a\n", "é😀\n", "", "{}\n"]
    array = pa.array(lines, pa.string())
    for column in (array, array.slice(1, 2), pa.chunked_array([array.slice(0, 1),
                                                                array.slice(1)])):
        text = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        count = write_arrow_lines([pa.record_batch([column], names=["line"])
                                   if isinstance(column, pa.Array) else column], text)
        text.flush()
        expected = column.to_pylist() if isinstance(column, pa.Array) else lines
        assert text.buffer.getvalue().decode() == "".join(expected)
        assert count == len(expected)
    plain = io.StringIO()  # a stream without a binary buffer still gets the text
    write_arrow_lines([array.cast(pa.large_string())], plain)
    assert plain.getvalue() == "".join(lines)


def test_slices_are_computed_as_they_are_read() -> None:
    """A reader that stops (``| head``) stops the work: a slice is queried only when the
    one before it has been read (what the table holds meanwhile shows in the lines)."""
    snap = cf.open(str(VECTOR_EXPORT / "db.csv"))
    con = snap.duckdb
    con.execute("CREATE TABLE copied AS SELECT * FROM unique_events")
    batches = ordered_batches(con, Filters.build(limit=0), "id || chr(10) AS line",
                              relation="copied", bucket_rows=20, slice_bytes=800)
    first = next(batches).column(0).to_pylist()
    con.cursor().execute("UPDATE copied SET id = 'changed since'")  # another handle
    rest = [line for batch in batches for line in batch.column(0).to_pylist()]
    assert 0 < len(first) <= 40 and "changed since\n" not in first
    assert len(first) + len(rest) == 240
    assert rest.count("changed since\n") >= 240 - 80



def _statements(line: str, **sizing) -> tuple[int, list[str]]:
    """How many statements ``ordered_batches`` ran for every event's ``line`` (told apart
    as the test above does: rows changed after the first batch show in later statements
    only), and the lines."""
    con = cf.open(str(VECTOR_EXPORT / "db.csv")).duckdb
    con.execute("CREATE TABLE copied AS SELECT * FROM unique_events")
    batches = ordered_batches(con, Filters.build(limit=0), f"{line} || chr(10) AS line",
                              relation="copied", bucket_rows=20, **sizing)
    first = next(batches).column(0).to_pylist()
    con.cursor().execute("UPDATE copied SET id = 'changed'")
    rest = [text for batch in batches for text in batch.column(0).to_pylist()]
    changed = [text for text in first + rest if text and "changed" in text]
    return (1 if not changed else 2), first + rest


def test_a_narrow_selection_is_sized_from_a_sample_of_its_lines() -> None:
    """``line_bytes``: the first slice is sized from what the first events print and their
    keys hold, so what fits is one statement (one scan); unmeasured, or wide, it is not."""
    narrow = {"slice_bytes": 60_000}
    assert _statements("id", **narrow)[0] == 2  # a first slice of bucket_rows, then more
    statements, lines = _statements("id", line_bytes="strlen(line)", **narrow)
    assert statements == 1 and len(lines) == 240
    wide = _statements("repeat(id, 40)", line_bytes="strlen(line)", **narrow)
    assert wide[0] == 2 and len(wide[1]) == 240
    # an event printing nothing is sorted all the same: its keys size the slice (they
    # were left out, and a query printing a few of 10M events sorted them in one slice
    # of 1.2 GB); 240 events of keys are more than one slice of 20,000 bytes
    few = "CASE WHEN decision = 'deny' AND zone_id = 'zone-beta' THEN id END"
    assert _statements(few, line_bytes="strlen(line)", slice_bytes=60_000)[0] == 1
    assert _statements(few, line_bytes="strlen(line)", slice_bytes=20_000)[0] == 2
    # a sample DuckDB refuses sizes nothing: the statement itself says why
    with pytest.raises(cf.ForensicsError, match="query failed"):
        _statements("CAST(id AS INTEGER)", line_bytes="strlen(line)", **narrow)


EXPRESSIONS = [
    *(recipe["jmespath"].replace("APP", "app-0007") for recipe in json.loads(
        (DATA / "seed_recipes.json").read_text("utf-8"))["recipes"]),
    "{policy_set_version_id: policy_set_version_id, decision: decision, "
    "determining_policies: determining_policies}",
    "metadata.latency_ms",  # decimals inside jsonb: the evaluator prints those events
    "{m: metadata, seq: chain_seq}",
    "decision == 'deny'",
    "diagnostics[0]",
    "sort_by(not_null(diagnostics, `[]`), &to_string(@))",  # not compiled: evaluator
    "diagnostics[?risk > `0.5`] && {id: id, risk: diagnostics[].risk}",  # decimals
]


@pytest.mark.parametrize("name", ["vectors/db.csv", "vectors/ocsf", "fixtures/search"])
def test_queries_print_what_the_evaluator_printed(name: str) -> None:
    snap = cf.open(str(SOURCES[name]))
    for expression in EXPRESSIONS:
        query = Query(expression)
        limits = (0, 50) if name == "vectors/db.csv" else (0,)
        for filters in [*(Filters.build(limit=limit) for limit in limits),
                        Filters.build(limit=0, decision="deny")]:
            table = select(snap.duckdb, filters, columns=EVENT_COLUMNS,
                           extra=(f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",))
            old = "".join(line + "\n" for line in query.lines(table))
            compiled = query.to_sql()
            if compiled is None:  # the CLI then runs the evaluator, as before
                continue
            guard = None if filters.limit else query.guard()  # as tail's
            # sized from a sample, its field's few texts; the selected events sorted
            # before the lines are computed (compact), and not; only the events that
            # print (or that the evaluator decides) sorted, and all
            only = f"({compiled.prints_sql}) OR ({compiled.fallback_sql})"
            for sampled, compact, sorted_only in ((False, False, None), (True, False, only),
                                                  (False, True, only), (True, True, None)):
                per_text = compiled.per_text_lets and (  # computed once each and joined
                    compiled.per_text_lets[0],
                    lambda relation, c=compiled: c.relation(relation, per_text=True))
                out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
                write_query_lines(ordered_batches(
                    snap.duckdb, filters, query_select(compiled, events=False),
                    guard=guard, bucket_rows=17, slice_bytes=5_000, wrap=compiled.relation,
                    line_bytes="strlen(line)" if sampled else None,
                    per_text=per_text if sampled else None, compact=compact,
                    sorted_only=sorted_only,
                    fallback_select=None if compiled.always_exact else
                    query_select(compiled)), query, out)
                assert out.buffer.getvalue().decode() == old, (expression, compact)


def test_few_texts_of_a_column_are_computed_once_each_and_joined() -> None:
    """``per_text``: its relation is taken when the sample holds at most
    PER_TEXT_DISTINCT texts of the column (decision: a few), not otherwise (id: every
    event its own); the lines are the same either way."""
    con = cf.open(str(VECTOR_EXPORT / "db.csv")).duckdb
    for column, few in (("decision", True), ("id", False)):
        taken: list[str] = []

        def joined(relation: str, taken: list[str] = taken) -> str:
            taken.append(relation)
            return relation

        batches = ordered_batches(con, Filters.build(limit=0), "id || chr(10) AS line",
                                  bucket_rows=20, slice_bytes=60_000,
                                  line_bytes="strlen(line)", per_text=(column, joined))
        lines = [line for batch in batches for line in batch.column(0).to_pylist()]
        assert len(lines) == 240 and bool(taken) is few, column
