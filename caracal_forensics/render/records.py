"""The ``tail --json`` record of an event: the seed's fields, with jsonb spliced in verbatim.

A record has, in this order: id, zone_id, event_type, request_id, decision, policy_set_id,
policy_set_version_id, manifest_sha, evaluation_status, determining_policies, diagnostics,
metadata, occurred_at, chain_seq, chain_hmac, content_sha256. evaluation_status,
chain_seq, chain_hmac and content_sha256 appear only when the row's source carries them
(model.ABSENT_FIELD lists what a source lacks); every other field is always there,
``null`` when NULL.

The three nested fields are the stored jsonb text itself (it is valid JSON), so number
literals stay exactly as PostgreSQL keeps them (``12.50`` stays ``12.50``): the line is
built by splicing text, never by a float round trip. Lines are laid out like the seed's
``caracal audit tail --json`` output (``{"id" : "ev-1", ...}``), so reading a cli.jsonl
export and printing it again reproduces its lines byte for byte. occurred_at always has
six fractional digits and a ``Z``, also for OCSF rows that only kept milliseconds.

For Python consumers (JMESPath, ``explain --json``, the notebook) :func:`records` gives
dicts whose nested values are parsed with :func:`parse_json`, which keeps each decimal
literal alongside its float value (:class:`LiteralFloat`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any

import pyarrow as pa

from ..errors import InputError
from ..model import ABSENT_FIELD, JSONB_FIELDS, TEXT_FIELDS, source_line_unit

#: The nested (jsonb) record fields: the CLI drops the column's ``_json`` suffix.
JSON_FIELDS: dict[str, str] = {name.removesuffix("_json"): name for name in JSONB_FIELDS}

#: The record's fields, in output order.
RECORD_FIELDS: tuple[str, ...] = (
    *TEXT_FIELDS,
    *JSON_FIELDS,
    "occurred_at",
    "chain_seq",
    "chain_hmac",
    "content_sha256",
)

#: Fields present only when the row's source carries them.
OPTIONAL_FIELDS = frozenset({"evaluation_status", "chain_seq", "chain_hmac", "content_sha256"})

#: Record field -> event column (model.EVENT_SCHEMA) it comes from.
SOURCE_COLUMN: dict[str, str] = {name: JSON_FIELDS.get(name, name) for name in RECORD_FIELDS}

_KIND = {name: "text" for name in RECORD_FIELDS}
_KIND.update(dict.fromkeys(JSON_FIELDS, "json"), chain_seq="int", occurred_at="time")

#: The record fields holding plain text, as stored.
TEXT_RECORD_FIELDS = frozenset(name for name, kind in _KIND.items() if kind == "text")

#: Optional column with occurred_at already formatted (DuckDB formats faster than Arrow).
OCCURRED_AT_TEXT = "occurred_at_text"
#: The DuckDB expression that fills :data:`OCCURRED_AT_TEXT`: the UTC instant's
#: microseconds as a TIMESTAMP (the same text as ``AT TIME ZONE 'UTC'``, BC years alike,
#: without a time zone conversion per event: 40% less of 1M events), or, for the
#: infinities it has no TIMESTAMP for, the conversion.
OCCURRED_AT_SQL = ("coalesce(strftime(make_timestamp(epoch_us(occurred_at)), "
                   "'%Y-%m-%dT%H:%M:%S.%fZ'), strftime(occurred_at AT TIME ZONE 'UTC', "
                   "'%Y-%m-%dT%H:%M:%S.%fZ'))")

#: Event columns a record is built from (plus ABSENT_FIELD to know what a source lacks).
EVENT_COLUMNS: tuple[str, ...] = (*SOURCE_COLUMN.values(), ABSENT_FIELD)

_PREFIX = {name: f'"{name}" : ' for name in RECORD_FIELDS}


class LiteralFloat(float):
    """A JSON decimal number: behaves as its float value, remembers its literal text.

    JMESPath comparisons and arithmetic see a float; :func:`caracal_forensics.render.jsonl.dumps`
    prints ``literal`` unchanged, so ``12.50`` or ``0.000000001`` survive a query.
    """

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str) -> LiteralFloat:
        value = super().__new__(cls, literal)
        value.literal = literal
        return value

    def __repr__(self) -> str:
        return self.literal

    __str__ = __repr__


# jmespath type-checks function arguments by class name: it must read "float".
LiteralFloat.__name__ = "float"


class NestedTooDeeply(ValueError):
    """JSON nested deeper than Python's parser and printer follow (about
    ``sys.getrecursionlimit()`` levels; PostgreSQL's jsonb takes far deeper)."""


def parse_json(text: str | None) -> Any:
    """Parse JSON (e.g. stored jsonb text), keeping decimal literals; None stays None.
    Raises NestedTooDeeply (a ValueError) for JSON nested too deeply to parse here."""
    if text is None:
        return None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise NestedTooDeeply("JSON nested too deeply") from None


def too_deep(table: pa.Table | pa.RecordBatch, row: int, what: str) -> InputError:
    """The error for an event of ``table`` (row ``row``) whose JSON (``what``) nests too
    deeply to parse, query or show here: names the event's file and line (or row), and
    what prints it anyway (``--json`` splices the stored text, see ``json_lines``)."""
    import sys

    return _event_error(table, row, (
        f"{what} is nested too deeply to parse or show here (Python follows fewer than "
        f"{sys.getrecursionlimit()} levels); --json prints it as stored"))


def invalid_json(table: pa.Table | pa.RecordBatch, row: int, column: str,
                 error: ValueError) -> InputError:
    """The error for an event of ``table`` (row ``row``) whose jsonb field ``column``
    holds no valid JSON (a corrupt input its reader let through)."""
    problem = " ".join(str(error).split())
    return _event_error(table, row, f"{column} is not valid JSON ({problem})")


def query_failed(table: pa.Table | pa.RecordBatch, row: int, flag: str,
                 error: Exception) -> InputError:
    """The error for an event of ``table`` (row ``row``) the query cannot be evaluated on
    (a function given a value of the wrong type: ``sort_by`` over a member some element
    lacks): names the event's file and line (or row), whether or not the expression
    reads its id."""
    return _event_error(table, row, f"{flag} failed: {' '.join(str(error).split())}")


def _event_error(table: pa.Table | pa.RecordBatch, row: int, problem: str) -> InputError:
    """An InputError about one event of ``table``, naming its file and line (or row)."""
    names = table.schema.names

    def value(name: str) -> Any:
        return table.column(names.index(name))[row].as_py() if name in names else None

    line = value("source_line")
    unit = source_line_unit(value("source_shape"))
    return InputError(value("source_file") or "an input", f"event {value('id')!r}: {problem}",
                      f"{unit} {line}" if line is not None else None)


_DECODER = json.JSONDecoder(parse_float=LiteralFloat)


def rows_without_times(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """``table.to_pylist()`` without its timestamp columns, for rows that show their time
    as text (OCCURRED_AT_TEXT): converting a timestamp to a datetime makes pyarrow import
    pandas when it is installed, 0.13 s or more at a command's start."""
    keep = [field.name for field in table.schema if not pa.types.is_timestamp(field.type)]
    return table.select(keep).to_pylist()


def occurred_at_texts(table: pa.Table | pa.RecordBatch) -> list[str | None]:
    """occurred_at as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` per row."""
    if OCCURRED_AT_TEXT in table.schema.names:
        return table.column(OCCURRED_AT_TEXT).to_pylist()
    import pyarrow.compute as pc  # here: importing it takes 25 ms

    column = table.column("occurred_at")
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.cast(column, pa.timestamp(column.type.unit))  # wall time in UTC
    return pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()


def _absent_sets(table: pa.Table | pa.RecordBatch) -> list[frozenset[str]]:
    names = table.schema.names
    if ABSENT_FIELD not in names:
        return [frozenset()] * table.num_rows
    cache: dict[str | None, frozenset[str]] = {None: frozenset()}
    out = []
    for value in table.column(ABSENT_FIELD).to_pylist():
        found = cache.get(value)
        if found is None:
            found = cache[value] = frozenset(value.split(","))
        out.append(found)
    return out


def _plan(table: pa.Table | pa.RecordBatch,
          fields: frozenset[str] | None = None) -> list[tuple[str, str, list[Any]]]:
    """(record field, kind, values) for each field the table can provide (of ``fields``)."""
    names = set(table.schema.names)
    plan = []
    for field in RECORD_FIELDS:
        if fields is not None and field not in fields:
            continue
        kind = _KIND[field]
        if kind == "time":
            plan.append((field, kind, occurred_at_texts(table)))
            continue
        column = SOURCE_COLUMN[field]
        if column in names:
            plan.append((field, kind, table.column(column).to_pylist()))
        elif field not in OPTIONAL_FIELDS:
            plan.append((field, kind, [None] * table.num_rows))
    return plan


#: Rows rendered at once (``byte_slices``): what a batch's Python copies may cost.
RENDER_BYTES = 16 << 20
#: Rows longer than this on average are long events, rendered a few at a time.
LONG_ROW_BYTES = 64 << 10


def byte_slices(table: pa.Table | pa.RecordBatch, max_bytes: int = RENDER_BYTES):
    """``table`` in row slices of about ``max_bytes`` of Arrow data each: rendering a
    row makes Python copies of it (values, then the line), so events near the maximum
    line size are rendered a few at a time, not a whole batch of them at once."""
    rows, size = table.num_rows, table.nbytes
    if size <= max_bytes or rows <= 1 or size < rows * LONG_ROW_BYTES:
        yield table  # real events (~1 KB): a batch at once, as fast as before
        return
    step = max(1, rows * max_bytes // size)
    for start in range(0, rows, step):
        yield table.slice(start, step)


def json_lines(table: pa.Table | pa.RecordBatch) -> list[str]:
    """The ``tail --json`` line of each row (an event-schema table), in row order."""
    plan = _plan(table)
    absent = _absent_sets(table)
    quote = encode_basestring
    lines = []
    for row in range(table.num_rows):
        missing = absent[row]
        parts = []
        for field, kind, values in plan:
            if missing and field in missing and field in OPTIONAL_FIELDS:
                continue
            value = values[row]
            if value is None:
                text = "null"
            elif kind == "text" or kind == "time":
                text = quote(value)
            elif kind == "json":
                text = value
            else:
                text = str(value)
            parts.append(_PREFIX[field] + text)
        lines.append("{" + ", ".join(parts) + "}")
    return lines


def records(table: pa.Table | pa.RecordBatch,
            fields: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Each row's record as a dict (nested JSON parsed, decimal literals kept).
    ``fields`` limits the fields built (None: all), for a reader that names the fields
    it reads (``--query``): building and parsing the others is most of the cost."""
    plan = _plan(table, fields)
    absent = _absent_sets(table)
    out = []
    for row in range(table.num_rows):
        missing = absent[row]
        record: dict[str, Any] = {}
        for field, kind, values in plan:
            if missing and field in missing and field in OPTIONAL_FIELDS:
                continue
            value = values[row]
            try:
                record[field] = parse_json(value) if kind == "json" else value
            except NestedTooDeeply:
                raise too_deep(table, row, SOURCE_COLUMN[field]) from None
            except ValueError as error:  # json.JSONDecodeError: a corrupt field let through
                raise invalid_json(table, row, SOURCE_COLUMN[field], error) from None
        out.append(record)
    return out


# --- the same lines written by DuckDB ---------------------------------------------------

#: Control characters DuckDB's to_json writes as ``\u001B`` where Python's json writes
#: ``\u001b`` (every other character it escapes, or not, as :func:`encode_basestring`).
_UPPER_HEX_ESCAPES = "\\u00"


def json_string_sql(value: str, escaped: str | None = None) -> str:
    """SQL for SQL text ``value`` (a column or expression) written as a JSON string byte
    for byte as :func:`encode_basestring` writes it, ``null`` for NULL; ``escaped``: a
    column already holding ``CAST(to_json(value) AS VARCHAR)`` (see
    :func:`json_text_columns_sql`: DuckDB computes it once then, not twice).

    DuckDB's to_json escapes the same characters as Python (``"``, ``\\``, control
    characters; non-ASCII raw) but writes nine of the control characters' hex digits in
    capitals: a value with any ``\\u00`` escape (rare: control characters) is written
    again character by character, each escape in small letters."""
    escaped = escaped or f"CAST(to_json({value}) AS VARCHAR)"
    per_char = (
        f"concat('\"', array_to_string(list_transform(string_split({value}, ''), lambda c: "
        "CASE WHEN ord(c) < 32 THEN lower(CAST(to_json(c) AS VARCHAR))[2:-2] "
        "ELSE (CAST(to_json(c) AS VARCHAR))[2:-2] END), ''), '\"')"
    )
    return (f"CASE WHEN {value} IS NULL THEN 'null' "
            f"WHEN contains({escaped}, '{_UPPER_HEX_ESCAPES}') THEN {per_char} "
            f"ELSE {escaped} END")


#: Prefix of the columns :func:`json_text_columns_sql` adds.
_ESCAPED_PREFIX = "__json_"


def _text_columns(columns: Iterable[str]) -> list[str]:
    names = set(columns)
    return [SOURCE_COLUMN[field] for field in RECORD_FIELDS
            if _KIND[field] == "text" and SOURCE_COLUMN[field] in names]


def json_text_columns_sql(columns: Iterable[str] = EVENT_COLUMNS) -> str:
    """Select items adding each text column's to_json text, for a relation that
    :func:`json_line_sql` with ``prepared`` reads (``SELECT *, {this} FROM events``)."""
    return ", ".join(f'CAST(to_json("{column}") AS VARCHAR) AS "{_ESCAPED_PREFIX}{column}"'
                     for column in _text_columns(columns))


def json_line_sql(columns: Iterable[str] = EVENT_COLUMNS, newline: bool = True,
                  prepared: bool = False) -> str:
    """SQL for each row's ``tail --json`` line (what :func:`json_lines` gives), over a
    relation with the event columns ``columns`` (an event-schema view, e.g.
    ``unique_events``); with ``newline`` each line ends in ``\\n``, so that a batch of
    them is the output as it stands (see ``jsonl.write_arrow_lines``).

    One ``concat`` of the pieces (nested ``||`` copies the growing line at every step):
    text fields as :func:`json_string_sql`, the jsonb text spliced as stored, occurred_at
    formatted by DuckDB, optional fields left out where ``absent_fields`` names them.
    ``prepared``: the relation also has :func:`json_text_columns_sql`'s columns (a
    third faster: DuckDB evaluates a repeated expression as often as it is written)."""
    names = set(columns)
    absent = f'"{ABSENT_FIELD}"' if ABSENT_FIELD in names else None
    pieces = ["'{'"]
    for position, field in enumerate(RECORD_FIELDS):
        column = SOURCE_COLUMN[field]
        if column not in names and field in OPTIONAL_FIELDS:
            continue
        kind = _KIND[field]
        quoted = f'"{column}"'
        if column not in names:
            value = "'null'"
        elif kind == "text":
            value = json_string_sql(quoted, f'"{_ESCAPED_PREFIX}{column}"' if prepared else None)
        elif kind == "json":
            value = f"coalesce({quoted}, 'null')"
        elif kind == "time":
            # || (not concat, which reads NULL as ''): NULL stays NULL, then null
            value = f"coalesce('\"' || {OCCURRED_AT_SQL} || '\"', 'null')"
        else:
            value = f"coalesce(CAST({quoted} AS VARCHAR), 'null')"
        prefix = ("" if position == 0 else ", ") + _PREFIX[field]
        if field in OPTIONAL_FIELDS and absent is not None:
            pieces.append(f"CASE WHEN {absent} IS NOT NULL AND list_contains("
                          f"string_split({absent}, ','), '{field}') THEN '' "
                          f"ELSE concat('{prefix}', {value}) END")
        else:
            pieces += [f"'{prefix}'", value]
    pieces.append("'}\n'" if newline else "'}'")
    return f"concat({', '.join(pieces)})"
