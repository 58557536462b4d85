"""The ``audit_ingest_alerts`` rows of a Snapshot: tamper signals Caracal saw at ingest.

The view ``alerts`` (model.ALERT_SCHEMA) gathers them from every source that has them: a
canonical snapshot (``alerts.parquet``), a CSV or JSON lines dump of the table. This module
selects and orders them and gives each row a JSON-ready form; the CLI only renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .model import ALERT_COLUMNS, Shape

if TYPE_CHECKING:
    from .snapshot import Snapshot

#: Oldest first; ``id`` is a bigserial, so compare it as a number when it is one.
ALERT_ORDER = (
    "observed_at NULLS LAST, TRY_CAST(id AS BIGINT) NULLS LAST, id, source_file, source_line"
)

#: The table's own columns (without provenance), in table order.
TABLE_COLUMNS: tuple[str, ...] = ("id", "event_id", "zone_id", "kind", "detail", "observed_at")

#: The view ``alerts`` with each alert once: a directory holding the table as CSV and as
#: JSON lines (or beside a snapshot) has every row in each file. An alert is the same
#: when its id and every column agree; the copy from the first file (by name) is kept, and
#: all rows of that file, so a row repeated inside one dump, or an id with differing
#: content, still shows as often as it occurs.
UNIQUE_ALERTS = (
    "SELECT * EXCLUDE (_copy) FROM (SELECT *, dense_rank() OVER (PARTITION BY "
    + ", ".join(TABLE_COLUMNS)
    + " ORDER BY source_file NULLS LAST) AS _copy FROM alerts) WHERE _copy = 1"
)


def query_alerts(
    snapshot: Snapshot,
    zones: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> pa.Table:
    """The alerts (model.ALERT_SCHEMA columns), each once however many dumps of the table
    hold it (:data:`UNIQUE_ALERTS`), optionally of some zones or kinds, in order."""
    clauses = []
    params: dict[str, Any] = {}
    if zones:
        clauses.append("list_contains($zones, zone_id)")
        params["zones"] = list(zones)
    if kinds:
        clauses.append("list_contains($kinds, kind)")
        params["kinds"] = list(kinds)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    columns = ", ".join(f'"{name}"' for name in ALERT_COLUMNS)
    query = f"SELECT {columns} FROM ({UNIQUE_ALERTS}){where} ORDER BY {ALERT_ORDER}"
    return snapshot.duckdb.sql(query, params=params).to_arrow_table()


def count_alerts(con) -> int:
    """How many distinct alerts the connection's view ``alerts`` holds."""
    return con.sql(f"SELECT count(*) FROM ({UNIQUE_ALERTS})").fetchall()[0][0]


def has_alert_source(snapshot: Snapshot) -> bool:
    """Whether any input can hold alerts (an alerts dump or a canonical snapshot)."""
    return any(i.holds_alerts or i.shape == Shape.SNAPSHOT for i in snapshot.inputs)


def iso_utc(value: dt.datetime | None) -> str | None:
    """``2026-05-11T09:00:00Z``, with ``.ffffff`` only when there are microseconds."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat() + "Z"


def source_of(row: dict[str, Any]) -> str | None:
    """``file:line`` (line, row or element number, per the shape), as findings name it."""
    if row.get("source_file") is None:
        return None
    line = row.get("source_line")
    return f"{row['source_file']}:{line}" if line is not None else row["source_file"]


def alert_records(table: pa.Table) -> Iterator[dict[str, Any]]:
    """One JSON-ready dict per alert: the table's columns, observed_at as ISO UTC, source."""
    for row in table.to_pylist():
        record = {name: row.get(name) for name in TABLE_COLUMNS}
        record["observed_at"] = iso_utc(row.get("observed_at"))
        record["source"] = source_of(row)
        yield record
