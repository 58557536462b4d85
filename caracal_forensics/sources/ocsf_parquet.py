"""Hourly OCSF Parquet files uploaded by the audit service (FORMAT.md 4.4).

``time`` holds occurred_at in milliseconds only: rows get ``occurred_at_digits = 3`` so that
verify knows the content hash needs microsecond recovery. There is no prev column and no
ingested_at; those are listed in ``absent_fields``. jsonb columns are jsonb text with ""
standing for NULL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..model import EVENT_SCHEMA, JSONB_FIELDS, UTC_MICROS, Shape
from ._batch import absent_list, assemble_events, out_of_range
from ._parquet import open_parquet, row_groups

SHAPE = Shape.OCSF_PARQUET
#: model field -> OCSF column
COLUMNS = {
    "id": "event_id",
    "zone_id": "zone_id",
    "event_type": "event_type",
    "request_id": "request_id",
    "decision": "decision",
    "policy_set_id": "policy_set_id",
    "policy_set_version_id": "policy_set_version_id",
    "manifest_sha": "manifest_sha",
    "evaluation_status": "evaluation_status",
    "determining_policies_json": "determining_policies_json",
    "diagnostics_json": "diagnostics_json",
    "metadata_json": "metadata_json",
    "occurred_at": "time",
    "content_sha256": "content_sha256",
    "chain_hmac": "chain_hmac",
    "chain_seq": "chain_seq",
}


def looks_like(schema: pa.Schema) -> bool:
    return "class_uid" in schema.names and "event_id" in schema.names


def read(path: str, parquet: pq.ParquetFile | None = None) -> Iterator[pa.RecordBatch]:
    parquet = parquet or open_parquet(path)
    names = parquet.schema_arrow.names
    for required in ("event_id", "zone_id", "time"):
        if required not in names:
            raise InputError(path, f"OCSF file lacks column {required!r}")
    present = {field: column for field, column in COLUMNS.items() if column in names}
    absent = absent_list(present)
    for first, table in row_groups(path, parquet, list(present.values())):
        yield _to_events(table, path, first, present, absent)


def _to_events(
    table: pa.Table, path: str, first: int, present: dict[str, str], absent: str | None
) -> pa.RecordBatch:
    import pyarrow.compute as pc
    columns = {}
    for name, source in present.items():
        column = table.column(source).combine_chunks()
        try:
            if name == "occurred_at":
                column = column.cast(pa.int64())
                outside = out_of_range(column, per_micro=1000)
                if outside is not None:  # Python cannot show it, and x 1000 may overflow
                    row = pc.index(outside, True).as_py()
                    raise InputError(
                        path, f"column {source!r} holds {column[row]} ms, a time "
                        "outside the years 1-9999", f"row {first + 1 + row}")
                column = pc.multiply(column, 1000).cast(UTC_MICROS)
            elif name in JSONB_FIELDS:
                column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
            columns[name] = column.cast(EVENT_SCHEMA.field(name).type)
        except pa.ArrowException as error:  # a column of another type, or values that overflow
            expected = "milliseconds (int64)" if name == "occurred_at" else str(
                EVENT_SCHEMA.field(name).type)
            raise InputError(
                path,
                f"column {source!r} ({column.type}) does not hold {expected} values: "
                f"{str(error).splitlines()[0][:160]}",
                f"rows {first + 1}-{first + table.num_rows}",
            ) from None
    return assemble_events(
        columns,
        table.num_rows,
        path=path,
        first_line=first + 1,
        shape=SHAPE,
        digits=3,
        absent=absent,
    )
