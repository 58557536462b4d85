"""``audit_ingest_alerts`` dumped as CSV (COPY ... CSV HEADER) or JSON lines (FORMAT.md 4.6)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from ..model import ALERT_SCHEMA, Shape
from ._batch import BadLines, constant, lines_from, long_rows
from ._io import open_binary, too_long
from ._lines import RowError, _json_type, read_json_lines, text_value, timestamp_text
from .db_csv import RowHandler, not_utf8

COLUMNS = ("id", "event_id", "zone_id", "kind", "detail", "observed_at")


def looks_like(keys: list[str] | dict) -> bool:
    return "kind" in keys and "event_id" in keys and "chain_hmac" not in keys


def parse_alert_row(obj: dict) -> dict:
    row = {}
    for name in COLUMNS:
        if name not in obj:
            continue
        if name == "id":
            # bigserial in a dump: a JSON number (kept as its literal) or text
            value = obj[name]
            if isinstance(value, (dict, list)):  # str() would be Python's repr of it
                raise RowError(f"id must be a number, a string or null, not {_json_type(value)}")
            row[name] = None if value is None or isinstance(value, bool) else str(value)
        elif name == "observed_at":
            row[name] = timestamp_text(obj, name)
        else:
            row[name] = text_value(obj, name)
    if not row.get("kind"):
        raise RowError("missing required field 'kind'")
    return row


def read_jsonl(path: str, bad: BadLines) -> Iterator[pa.RecordBatch]:
    return read_json_lines(
        path, bad, Shape.ALERTS_JSONL, ALERT_SCHEMA, timestamp_fields=("observed_at",)
    )


def read_csv(path: str, bad: BadLines, header: list[str]) -> Iterator[pa.RecordBatch]:
    import pyarrow.compute as pc
    handler = RowHandler(lambda row: "skip" if bad.skip else "error")
    stream = open_binary(path)
    try:
        table = pacsv.read_csv(
            stream,
            read_options=pacsv.ReadOptions(use_threads=False,
                                           block_size=max(1 << 20, bad.max_line)),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=handler,
                newlines_in_values=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                include_columns=[c for c in COLUMNS if c in header],
                strings_can_be_null=True,
                null_values=[""],  # COPY writes NULL as an empty field, nothing else
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        if "straddling" in str(error):  # a record larger than two blocks: never held
            raise too_long(path, bad.max_line, None, "a CSV record") from None
        if handler.undecodable is not None:
            raise not_utf8(path, handler, error) from None
        raise InputError(path, f"malformed CSV: {str(error).splitlines()[0][:200]}") from None
    finally:
        stream.close()
    keep, offset = [], 0
    for batch in table.to_batches():
        long = long_rows(batch, bad.max_line)
        if long is not None:
            for index in pc.indices_nonzero(long).to_pylist():
                where = f"line {2 + offset + index}"
                bad.handle(too_long(path, bad.max_line, where, "a CSV record"))
        keep.append(pc.invert(long) if long is not None else pa.repeat(True, batch.num_rows))
        offset += batch.num_rows
    if any(mask.false_count for mask in keep):  # skipped
        table = table.filter(pa.chunked_array(keep, pa.bool_()))
    rows = table.num_rows
    out = []
    for field in ALERT_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name).combine_chunks()
            if field.name == "observed_at":
                try:
                    column = pc.cast(column, field.type)
                except pa.ArrowInvalid as error:
                    raise InputError(path, f"observed_at: {str(error)[:200]}") from None
            out.append(column)
        elif field.name == "source_file":
            out.append(constant(path, rows, pa.string()))
        elif field.name == "source_line":
            out.append(lines_from(2, rows))
        elif field.name == "source_shape":
            out.append(constant(str(Shape.ALERTS_CSV), rows, pa.string()))
        else:
            out.append(pa.nulls(rows, field.type))
    yield from pa.Table.from_arrays(out, schema=ALERT_SCHEMA).to_batches()
