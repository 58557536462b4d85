"""Table dump as CSV: ``COPY audit_events TO ... CSV HEADER`` (FORMAT.md 4.1).

jsonb columns are already PostgreSQL's jsonb text and are kept verbatim. An unquoted
empty value is SQL NULL, a quoted ``""`` is the empty string, as COPY writes them.
Arrow's streaming CSV reader does the parsing; ``source_line`` is 1 + the record number
(the header is line 1), which is the physical line when no value holds a newline.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import InputError
from ..model import EVENT_SCHEMA, UTC_MICROS, Shape
from ._batch import DERIVED_COLUMNS, BadLines, absent_list, assemble_events
from ._io import open_binary

SHAPE = Shape.DB_CSV
BLOCK_SIZE = 8 << 20
REQUIRED = ("id", "zone_id", "occurred_at")
MODEL_COLUMNS = [name for name in EVENT_SCHEMA.names if name not in DERIVED_COLUMNS]


def looks_like(header: list[str]) -> bool:
    return "zone_id" in header and "chain_hmac" in header and "event_type" in header


def read(path: str, bad: BadLines, header: list[str]) -> Iterator[pa.RecordBatch]:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(
            path, f"CSV header lacks required column(s) {', '.join(missing)}", "line 1"
        )
    present = [name for name in MODEL_COLUMNS if name in header]
    absent = absent_list(header)
    bad_rows: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(
            (row.number or 0, f"expected {row.expected_columns} columns, got {row.actual_columns}")
        )
        return "skip" if bad.skip else "error"

    stream = open_binary(path)
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                include_columns=present,
                strings_can_be_null=True,
                null_values=[""],  # COPY writes NULL as an empty field, nothing else
                quoted_strings_can_be_null=False,
            ),
        )
        next_line = 2
        while True:
            seen_bad = len(bad_rows)
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            for line, problem in bad_rows[seen_bad:]:
                bad.handle(InputError(path, problem, f"line {line}"))
            yield _to_events(batch, path, next_line, absent, present, bad)
            next_line += batch.num_rows + (len(bad_rows) - seen_bad)
    except (OSError, EOFError) as error:
        raise InputError(path, f"truncated or unreadable compressed data: {error}") from None
    except pa.ArrowInvalid as error:
        if bad_rows:  # the row handler saw it first and knows the line
            line, problem = bad_rows[-1]
            raise InputError(path, problem, f"line {line}") from None
        raise InputError(path, f"malformed CSV: {_short(error)}") from None
    finally:
        stream.close()


def _to_events(
    batch: pa.RecordBatch,
    path: str,
    first_line: int,
    absent: str | None,
    present: list[str],
    bad: BadLines,
) -> pa.RecordBatch:
    rows = batch.num_rows
    lines = pa.array(range(first_line, first_line + rows), pa.int64())
    columns = {
        name: _convert(batch.column(name), EVENT_SCHEMA.field(name).type, path, name, lines)
        for name in present
    }
    batch_out = assemble_events(
        columns, rows, path=path, first_line=first_line, shape=SHAPE, digits=6, absent=absent
    )
    keep = None
    for name in REQUIRED:
        missing = pc.or_(
            pc.is_null(batch_out.column(name)),
            pc.equal(pc.cast(batch_out.column(name), pa.string()), ""),
        )
        missing = pc.fill_null(missing, True)
        if not pc.any(missing).as_py():
            continue
        for index in pc.indices_nonzero(missing).to_pylist():
            bad.handle(
                InputError(path, f"missing required field {name!r}", f"line {first_line + index}")
            )
        keep = pc.invert(missing) if keep is None else pc.and_(keep, pc.invert(missing))
    return batch_out if keep is None else batch_out.filter(keep)


def _convert(
    column: pa.Array, target: pa.DataType, path: str, name: str, lines: pa.Array
) -> pa.Array:
    if target == pa.string():
        return column
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    kind = "a timestamp" if target == UTC_MICROS else "an integer"
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(
                path, f"{name} is not {kind}: {value[:60]!r}", f"line {lines[index].as_py()}"
            ) from None
    raise InputError(path, f"{name}: unconvertible values")  # pragma: no cover


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
