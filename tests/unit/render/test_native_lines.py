"""The C kernel's ``tail --json`` lines (``render/_lines.c``) against the two references:
``records.json_lines`` (Python) and ``records.json_line_sql`` (DuckDB), byte for byte, for
generated events (control characters, quotes, non-ASCII, NULL in every field, absent
optional fields, times at the ends of the years the kernel writes), Arrow arrays with
offsets, dictionary-encoded and in several batches, rows in any order."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caracal_forensics.model import ABSENT_FIELD, EVENT_SCHEMA
from caracal_forensics.render import native_lines
from caracal_forensics.render.records import (
    JSON_FIELDS,
    OPTIONAL_FIELDS,
    TEXT_RECORD_FIELDS,
    json_line_sql,
    json_lines,
)

pytestmark = pytest.mark.skipif(native_lines._native is None, reason="C kernel not built")

UTC = dt.timezone.utc
#: What text fields are made of: every character the escaping treats apart, and others.
_ALPHABET = st.one_of(
    st.sampled_from(['"', "\\", "\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r",
                     "\x1b", "\x1f", " ", "\x7f", "\x80", "é", "\u2028", "€", "😀", "𝄞",
                     "a", "Z", "0", "/", "<", "'"]),
    st.characters(codec="utf-8"),
)
_TEXT = st.one_of(st.none(), st.just(""), st.text(_ALPHABET, max_size=40))
#: Stored jsonb text, spliced as it is: any spacing, nesting, number literals.
_JSON = st.one_of(
    st.none(),
    st.sampled_from(['{}', '[]', '{"a" : 1}', '{ "a":[1 ,2.50, null]}', '  [ true ]  ',
                     '{"k": "v\\u0000\\"q"}', '12.50', '"é\\n"', '{"deep": {"x": [[[]]]}}']),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(_ALPHABET)),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(_ALPHABET, max_size=5), inner, max_size=3),
                 max_leaves=6).map(lambda value: json.dumps(value, ensure_ascii=False)),
)
_LOW, _HIGH = dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999,
                                                          tzinfo=UTC)
_TIME = st.one_of(
    st.none(),
    st.sampled_from([_LOW, _HIGH, dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                     dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(999, 12, 31, tzinfo=UTC),
                     dt.datetime(2000, 2, 29, 12, 0, 0, 1, tzinfo=UTC),
                     dt.datetime(1900, 3, 1, tzinfo=UTC)]),
    st.datetimes(min_value=_LOW.replace(tzinfo=None), max_value=_HIGH.replace(tzinfo=None),
                 timezones=st.just(UTC)),
)
_SEQ = st.one_of(st.none(), st.sampled_from([0, -1, 2**63 - 1, -(2**63)]),
                 st.integers(-(2**63), 2**63 - 1))
_ABSENT = st.one_of(
    st.none(), st.just(""),
    st.lists(st.sampled_from([*sorted(OPTIONAL_FIELDS), "chain", "seq", "other", ""]),
             max_size=5).map(",".join),
)


@st.composite
def _events(draw) -> dict:
    event = {name: draw(_TEXT) for name in TEXT_RECORD_FIELDS}
    event.update({column: draw(_JSON) for column in JSON_FIELDS.values()})
    event.update(occurred_at=draw(_TIME), chain_seq=draw(_SEQ), source_line=draw(_SEQ))
    event[ABSENT_FIELD] = draw(_ABSENT)
    return event


def _table(events: list[dict]) -> pa.Table:
    columns = {}
    for field in EVENT_SCHEMA:
        columns[field.name] = pa.array([event.get(field.name) for event in events],
                                       field.type)
    return pa.table(columns, schema=EVENT_SCHEMA)


def _kernel_lines(batches: list[pa.RecordBatch], order: list[int] | None) -> bytes:
    table = native_lines.LineTable(batches)
    rows = table.rows if order is None else len(order)
    indices = None if order is None else native_lines.order_buffer(pa.array(order, pa.int64()))
    # a small buffer: lines are cut over several calls, a long one grows it
    return b"".join(native_lines.render_all(table, indices, rows, bytearray(64)))


def _sql_lines(table: pa.Table) -> list[bytes]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    numbered = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    con.register("events_arrow", numbered)
    rows = con.sql(f"SELECT {json_line_sql()} FROM events_arrow ORDER BY __row").fetchall()
    return [row[0].encode("utf-8") for row in rows]


def _python_lines(table: pa.Table) -> list[bytes]:
    return [(line + "\n").encode("utf-8") for line in json_lines(table)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_events(), min_size=1, max_size=12), data=st.data())
def test_kernel_lines_are_the_sql_and_python_lines(events: list[dict], data) -> None:
    """Any events, cut into batches at any offsets, in any order: the kernel's bytes are
    DuckDB's (json_line_sql) and Python's (json_lines), line for line."""
    table = _table(events)
    expected = _sql_lines(table)
    # Python's reference formats occurred_at with Arrow, which writes years before 1000
    # without their zeros: compared where both write four digits
    four_digits = all(event["occurred_at"] is None or event["occurred_at"].year >= 1000
                      for event in events)
    if four_digits:
        assert _python_lines(table) == expected
    # a table with a head row cut off (array offsets), in batches of any sizes
    padded = pa.concat_tables([_table(events[:1]), table]).slice(1)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=3)))
    bounds = [0, *cuts, len(events)]
    batches = [batch for start, end in zip(bounds, bounds[1:], strict=False)
               for batch in padded.slice(start, end - start).to_batches()]
    if not batches:
        batches = padded.to_batches()
    assert _kernel_lines(batches, None) == b"".join(expected)
    order = data.draw(st.permutations(range(len(events))))
    assert _kernel_lines(batches, list(order)) == b"".join(expected[row] for row in order)
    # text and jsonb columns dictionary-encoded (as Parquet's are read), sliced too
    encoded = padded
    for position, kind in enumerate(padded.schema.types):
        if pa.types.is_string(kind) and data.draw(st.booleans()):
            encoded = encoded.set_column(position, padded.schema.names[position],
                                         padded.column(position).dictionary_encode())
    encoded = pa.concat_tables([encoded.slice(0, 1), encoded]).slice(1)  # index offsets
    assert _kernel_lines(encoded.to_batches(), list(order)) == \
        b"".join(expected[row] for row in order)


def test_missing_columns_print_null_or_leave_the_field_out() -> None:
    """A table without some columns: a missing optional field is left out, any other is
    null, as json_line_sql over the same columns writes it."""
    table = _table([{"id": "e-1", "chain_seq": 7, "occurred_at": _LOW}]).drop_columns(
        ["chain_hmac", "decision", ABSENT_FIELD])
    con = duckdb.connect()
    con.register("t", table)
    expected = con.sql(f"SELECT {json_line_sql(table.schema.names)} FROM t").fetchall()[0][0]
    assert _kernel_lines(table.to_batches(), None) == expected.encode()
    assert b'"chain_hmac"' not in expected.encode() and b'"decision" : null' in \
        expected.encode()


def test_times_outside_the_kernels_years_are_refused() -> None:
    """A time before year 1 or from year 10000 on is not written (the caller leaves such a
    selection to DuckDB: ``bulk._OUTSIDE_TIMES``); the kernel raises rather than guess."""
    kind = EVENT_SCHEMA.field("occurred_at").type
    for micros in (native_lines.TIME_RANGE[0] - 1, native_lines.TIME_RANGE[1]):
        table = _table([{"id": "e"}]).set_column(
            EVENT_SCHEMA.get_field_index("occurred_at"), "occurred_at",
            pa.array([micros], pa.int64()).cast(kind))
        with pytest.raises(ValueError, match="outside the years"):
            _kernel_lines(table.to_batches(), None)
    edges = _table([{"occurred_at": _LOW}, {"occurred_at": _HIGH}])
    assert _kernel_lines(edges.to_batches(), None) == b"".join(_sql_lines(edges))


def test_bad_buffers_and_indices_are_refused() -> None:
    """Indices past the rows, or positions past the indices, raise (never read memory
    outside the buffers)."""
    table = native_lines.LineTable(_table([{"id": "a"}, {"id": "b"}]).to_batches())
    out = bytearray(1024)
    with pytest.raises(ValueError, match="row index"):
        table.render(native_lines.order_buffer(pa.array([0, 2], pa.int64())), 0, 2, out)
    with pytest.raises(ValueError, match="positions"):
        table.render(None, 0, 3, out)
    assert table.render(None, 0, 2, bytearray(8)) == (0, -(table.render(None, 0, 1, out)[1]
                                                           + 16))


def _connection(events: list[dict]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events_arrow", _table(events))
    con.execute("CREATE TABLE ev AS SELECT * FROM events_arrow")
    return con


def _written(con, filters, native: bool, monkeypatch: pytest.MonkeyPatch, tmp_path) -> bytes:
    from caracal_forensics.render import bulk

    monkeypatch.setattr(native_lines, "AVAILABLE", native)
    path = tmp_path / f"out-{native}"
    with open(path, "w", encoding="utf-8") as out:  # a real file: the kernel's os.write
        bulk.write_json_lines(con, filters, out, relation="ev")
    return path.read_bytes()


@pytest.mark.parametrize("limit", [0, 3])
def test_write_json_lines_with_and_without_the_kernel(limit: int, tmp_path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``bulk.write_json_lines``: the same bytes from the kernel and from DuckDB's lines,
    oldest first, the newest ``limit``; also when a time lies outside the kernel's years
    (then DuckDB writes every line)."""
    from caracal_forensics.filters import Filters

    events = [{"id": f"e-{n}", "zone_id": "z", "decision": "allow", "chain_seq": n,
               "occurred_at": dt.datetime(2026, 5, 11, 8, n % 4, tzinfo=UTC)} for n in range(9)]
    events[4]["occurred_at"] = None
    events[5]["id"] = 'quote " and \x01'
    for extra in ([], [{"id": "late", "occurred_at": dt.datetime(9999, 12, 31, tzinfo=UTC)}]):
        con = _connection(events + extra)
        if extra:  # a year past 9999 (DuckDB takes it, the kernel does not write it)
            con.execute("UPDATE ev SET occurred_at = occurred_at + INTERVAL 2 DAY "
                        "WHERE id = 'late'")
        filters = Filters.build(limit=limit)
        native = _written(con, filters, True, monkeypatch, tmp_path)
        assert native == _written(con, filters, False, monkeypatch, tmp_path)
        assert native.count(b"\n") == (limit or len(events) + len(extra))
        if extra and limit:
            assert b'"10000-01-02T00:00:00.000000Z"' in native


def _tail_events() -> list[dict]:
    """Values of every length up to 40, with a character to escape at each place of their
    last 16 bytes (or none), text and jsonb."""
    specials = ['"', "\\", "\n", "\x01", "\x1f", "é"]
    events = []
    for length in range(41):
        for place in [None, *range(max(0, length - 16), length)]:
            text = ["a"] * length
            if place is not None:
                text[place] = specials[(length + place) % len(specials)]
            value = "".join(text)
            events.append({"id": value, "decision": value[::-1], "zone_id": value[:7],
                           "chain_seq": length, "metadata_json": json.dumps(value),
                           "diagnostics_json": "[" + "1," * (length // 2) + "1]"})
    return events


def test_value_tails_copied_sixteen_bytes_at_once_are_the_references() -> None:
    """A value's last bytes (and a short value whole) are copied 16 at once when its
    buffer holds 16 bytes from there, a byte at a time at the buffer's very end: every
    length, an escape at every place of the last block, the value inside its buffer and
    at its end (a table per row), plain and dictionary-encoded, in any order."""
    events = _tail_events()
    table = _table(events)
    expected = _sql_lines(table)
    order = list(range(len(events)))[::-3] + list(range(len(events)))[1::3]
    order += [row for row in range(len(events)) if row not in set(order)]
    assert _kernel_lines(table.to_batches(), order) == b"".join(expected[row] for row in order)
    own = [_table([event]).to_batches()[0] for event in events]  # each at its buffer's end
    assert _kernel_lines(own, None) == b"".join(expected)
    encoded = [pa.RecordBatch.from_arrays(
        [column.dictionary_encode() if pa.types.is_string(column.type) else column
         for column in batch.columns], schema=None, names=batch.schema.names)
        for batch in own]
    assert _kernel_lines(encoded, order) == b"".join(expected[row] for row in order)


def test_a_prefix_longer_than_the_padded_copy_is_written_whole() -> None:
    """Prefixes of up to 32 bytes are copied 32 bytes at once from a padded copy; a longer
    one (no record field has one, the Table takes any) is copied as it is."""
    values = pa.array(["v", 'q"'])
    _, offsets, data = values.buffers()
    for prefix in (b'"' + b"k" * 29 + b'": ', b'"' + b"k" * 30 + b'": ', b'"' + b"k" * 60 + b'": '):
        table = native_lines._native.Table(
            2, native_lines.typed_array("q", [0, 2]),
            [(0, False, prefix, b"k", [(None, offsets, data, 0, False)])], None)
        out = bytearray(1024)
        position, written = table.render(None, 0, 2, out)
        assert (position, bytes(out[:written])) == (
            2, b"{" + prefix + b'"v"}\n{' + prefix + b'"q\\""}\n')


def _repeating_events(count: int) -> list[dict]:
    """Events whose text and jsonb values come from a few (each repeated many times, as
    a Parquet dictionary's are): escapes, non-ASCII, "", NULL, optional fields absent."""
    import random

    rng = random.Random(11)
    texts = [None, "", "allow", 'q"\\', "tab\there", "\x01\x1f", "é€😀", "z" * 40,
             "a" * 15 + "\n"]
    jsons = [None, "", "[]", '{"k" : "v\\u0000"}', '{"a": [1, 2.50]}', "1" * 33]
    absent = [None, "", "evaluation_status", "chain_hmac,content_sha256,chain_seq"]
    return [{**{name: rng.choice(texts) for name in TEXT_RECORD_FIELDS},
             **{column: rng.choice(jsons) for column in JSON_FIELDS.values()},
             "chain_seq": number, ABSENT_FIELD: rng.choice(absent),
             "occurred_at": _LOW + dt.timedelta(seconds=number)} for number in range(count)]


def test_a_dictionary_of_few_values_written_from_its_fields_rendered_once() -> None:
    """Dictionary chunks whose values repeat (16 rows a value or more) are rendered once
    per Table, each row's field then copied: the same bytes as rendering row by row (a
    dictionary of many values, or plain strings), "" of a jsonb column read from the
    files still null, an index outside the dictionary still "" (never read outside)."""
    events = _repeating_events(400)
    plain = _table(events)
    nullified = _table([{**event, **{column: event[column] or None
                                     for column in JSON_FIELDS.values()}} for event in events])
    expected = _sql_lines(nullified)
    encoded = plain
    for position, kind in enumerate(plain.schema.types):
        if pa.types.is_string(kind) and plain.schema.names[position] != ABSENT_FIELD:
            encoded = encoded.set_column(position, plain.schema.names[position],
                                         plain.column(position).dictionary_encode())
    encoded = pa.concat_tables([encoded.slice(0, 1), encoded]).slice(1)  # index offsets
    order = list(range(len(events)))[::-1]
    for batches in (encoded.to_batches(), encoded.to_batches(max_chunksize=37)):
        table = native_lines.LineTable(batches, empty_json_is_null=True)
        indices = native_lines.order_buffer(pa.array(order, pa.int64()))
        assert b"".join(native_lines.render_all(table, indices, len(order), bytearray(64))) \
            == b"".join(expected[row] for row in order)
    # an index outside the dictionary: the field is written as "" would be
    column = encoded.column("decision").combine_chunks()
    indices = column.indices.to_pylist()
    indices[5] = len(column.dictionary) + 3
    broken = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), column.dictionary,
                                            safe=False)
    with_broken = encoded.set_column(encoded.schema.get_field_index("decision"), "decision",
                                     broken)
    events[5]["decision"] = ""

    def lines(batches: list[pa.RecordBatch]) -> bytes:
        table = native_lines.LineTable(batches, empty_json_is_null=True)
        return b"".join(native_lines.render_all(table, None, table.rows, bytearray(64)))

    assert lines(with_broken.to_batches()) == lines(_table(events).to_batches())


def test_times_and_integers_at_every_digit_and_day_boundary() -> None:
    """chain_seq at each power of ten and beside it (two digits are written at a time),
    and times either side of midnights, in order and back and forth (a day's date is
    kept from the row before): DuckDB's lines."""
    numbers = [0, 1, -1, 2**63 - 1, -(2**63)]
    for power in range(19):
        numbers += [10**power - 1, 10**power, 10**power + 1, -(10**power)]
    midnight = dt.datetime(2026, 5, 11, tzinfo=UTC)
    moments = [midnight + dt.timedelta(days=day, microseconds=delta)
               for day in (-1, 0, 1, 365) for delta in (-1, 0, 1, 999_999, 86_399_999_999)]
    moments += [_LOW, _HIGH, dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    events = [{"id": f"e{row}", "chain_seq": numbers[row % len(numbers)],
               "occurred_at": moments[row % len(moments)]}
              for row in range(max(len(numbers), len(moments)) * 2)]
    table = _table(events)
    expected = _sql_lines(table)
    back_and_forth = [row for pair in zip(range(len(events)), reversed(range(len(events))),
                                          strict=True) for row in pair]
    for order in (None, back_and_forth):
        rows = range(len(events)) if order is None else order
        assert _kernel_lines(table.to_batches(), order) == b"".join(expected[row]
                                                                     for row in rows)
