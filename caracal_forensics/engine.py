"""DuckDB set-up: the connection every command works on, and the SQL around it.

A connection is bounded in memory (``$CARACAL_FORENSICS_MEMORY_LIMIT``, see
``settings``) and spills to a private temporary directory that goes with it. The views
``events`` and ``alerts`` are made here over what was loaded (``load_table``, the spool's
files) and canonical snapshots' Parquet files; ``confine`` and ``confined_twin`` keep SQL
from elsewhere to those files. Nothing here knows of the CLI or of ``Snapshot``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from .errors import ForensicsError, InputError, UsageError
from .model import ALERT_SCHEMA, EVENT_SCHEMA
from .settings import MEMORY_LIMIT_ENV, settings
from .sources import BadLines, InputFile, read_inputs

#: DuckDB's ceiling while loading non-snapshot inputs: loading only appends, so a table
#: beyond it is written out to the spill directory at little cost, and with the readers'
#: Arrow buffers on top the process stays well under 1 GiB however large the input.
LOAD_MEMORY_LIMIT = "500MB"


#: LIMITs up to which DuckDB reads the selected rows whole only after choosing them
#: (DuckDB's default: 50).
LATE_MATERIALIZATION_ROWS = 1000


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded in memory, spilling to a private temporary directory."""
    from . import tempdirs

    con = duckdb.connect(":memory:")
    # named and locked so that a run after a kill -9 finds and removes it (tempdirs.py)
    spill = tempdirs.make()
    # the spill directory goes with the connection (or at exit), not left behind in /tmp
    weakref.finalize(con, tempdirs.remove, spill)
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    # bound, not pasted: $TMPDIR may hold a quote
    con.execute("SET temp_directory = $path", {"path": spill})
    con.execute("SET preserve_insertion_order = false")
    # The newest N events (tail's default 100, explain's) are found on their sort keys and
    # only then read whole, as DuckDB does for 50 rows or fewer: sorting 100 events of
    # 1.9 MiB whole took it past its 1 GB limit (issue 14.2).
    con.execute(f"SET late_materialization_max_rows = {LATE_MATERIALIZATION_ROWS}")
    con.execute("SET TimeZone = 'UTC'")
    try:  # stderr is for errors and warnings; in Jupyter DuckDB wants ipywidgets for this
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        pass
    return con


def memory_limit() -> str:
    """DuckDB's memory limit: ``$CARACAL_FORENSICS_MEMORY_LIMIT`` (``settings``), checked."""
    import re

    value = settings().memory_limit
    # a unit is required, and the bytes must fit DuckDB's int64 ("0" and "1e30GB" were
    # DuckDB's parser errors, said as if the data could not be read)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?\s*([KMGT](i?B)?|B)", value, re.IGNORECASE) is None \
            or size_bytes(value) >= 2**63:
        raise UsageError(f"{MEMORY_LIMIT_ENV} must look like 1GB or 512MB, not {value!r}")
    return value


def size_bytes(value: str) -> float:
    """Bytes of a memory limit such as 1GB, 512MB or 1.5GiB (as memory_limit checks)."""
    text = value.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    units = {"": 1, "B": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    unit = text[len(number) :].rstrip("B")
    if unit.endswith("I"):
        return float(number) * 1024 ** ("KMGT".index(unit[0]) + 1)
    return float(number) * units.get(unit, 1)


def load_table(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema,
               inputs: list[InputFile], read, bad: BadLines) -> None:
    """Stream every input's batches into one DuckDB table, keeping the reader's error typed."""
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from read_inputs(inputs, bad, read)
        except BaseException as error:  # re-raised below, outside DuckDB
            failure.append(error)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    con.register("_incoming", reader)
    try:
        with loading_memory(con, lowered=bool(inputs)):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming")
    except duckdb.Error:
        if not failure:
            raise
    finally:
        con.unregister("_incoming")
    if failure:
        raise failure[0]


@contextmanager
def loading_memory(con: duckdb.DuckDBPyConnection, lowered: bool = True) -> Iterator[None]:
    """DuckDB's memory limit lowered to ``LOAD_MEMORY_LIMIT`` for the block (unless the
    configured one is lower, or not ``lowered``): readers' Arrow buffers come on top of
    what it holds while their rows are loaded or spooled."""
    configured = memory_limit()
    lowered = lowered and size_bytes(LOAD_MEMORY_LIMIT) < size_bytes(configured)
    if lowered:
        con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
    try:
        yield
    finally:
        if lowered:
            con.execute(f"SET memory_limit = '{configured}'")


def create_views(
    con: duckdb.DuckDBPyConnection, snapshots: list[InputFile], spool_files: Sequence[str] = ()
) -> str:
    """Create the views ``events`` and ``alerts`` over the tables ``loaded_alerts``, the
    ``spool_files`` (``spool.Spool``: the loaded events) and the ``snapshots``' files;
    returns ``events``' SQL as DuckDB keeps it."""
    from .sources.snapshot_dir import alerts_file, event_files

    event_parts = ["SELECT * FROM loaded_events"]
    alert_parts = ["SELECT * FROM loaded_alerts"]
    _SNAPSHOTS[con] = [snap.path for snap in snapshots]
    for snap in snapshots:
        files = event_files(snap.path)
        if files:
            event_parts.append(f"SELECT * FROM read_parquet({sql_list(files)})")
        alerts = alerts_file(snap.path)
        if alerts:
            alert_parts.append(f"SELECT * FROM read_parquet({sql_list([alerts])})")
    if spool_files:
        con.execute("CREATE VIEW loaded_events AS " + union_files(list(spool_files)))
    else:
        create_empty_table(con, "loaded_events", EVENT_SCHEMA)
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
    return view_sql(con, "events")


#: The snapshot directories behind each connection's views (``create_views``), for
#: naming a file damaged in place when DuckDB fails on the data (``query_error``).
_SNAPSHOTS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, list[str]] = (
    weakref.WeakKeyDictionary())

#: DuckDB's errors that a damaged Parquet file gives (its thrift "don't know what type",
#: a page that does not decompress); the others (parser, binder, conversion ...) are
#: about the statement, and no file is hashed for them.
_DATA_ERRORS = frozenset({"Error", "IOException", "InvalidInputException",
                          "InternalException", "SerializationException"})


def query_error(error: duckdb.Error, con: duckdb.DuckDBPyConnection | None = None,
                prefix: str = "query failed") -> ForensicsError:
    """DuckDB's ``error`` as ours: ``prefix: its first line``. When it can come of the
    data and a file of a snapshot behind ``con`` (None: behind any open connection) no
    longer has the SHA-256 its manifest lists, an InputError naming that file, the
    message after it: opening a snapshot checks sizes and footers, not hashes, so a part
    damaged in place is found here, when reading it fails (DuckDB's message names no
    file)."""
    lines = str(error).strip().splitlines()
    first = lines[0][:300] if lines else type(error).__name__
    if type(error).__name__ in _DATA_ERRORS:
        changed = changed_snapshot_file(con)
        if changed is not None:
            return InputError(changed.path, f"{changed.problem}; {prefix}: {first}")
    return ForensicsError(f"{prefix}: {first}")


def changed_snapshot_file(con: duckdb.DuckDBPyConnection | None = None) -> InputError | None:
    """The first file of the snapshots behind ``con`` (None: every open connection's)
    whose SHA-256 differs from its manifest's, as ``manifest.check_digests`` says it."""
    from .manifest import check_digests

    directories = _SNAPSHOTS.get(con, []) if con is not None else [
        path for paths in list(_SNAPSHOTS.values()) for path in paths]
    for directory in dict.fromkeys(directories):
        try:
            check_digests(directory)
        except InputError as changed:
            return changed
    return None


def view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The SQL of view ``name`` as DuckDB keeps it (to notice a view replaced later)."""
    rows = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = $name AND NOT internal",
        {"name": name},
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def union_files(files: list[str]) -> str:
    """SELECT of the files' rows, file after file (in order when the connection preserves
    insertion order). ``union_by_name`` makes DuckDB read every file's statistics, so a
    column without NULLs stays NOT NULL (required) when written out again."""
    return f"SELECT * FROM read_parquet({sql_list(files)}, union_by_name = true)"


#: DuckDB's type for each Arrow type of the package's schemas (model, admin.model).
_DUCKDB_TYPES = {
    "string": "VARCHAR", "bool": "BOOLEAN", "int8": "TINYINT", "int32": "INTEGER",
    "int64": "BIGINT", "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "timestamp[us]": "TIMESTAMP",
}


def create_empty_table(con: duckdb.DuckDBPyConnection, name: str, schema) -> None:
    """``CREATE TABLE name`` with ``schema``'s columns and no rows, in SQL: handing DuckDB
    an Arrow object makes it import pandas when installed (0.13 s at every start)."""
    columns = ", ".join(f'"{field.name}" {_DUCKDB_TYPES[str(field.type)]}' for field in schema)
    con.execute(f"CREATE TABLE {name} ({columns})")


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def confine(con: duckdb.DuckDBPyConnection, files: list[str], directories: list[str]) -> None:
    """Let ``con`` read and write only ``files`` and under ``directories``, for good."""
    paths = [name for path in files for name in (path, os.path.abspath(path))]
    con.execute(f"SET allowed_directories = {sql_list(directories)}")
    if paths:
        con.execute(f"SET allowed_paths = {sql_list(paths)}")
    con.execute("SET enable_external_access = false")


#: What a confined twin copies of a snapshot's connection, in order: views by their SQL,
#: tables (the loaded alerts, an empty loaded_events) by their rows.
_TWIN_RELATIONS = ("loaded_events", "loaded_alerts", "events", "alerts", "unique_events",
                   "loaded_admin", "admin_events", "unique_admin_events")


def confined_twin(con: duckdb.DuckDBPyConnection, files: list[str]) -> duckdb.DuckDBPyConnection:
    """A new connection holding ``con``'s views over the same files, confined to them
    (DuckDB's file access is per database, and confining ``con`` itself is for good)."""
    views = dict(con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND view_name IN "
        "$names", {"names": list(_TWIN_RELATIONS)}).fetchall())
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()}
    twin = connect()
    for name in _TWIN_RELATIONS:
        if name in views:
            twin.execute(views[name])
        elif name in tables:  # a table of con's (small: alerts, admin rows, empty events)
            twin.register("_rows", con.sql(f"SELECT * FROM {name}").to_arrow_table())
            try:
                twin.execute(f"CREATE TABLE {name} AS SELECT * FROM _rows")
            finally:
                twin.unregister("_rows")
    plan = con.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'unique_events' "
                   "AND temporary").fetchall()
    if plan and plan[0][0] in ("plain", "dedupe"):
        twin.execute(f"COMMENT ON VIEW unique_events IS '{plan[0][0]}'")
    spill = twin.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
    confine(twin, files, [spill])
    _SNAPSHOTS[twin] = list(_SNAPSHOTS.get(con, []))  # the same snapshots behind it
    return twin


