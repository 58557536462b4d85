"""Snapshot: the sources of one investigation, opened as a DuckDB view ``events``.

Every command and the notebook API start here. Canonical snapshot directories are read
by DuckDB straight from their Parquet files (with row-group skipping); every other shape
is streamed through its reader into a DuckDB table, which spills to disk beyond the
memory limit, so memory stays flat as inputs grow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from .errors import ForensicsError, UsageError
from .model import ALERT_SCHEMA, EVENT_SCHEMA, Shape
from .sources import BadLines, InputFile, read_alerts, read_events, scan

if TYPE_CHECKING:
    import polars as pl

    from .chain.report import Report

#: DuckDB's memory ceiling; beyond it, sorts and tables spill to a temporary directory.
MEMORY_LIMIT_ENV = "CARACAL_FORENSICS_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"
#: DuckDB's ceiling while loading non-snapshot inputs: loading only appends, so a table
#: beyond it is written out to the spill directory at little cost, and with the readers'
#: Arrow buffers on top the process stays well under 1 GiB however large the input.
LOAD_MEMORY_LIMIT = "500MB"


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded in memory, spilling to a private temporary directory."""
    con = duckdb.connect(":memory:")
    spill = tempfile.mkdtemp(prefix="caracal-forensics-")
    # the spill directory goes with the connection (or at exit), not left behind in /tmp
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute(f"SET memory_limit = '{_memory_limit()}'")
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    try:  # stderr is for errors and warnings; in Jupyter DuckDB wants ipywidgets for this
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        pass
    return con


def _memory_limit() -> str:
    value = os.environ.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT).strip()
    if not value.replace(".", "", 1).rstrip("KMGTBkmgtib ").isdigit():
        raise UsageError(f"{MEMORY_LIMIT_ENV} must look like 1GB or 512MB, not {value!r}")
    return value


def open_sources(paths: list[str], on_bad_line: str = "error") -> Snapshot:
    """Scan, detect and load the inputs; the result has a view ``events`` and ``alerts``."""
    if on_bad_line not in ("error", "skip"):
        raise UsageError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    inputs = scan(paths)
    if not inputs:
        raise UsageError(f"no export files found in {', '.join(paths)}")
    bad = BadLines(skip=on_bad_line == "skip")
    con = connect()
    event_inputs = [i for i in inputs if not i.holds_alerts]
    alert_inputs = [i for i in inputs if i.holds_alerts]
    _load(
        con,
        "loaded_events",
        EVENT_SCHEMA,
        [i for i in event_inputs if i.shape != Shape.SNAPSHOT],
        read_events,
        bad,
    )
    _load(con, "loaded_alerts", ALERT_SCHEMA, alert_inputs, read_alerts, bad)
    snapshots = [i for i in event_inputs if i.shape == Shape.SNAPSHOT]
    _create_views(con, snapshots)
    from .queries import ensure_views

    ensure_views(con, known_unique=_known_unique(event_inputs))
    return Snapshot(con, inputs, bad)


def _known_unique(event_inputs: list[InputFile]) -> bool:
    """One canonical snapshot whose manifest counted no duplicate event."""
    if len(event_inputs) != 1 or event_inputs[0].shape != Shape.SNAPSHOT:
        return False
    from .sources.snapshot_dir import load_manifest

    return load_manifest(event_inputs[0].path).get("duplicate_events") == 0


def _load(con, table: str, schema: pa.Schema, inputs: list[InputFile], read, bad: BadLines) -> None:
    """Stream every input's batches into one DuckDB table, keeping the reader's error typed."""
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for source in inputs:
            rows = 0
            try:
                for batch in read(source, bad):
                    rows += batch.num_rows
                    yield batch
            except BaseException as error:  # re-raised below, outside DuckDB
                failure.append(error)
                return
            source.rows = rows

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    con.register("_incoming", reader)
    configured = _memory_limit()
    lowered = bool(inputs) and _size_bytes(LOAD_MEMORY_LIMIT) < _size_bytes(configured)
    if lowered:
        con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
    try:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming")
    except duckdb.Error:
        if not failure:
            raise
    finally:
        con.unregister("_incoming")
        if lowered:
            con.execute(f"SET memory_limit = '{configured}'")
    if failure:
        raise failure[0]


def _size_bytes(value: str) -> float:
    """Bytes of a memory limit such as 1GB, 512MB or 1.5GiB (as _memory_limit checks)."""
    text = value.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    units = {"": 1, "B": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    unit = text[len(number) :].rstrip("B")
    if unit.endswith("I"):
        return float(number) * 1024 ** ("KMGT".index(unit[0]) + 1)
    return float(number) * units.get(unit, 1)


def _create_views(con: duckdb.DuckDBPyConnection, snapshots: list[InputFile]) -> None:
    from .sources.snapshot_dir import alerts_file, event_files

    event_parts = ["SELECT * FROM loaded_events"]
    alert_parts = ["SELECT * FROM loaded_alerts"]
    for snap in snapshots:
        files = event_files(snap.path)
        if files:
            event_parts.append(f"SELECT * FROM read_parquet({_sql_list(files)})")
        alerts = alerts_file(snap.path)
        if alerts:
            alert_parts.append(f"SELECT * FROM read_parquet({_sql_list([alerts])})")
    columns = ", ".join(f'"{name}"' for name in EVENT_SCHEMA.names)
    con.execute(
        f"CREATE VIEW events AS SELECT {columns} FROM ("
        + " UNION ALL BY NAME ".join(event_parts)
        + ")"
    )
    alert_columns = ", ".join(f'"{name}"' for name in ALERT_SCHEMA.names)
    con.execute(
        f"CREATE VIEW alerts AS SELECT {alert_columns} FROM ("
        + " UNION ALL BY NAME ".join(alert_parts)
        + ")"
    )


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


class Snapshot:
    """The opened sources of one investigation (the notebook's entry point).

    ``duckdb`` is the connection, with the views ``events`` (model.EVENT_SCHEMA: every row
    of every input), ``unique_events`` (one row per event when a directory holds several
    shapes of one export: what tail, explain, stats and queries read) and ``alerts``;
    ``inputs`` lists what was examined with sizes and SHA-256.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: list[InputFile], bad: BadLines):
        self._con = con
        self.inputs = inputs
        self.skipped_lines = bad.count
        self.first_skipped = bad.first

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        return self._con

    @property
    def events(self) -> pl.LazyFrame:
        """Every event as a lazy polars frame."""
        return self._con.sql("SELECT * FROM events").pl(lazy=True)

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> pl.DataFrame:
        """Run SQL over the views ``events`` and ``alerts``; the result as a polars frame."""
        try:
            return self._con.sql(query, params=params).pl()
        except duckdb.Error as error:
            raise ForensicsError(f"SQL error: {str(error).splitlines()[0]}") from None

    def count(self) -> int:
        return self._con.sql("SELECT count(*) FROM events").fetchall()[0][0]

    def arrow(self, query: str = "SELECT * FROM events ORDER BY zone_id, chain_seq") -> pa.Table:
        return self._con.sql(query).to_arrow_table()

    def alerts(
        self, zones: list[str] | None = None, kinds: list[str] | None = None
    ) -> pl.DataFrame:
        """The audit_ingest_alerts rows (oldest first), optionally of some zones or kinds."""
        import polars as pl

        from .alerts import query_alerts

        return pl.from_arrow(query_alerts(self, zones=zones, kinds=kinds))

    def tail(
        self,
        *,
        decision: str | None = None,
        event_type: str | list[str] | None = None,
        zone: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> pl.DataFrame:
        """The newest ``limit`` matching events (0 = all), oldest first, as ``audit tail``.

        ``event_type`` and ``zone`` take one value or a list; ``since`` (inclusive) and
        ``until`` (exclusive) take ISO 8601 text, a date or a datetime (naive = UTC).
        """
        import polars as pl

        from .filters import Filters, select

        filters = Filters.build(
            decision=decision,
            event_type=event_type,
            zone=zone,
            since=since,
            until=until,
            request_id=request_id,
            limit=limit,
        )
        return pl.from_arrow(select(self._con, filters))  # type: ignore[return-value]

    def explain(self, request_id: str, zone: str | None = None, key: bytes | str | None = None):
        """Every event of ``request_id`` oldest first and its final decision (an
        ``explain.Explanation``); with ``key`` (hex text or bytes) each event says whether
        its chain link verified."""
        from .explain import explain

        return explain(self._con, request_id, zone=zone, key=key)

    def verify(self, key: bytes | str | None = None, **options: Any) -> Report:
        """Recompute every content hash and HMAC link (see ``chain.verify.verify``).

        ``key`` is the decoded key (bytes) or its hex text; None checks content and links
        only and reports the HMAC as unverifiable.
        """
        from .chain.verify import verify

        return verify(self._con, key=key, inputs=self.inputs, **options)

    def ingest(self, out_dir: str) -> dict[str, Any]:
        """Write a canonical snapshot of these events under ``out_dir``; returns its manifest."""
        from .ingest import write_snapshot

        return write_snapshot(self, out_dir)

    def stats(self) -> dict[str, Any]:
        """Counts by decision, zone and event type, time span, per-zone chain_seq range."""
        from .stats import stats

        return stats(self._con)

    def query(self, name: str, **params: Any) -> pl.DataFrame:
        """Run the named query ``name`` (queries/*.sql) with its parameters bound."""
        from .queries import run_named

        return run_named(self._con, name, params).frame

    def __repr__(self) -> str:
        shapes = sorted({i.shape for i in self.inputs})
        return f"<Snapshot {len(self.inputs)} input(s) ({', '.join(shapes)})>"
