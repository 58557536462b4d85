"""Admin rows (``admin_audit_events``, FORMAT.md 8) inside a Snapshot and a snapshot directory.

Opened sources hold them in the DuckDB view ``admin_events`` (every row of every input,
as ``events`` holds every event; empty when no source has admin rows, so SQL over it
never fails for want of a table) and ``unique_admin_events`` (each change once when a
directory holds the table in several shapes). A canonical snapshot keeps them as their
own Parquet part, ``admin/part-00000.parquet``, sorted by chain and chain_seq, and its
manifest records per chain the rows, the chain_seq range and the head.

:func:`admin_rows` is the one way in for code that wants a snapshot's admin rows as
Arrow (the admin chain's verification): from a snapshot directory, an opened Snapshot or
a connection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .model import ADMIN_SCHEMA, GLOBAL_CHAIN, TABLE_COLUMNS

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ADMIN_SCHEMA",
    "TABLE_COLUMNS",
    "LOADED_TABLE",
    "VIEW",
    "UNIQUE_VIEW",
    "ORDER",
    "admin_view",
    "admin_rows",
    "chain_name",
    "chain_heads",
    "write_admin_part",
]

#: The DuckDB table admin rows read from files (or a database) are loaded into.
LOADED_TABLE = "loaded_admin"
#: Every admin row of every source, and each change once.
VIEW = "admin_events"
UNIQUE_VIEW = "unique_admin_events"
#: Canonical order: chain by chain (the global chain first), in chain order.
ORDER = ("zone_id NULLS FIRST, chain_seq NULLS LAST, occurred_at NULLS LAST, id, "
         "source_file, source_line")

#: Each change once: a directory may hold the table as CSV and as JSON lines (and the
#: Admin API's page of the same zone, whose zone is only its file name's). A change is
#: its id (a UUID, the table's key); the copy that carries hashes is kept (an API page
#: has none), then the first file by name. verify reads ``admin_events``, every copy,
#: since a differing copy is evidence.
_UNIQUE_SQL = (
    "SELECT * EXCLUDE (_copy) FROM (SELECT *, row_number() OVER (PARTITION BY "
    "coalesce(id, source_file || ':' || source_line::VARCHAR) ORDER BY content_sha256 IS "
    f"NULL, source_file, source_line) AS _copy FROM {VIEW}) WHERE _copy = 1"
)


def chain_name(zone_id: str | None) -> str:
    """The chain an admin row belongs to: its zone, or GLOBAL_CHAIN without one."""
    return GLOBAL_CHAIN if zone_id is None else zone_id


def _columns_sql() -> str:
    return ", ".join(f'"{name}"' for name in ADMIN_SCHEMA.names)


def _relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a table or view of ``con`` (asked by binding a query on it:
    a look at DuckDB's catalog functions costs ten times more, on every open)."""
    import duckdb

    try:
        con.execute(f"SELECT 1 FROM {name} LIMIT 0")
    except duckdb.CatalogException:
        return False
    return True


def admin_view(con: duckdb.DuckDBPyConnection, snapshots: Sequence[str] = (), *,
               loaded: bool | None = None) -> None:
    """Create the views ``admin_events`` and ``unique_admin_events`` over the table
    LOADED_TABLE (made empty when nothing was loaded into it) and the admin parts of the
    snapshot directories ``snapshots``. ``loaded``: whether the caller made LOADED_TABLE
    (None: look)."""
    from ..engine import create_empty_table, sql_list
    from ..sources.snapshot_dir import admin_files

    if loaded is None:
        loaded = _relation_exists(con, LOADED_TABLE)
    if not loaded:
        create_empty_table(con, LOADED_TABLE, ADMIN_SCHEMA)
    parts = [f"SELECT * FROM {LOADED_TABLE}"]
    for directory in snapshots:
        files = admin_files(directory)
        if files:
            parts.append(f"SELECT * FROM read_parquet({sql_list(files)})")
    con.execute(f"CREATE OR REPLACE VIEW {VIEW} AS SELECT {_columns_sql()} FROM ("
                + " UNION ALL BY NAME ".join(parts) + ")")
    con.execute(f"CREATE OR REPLACE VIEW {UNIQUE_VIEW} AS {_UNIQUE_SQL}")


def has_admin(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's ``admin_events`` holds any row."""
    if not _relation_exists(con, VIEW):
        return False
    return bool(con.sql(f"SELECT 1 FROM {VIEW} LIMIT 1").fetchall())


def admin_rows(source: Any, *, unique: bool = False) -> pa.Table:
    """The admin rows (``ADMIN_SCHEMA``) of ``source`` in canonical order (chain by
    chain, global chain first, chain_seq ascending): ``source`` is a snapshot directory
    (its admin part, read without DuckDB; empty when it has none), an opened Snapshot, or
    a DuckDB connection with the view ``admin_events``. ``unique``: each change once
    (``unique_admin_events``), as the listings show them; verify wants every copy."""
    if isinstance(source, (str, os.PathLike)):
        return _directory_rows(os.fspath(source), unique)
    con = getattr(source, "duckdb", source)
    if not _relation_exists(con, VIEW):
        return ADMIN_SCHEMA.empty_table()
    relation = UNIQUE_VIEW if unique else VIEW
    return con.sql(f"SELECT {_columns_sql()} FROM {relation} ORDER BY {ORDER}").to_arrow_table()


def _directory_rows(directory: str, unique: bool) -> pa.Table:
    import pyarrow.parquet as pq

    from ..sources.snapshot_dir import admin_files, check_snapshot

    check_snapshot(directory)  # held to its manifest, as every open is
    files = admin_files(directory)
    if not files:
        return ADMIN_SCHEMA.empty_table()
    table = pa.concat_tables([pq.read_table(path, schema=ADMIN_SCHEMA) for path in files])
    if not unique:
        return table  # written in canonical order (write_admin_part)
    from ..engine import connect

    con = connect()
    try:
        con.register(LOADED_TABLE, table)
        admin_view(con)
        return admin_rows(con, unique=True)
    finally:
        con.close()


def chain_heads(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per admin chain (its zone, or GLOBAL_CHAIN): rows, first and last chain_seq, and
    the head, the last row's content_sha256 and chain_hmac (an anchor for later)."""
    if not _relation_exists(con, VIEW):
        return {}
    rows = con.sql(
        f"""
        SELECT zone_id, count(*), min(chain_seq), max(chain_seq),
               arg_max(content_sha256, chain_seq), arg_max(chain_hmac, chain_seq)
        FROM {VIEW} GROUP BY zone_id ORDER BY zone_id NULLS FIRST
        """
    ).fetchall()
    return {
        chain_name(zone): {"events": n, "first_seq": first, "last_seq": last,
                           "last_content_sha256": head, "last_chain_hmac": hmac}
        for zone, n, first, last, head, hmac in rows
    }


def write_admin_part(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Write ``admin_events`` (every row, in canonical order) to ``path`` as zstd
    Parquet, when it holds any; returns the rows written (0: no file)."""
    if not has_admin(con):
        return 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    con.execute(
        f"COPY (SELECT {_columns_sql()} FROM {VIEW} ORDER BY {ORDER}) TO $path "
        "(FORMAT parquet, COMPRESSION zstd)",
        {"path": path},
    ).fetchall()
    return con.sql(f"SELECT count(*) FROM {VIEW}").fetchall()[0][0]
