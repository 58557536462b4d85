"""Turning parsed rows into record batches of the one event (or alert) schema.

Readers of row-oriented shapes (JSON lines, search pages) parse each row into a dict of
model field names; this module columnises them, converts timestamps with Arrow, and
names the offending line when a value does not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as _field

import pyarrow as pa

from ..errors import InputError
from ..model import ALERT_SCHEMA, EVENT_SCHEMA, UTC_MICROS
from ._io import max_line_bytes

#: Rows per batch of the row readers, and lines per block of the JSON lines C reader. 16,384
#: lines of a 1 KB export make 16 MB blocks whose read buffers are reused: with 65,536 the
#: buffers grew to 128 MB and were freshly mapped (and zeroed) again and again (verify of
#: 1M db.jsonl events: 0.9-1.6 s of system time and 800 MB RSS, now about 0.5 s and 290 MB).
BATCH_ROWS = 16384
#: Bytes of lines per batch at most: a batch of rows this large goes out with fewer rows,
#: so that a file of long (but accepted) lines is not held 16,384 lines at a time.
#: Real events (~1 KB) never reach it. Below a block read (32 MiB), so that a block of
#: long lines is a batch alone, not copied into one with the next (64 MiB: ingest of 500
#: events of 1.9 MiB held 150 MB more).
BATCH_BYTES = 24 << 20

_TIMESTAMP_CACHE: dict[str, int] = {}


@dataclass
class BadLines:
    """What to do with a malformed row, and how many were skipped; ``max_line``: the
    longest line (JSON document, CSV record) accepted, in bytes (``_io.max_line_bytes``)."""

    skip: bool = False
    count: int = 0
    first: str | None = None
    max_line: int = _field(default_factory=max_line_bytes)

    def handle(self, error: InputError) -> None:
        """Raise the error, or count it when skipping."""
        if not self.skip:
            raise error
        self.count += 1
        if self.first is None:
            self.first = str(error)


def count_skipped(bad: BadLines, count: int, first: str | None) -> None:
    """Add the lines a block skipped (``count``; ``first``: the first one's error) to
    ``bad``, the reader's count."""
    bad.count += count
    if bad.first is None:
        bad.first = first


def parse_timestamps(values: list[str | None], path: str, lines: list[int], field: str) -> pa.Array:
    """ISO 8601 / PostgreSQL timestamptz texts to UTC microseconds; names the bad line."""
    import pyarrow.compute as pc
    array = pa.array(values, pa.string())
    try:
        return pc.cast(array, UTC_MICROS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for value, line in zip(values, lines, strict=True):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), UTC_MICROS)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(
                path, f"{field} is not a timestamp: {value[:60]!r}", f"line {line}"
            ) from None
    raise InputError(path, f"{field}: unparseable timestamp")  # pragma: no cover


def rows_to_batches(
    rows: Iterable[dict],
    path: str,
    schema: pa.Schema = EVENT_SCHEMA,
    timestamp_fields: tuple[str, ...] = ("occurred_at", "ingested_at"),
    batch_rows: int = BATCH_ROWS,
    *,
    size_of: Callable[[dict], int] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Group dict rows (with ``source_line``) into record batches of ``schema``; with
    ``size_of`` (a row's bytes), a batch also ends once its rows reach BATCH_BYTES."""
    names = schema.names
    buffer: list[dict] = []
    size, batch_bytes = 0, BATCH_BYTES
    for row in rows:
        buffer.append(row)
        if size_of is not None:
            size += size_of(row)
        if len(buffer) >= batch_rows or size >= batch_bytes:
            yield _columnise(buffer, path, schema, names, timestamp_fields)
            buffer, size = [], 0
    if buffer:
        yield _columnise(buffer, path, schema, names, timestamp_fields)


def _columnise(
    rows: list[dict],
    path: str,
    schema: pa.Schema,
    names: list[str],
    timestamp_fields: tuple[str, ...],
) -> pa.RecordBatch:
    lines = [row["source_line"] for row in rows]
    arrays = []
    for name in names:
        column = [row.get(name) for row in rows]
        field_type = schema.field(name).type
        if name in timestamp_fields and field_type == UTC_MICROS:
            if column and isinstance(next((v for v in column if v is not None), None), int):
                arrays.append(pa.array(column, pa.int64()).cast(UTC_MICROS))
            else:
                arrays.append(parse_timestamps(column, path, lines, name))
        else:
            arrays.append(pa.array(column, field_type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


#: The times Python's datetime holds (years 1-9999) as microseconds since the epoch: the
#: range the toolkit stores (``pgsnapshot`` refuses others too). A time outside it could
#: not be shown, explained or compared.
FIRST_MICROS = -62_135_596_800_000_000
LAST_MICROS = 253_402_300_799_999_999


#: The chain_seq values a chain can hold: all of int64 but its two extremes, where a
#: chain's predecessor and successor (seq - 1, seq + 1) overflow (a bigint sequence from 1
#: never reaches them).
FIRST_SEQ = -(2**63) + 1
LAST_SEQ = 2**63 - 2


def out_of_range(times: pa.Array, per_micro: int = 1) -> pa.Array | None:
    """Which times lie outside the years 1-9999 (None if none do: one min/max over the
    column when every time is inside). ``times``: a timestamp[us], or integers of
    1/``per_micro`` microseconds since the epoch (1000: milliseconds)."""
    values = times.cast(pa.int64()) if pa.types.is_timestamp(times.type) else times
    return _outside(values, -(-FIRST_MICROS // per_micro), LAST_MICROS // per_micro)


def seq_at_the_ends(seqs: pa.Array) -> pa.Array | None:
    """Which chain_seq values are the int64 extremes (None if none are): outside
    FIRST_SEQ..LAST_SEQ."""
    return _outside(seqs, FIRST_SEQ, LAST_SEQ)


def _outside(values: pa.Array, first: int, last: int) -> pa.Array | None:
    """Which integers lie outside ``first``..``last``, or None if none do (one min/max
    over the column then)."""
    import pyarrow.compute as pc
    bounds = pc.min_max(values)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or (first <= low and high <= last):
        return None
    return pc.fill_null(pc.or_(pc.less(values, first), pc.greater(values, last)), False)


def drop_out_of_range(batch: pa.RecordBatch, bad: BadLines, row_word: str = "line"
                      ) -> pa.RecordBatch:
    """``batch`` (with ``source_file`` and ``source_line``) once no time of it lies
    outside the years 1-9999 and no chain_seq is an int64 extreme: a text export may
    spell a time (``0000-01-01``, ``9999-12-31T23:00:00-05:00``) that Arrow reads but
    nothing after it can show or compare, and verify's seq - 1 and seq + 1 overflow at
    the ends of int64. Each is ``bad.handle``d naming its file and line (``row_word``),
    so refused, or skipped and counted. One min/max per column when all is well."""
    import pyarrow.compute as pc
    keep = None
    for index, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type):
            outside, what = out_of_range(batch.column(index)), "a time outside the years 1-9999"
        elif field.name == "chain_seq" and pa.types.is_integer(field.type):
            outside, what = seq_at_the_ends(batch.column(index)), "out of the range of a chain"
        else:
            continue
        if outside is None:
            continue
        files, lines = batch.column("source_file"), batch.column("source_line")
        for row in pc.indices_nonzero(outside).to_pylist():
            shown = batch.column(index).slice(row, 1).cast(pa.string())[0]
            bad.handle(InputError(files[row].as_py(), f"{field.name} {shown} is {what}",
                                  f"{row_word} {lines[row]}"))
        keep = pc.invert(outside) if keep is None else pc.and_(keep, pc.invert(outside))
    return batch if keep is None else batch.filter(keep)


def long_rows(batch: pa.RecordBatch, limit: int) -> pa.Array | None:
    """Which rows' values add up to more than ``limit`` bytes (None if none do; counted
    only when the whole batch is that large): CSV records past the maximum line, which
    Arrow holds when they fit in two of its blocks."""
    import pyarrow.compute as pc
    if batch.nbytes <= limit:
        return None
    total = None
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_binary(column.type):
            length = pc.fill_null(pc.binary_length(column), 0)
            total = length if total is None else pc.add(total, length)
    if total is None:
        return None
    long = pc.greater(total, limit)
    return long if pc.any(long).as_py() else None


def empty_alerts() -> pa.Table:
    return ALERT_SCHEMA.empty_table()


#: Columns a reader fills itself rather than reading from the file.
DERIVED_COLUMNS = (
    "occurred_at_digits",
    "absent_fields",
    "source_file",
    "source_line",
    "source_shape",
)


_RAMP: pa.Array | None = None  # 0, 1, 2, ...: sliced and shifted for line numbers


def lines_from(first: int, rows: int) -> pa.Array:
    """first, first + 1, ... (int64): a reader's source lines, built in Arrow rather than
    from a Python range (a third of a second per million rows)."""
    import pyarrow.compute as pc
    global _RAMP
    if _RAMP is None or len(_RAMP) < rows:
        import array

        ramp = array.array("q", range(max(rows, BATCH_ROWS)))
        _RAMP = pa.Array.from_buffers(pa.int64(), len(ramp), [None, pa.py_buffer(ramp)])
    return pc.add(_RAMP.slice(0, rows), pa.scalar(first, pa.int64()))


def constant(value: object, rows: int, type_: pa.DataType) -> pa.Array:
    """``value`` (None too) repeated ``rows`` times, as ``type_``."""
    return pa.repeat(pa.scalar(value, type_), rows)


def assemble_events(
    columns: dict[str, pa.Array],
    rows: int,
    *,
    path: str,
    first_line: int,
    shape: str,
    digits: int,
    absent: str | None,
) -> pa.RecordBatch:
    """A batch of EVENT_SCHEMA from the columns a columnar reader has; the rest filled in."""
    derived = {
        "occurred_at_digits": lambda: constant(digits, rows, pa.int8()),
        "absent_fields": lambda: constant(absent, rows, pa.string()),
        "source_file": lambda: constant(path, rows, pa.string()),
        "source_line": lambda: lines_from(first_line, rows),
        "source_shape": lambda: constant(str(shape), rows, pa.string()),
    }
    out = []
    for field in EVENT_SCHEMA:
        if field.name in columns:
            out.append(columns[field.name])
        elif field.name in derived:
            out.append(derived[field.name]())
        else:
            out.append(pa.nulls(rows, field.type))
    return pa.RecordBatch.from_arrays(out, schema=EVENT_SCHEMA)


def absent_list(present: set[str] | list[str] | dict) -> str | None:
    """The comma list of model fields a columnar shape does not carry."""
    names = [n for n in EVENT_SCHEMA.names if n not in present and n not in DERIVED_COLUMNS]
    return ",".join(names) or None
