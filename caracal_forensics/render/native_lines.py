"""The optional C kernel (``_lines.c``) writing ``tail --json`` lines from Arrow columns.

DuckDB builds a line (``records.json_line_sql``) at roughly 1M events/s on two cores and
its sort then moves every line once more; the kernel writes the same bytes straight from
the columns (as DuckDB or the Parquet reader hands them over: plain, sliced or
dictionary-encoded), in the order a sort of the keys alone gives, without the GIL. It
writes exactly what ``records.json_lines`` and ``json_line_sql`` write (tested against
both). Without it (``AVAILABLE`` is False: not built, or ``CARACAL_FORENSICS_NATIVE=0``)
``tail --json`` stays on the SQL lines.
"""

from __future__ import annotations

from array import array as typed_array
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..model import ABSENT_FIELD
from ..settings import settings
from .records import _KIND, _PREFIX, OPTIONAL_FIELDS, RECORD_FIELDS, SOURCE_COLUMN

try:
    from . import _lines as _native
except ImportError:  # not built: a source checkout without a compiler, or a pure wheel
    _native = None

AVAILABLE = _native is not None and settings().native

#: Field kinds (must match _lines.c).
_KINDS = {"text": 0, "json": 1, "time": 2, "int": 3}
_JSON_EMPTY_IS_NULL = 4
#: occurred_at the kernel writes as DuckDB does: 0001-01-01 to 9999-12-31, in microseconds
#: since 1970 (a selection with any other is left to the SQL lines: bulk._OUTSIDE_TIMES).
TIME_RANGE = (-62135596800_000_000, 253402300800_000_000)


def _string_parts(array: pa.Array) -> tuple:
    """(validity | None, offsets, data, offset, large) of a string array, or with
    (indices, their offset, dictionary length) of a dictionary of strings with int32
    indices (as Parquet's dictionary-encoded columns are read); other types are cast
    first."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        values = array.dictionary
        if (kind.index_type == pa.int32() and values.null_count == 0
                and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type))):
            _, offsets, data = values.buffers()[:3]
            validity, indices = array.indices.buffers()[:2]
            return ((validity if array.null_count else None), offsets,
                    data if data is not None else b"", values.offset,
                    pa.types.is_large_string(values.type), indices, array.indices.offset,
                    len(values))
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        array = array.cast(pa.large_string())
        kind = array.type
    validity, offsets, data = array.buffers()[:3]
    return ((validity if array.null_count else None), offsets,
            data if data is not None else b"", array.offset, pa.types.is_large_string(kind))


def _int_parts(array: pa.Array) -> tuple:
    """(validity | None, None, data, offset, False) of an int64 or timestamp[us] array."""
    if pa.types.is_timestamp(array.type):
        if array.type.unit != "us":
            array = array.cast(pa.timestamp("us", array.type.tz))
        array = array.view(pa.int64())
    elif array.type != pa.int64():
        array = array.cast(pa.int64())
    validity, data = array.buffers()[:2]
    return ((validity if array.null_count else None), None, data, array.offset, False)


def supported(schema: pa.Schema) -> bool:
    """Whether the kernel writes the lines of a table of this schema: text and jsonb
    columns as text, occurred_at a timestamp, chain_seq an integer (what
    ``unique_events`` gives; anything else stays on the SQL lines)."""
    for field in RECORD_FIELDS:
        column = SOURCE_COLUMN[field]
        if column not in schema.names:
            continue
        kind = schema.field(column).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        wanted = _KIND[field]
        if wanted in ("text", "json"):
            ok = pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
                pa.types.is_string_view(kind)
        elif wanted == "time":
            ok = pa.types.is_timestamp(kind)
        else:
            ok = pa.types.is_integer(kind)
        if not ok:
            return False
    if ABSENT_FIELD in schema.names:
        kind = schema.field(ABSENT_FIELD).type
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)
    return True


class LineTable:
    """Arrow batches of event columns (``records.EVENT_COLUMNS``, all or some) made ready
    for the kernel; :meth:`render` writes the lines of rows in a given order.
    ``empty_json_is_null``: the jsonb columns as stored in the files, where "" is what
    ``unique_events`` makes NULL (``queries._JSONB_NULLS``)."""

    def __init__(self, batches: Sequence[pa.RecordBatch], empty_json_is_null: bool = False):
        batches = [batch for batch in batches if batch.num_rows] or list(batches[:1])
        starts = [0]
        for batch in batches:
            starts.append(starts[-1] + batch.num_rows)
        self.rows = starts[-1]
        self.nbytes = sum(batch.nbytes for batch in batches)
        names = batches[0].schema.names if batches else []
        fields: list[tuple[int, bool, bytes, bytes, Any]] = []
        for position, field in enumerate(RECORD_FIELDS):
            column = SOURCE_COLUMN[field]
            kind = _KIND[field]
            prefix = (("" if position == 0 else ", ") + _PREFIX[field]).encode()
            chunks = None
            if column in names:
                parts = _int_parts if kind in ("time", "int") else _string_parts
                chunks = [parts(batch.column(column)) for batch in batches]
            code = _KINDS[kind]
            if kind == "json" and empty_json_is_null:
                code = _JSON_EMPTY_IS_NULL
            fields.append((code, field in OPTIONAL_FIELDS, prefix, field.encode(), chunks))
        absent = ([_string_parts(batch.column(ABSENT_FIELD)) for batch in batches]
                  if ABSENT_FIELD in names else None)
        # (an array.array: pyarrow converting Python ints imports pandas, see sweep._int64)
        self._table = _native.Table(self.rows, typed_array("q", starts), fields, absent)

    def render(self, indices: Any, start: int, end: int, out: Any) -> tuple[int, int]:
        """Write the lines of rows ``indices[start:end]`` (int64 buffer; None: the rows in
        their order) into ``out`` while they fit: (position after the last line written,
        bytes written); bytes is minus the room the first line needs when not even it
        fits."""
        return self._table.render(indices, start, end, out)


def order_buffer(indices: pa.Array) -> Any:
    """The int64 buffer of ``indices`` (sort_indices' uint64, or int64) from its offset."""
    if indices.type != pa.int64():
        indices = indices.view(pa.int64()) if indices.type == pa.uint64() else \
            indices.cast(pa.int64())
    data = indices.buffers()[1]
    return memoryview(data)[indices.offset * 8:(indices.offset + len(indices)) * 8]


def render_all(table: LineTable, order: Any, count: int, out: bytearray) -> list[bytes]:
    """Every line of ``order[:count]`` as pieces of bytes (for tests and small outputs)."""
    pieces, position = [], 0
    view = memoryview(out)
    while position < count:
        position, written = table.render(order, position, count, view)
        if written < 0:
            view = memoryview(bytearray(-written))
            continue
        pieces.append(bytes(view[:written]))
    return pieces


def sort_order(table: Any) -> Any:
    """The indices of ``table``'s rows in ``filters.ORDER_ASC``'s order (every key
    ascending, NULLs first), as DuckDB's ORDER BY gives them."""
    import pyarrow.compute as pc

    from ..filters import ORDER_COLUMNS

    try:
        options = pc.SortOptions([(name, "ascending", "at_start") for name in ORDER_COLUMNS])
    except (TypeError, ValueError):  # pyarrow before per-key null placement
        options = pc.SortOptions([(name, "ascending") for name in ORDER_COLUMNS],
                                 null_placement="at_start")
    return pc.sort_indices(table, options=options)
