"""Taking a canonical snapshot straight from a live Caracal PostgreSQL.

Everything is read in ONE ``REPEATABLE READ, READ ONLY`` transaction, so ``audit_events``,
``audit_ingest_alerts`` and, where the database has them, ``admin_audit_events`` (the
second chain, FORMAT.md 8) and ``audit_export_watermark`` are seen as of a single instant
however busy the writers are: no chain can be cut in the middle of an append, and an
admin change is never newer than the decisions beside it. Only ``SELECT`` rights are
needed.

Rows are streamed with ``COPY (SELECT ...) TO STDOUT`` as CSV, which Arrow parses block by
block into record batches of model.EVENT_SCHEMA (jsonb as its exact ``::text``, timestamps
as UTC text with all six microsecond digits, so neither the session time zone nor float
rounding can alter them); the batches go into DuckDB (which spills beyond its memory
limit) and ingest.write_snapshot writes the canonical snapshot.

Connection settings are libpq's own: a conninfo string or URL, PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGSERVICE, PGPASSFILE, ``.pgpass``. A password is never written anywhere: the
manifest, provenance and every error use :func:`redact_dsn` or the connection's own
password-free description.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DatabaseError, UsageError
from .interrupts import cancel_on_interrupt, check_interrupt, deferred_interrupts
from .model import (
    ABSENT_FIELD,
    ALERT_SCHEMA,
    EVENT_SCHEMA,
    PRECISION_FIELD,
    UTC_MICROS,
    Shape,
)
from .sources._batch import constant, lines_from

if TYPE_CHECKING:
    import duckdb
    import psycopg

#: ``source_shape`` of rows read from a live database (events and alerts alike).
POSTGRES_SHAPE = Shape.POSTGRES

EVENTS_TABLE = "audit_events"
ALERTS_TABLE = "audit_ingest_alerts"
#: The second chain (FORMAT.md 8) and the hourly export's watermark (FORMAT.md 9): read
#: when the database has them (older releases have neither).
ADMIN_TABLE = "admin_audit_events"
WATERMARK_TABLE = "audit_export_watermark"
#: The watermark row of the hourly OCSF upload, recorded as ``last_exported_hour``.
WATERMARK_NAME = "parquet-hourly"

#: Bytes of COPY output Arrow parses at a time (one record batch each).
BLOCK_BYTES = 8 << 20

#: What --since/--until select, as the manifest records it.
WINDOW_RULE = (
    "per zone, the contiguous chain segment from the first to the last chain_seq whose "
    "occurred_at is in [since, until)"
)

#: Columns the chain cannot be checked without: a table lacking them is not Caracal's.
REQUIRED_COLUMNS = ("id", "zone_id", "event_type", "occurred_at", "chain_seq")

ALERT_COLUMNS = ("id", "event_id", "zone_id", "kind", "detail", "observed_at")

#: Columns of admin_audit_events without which its chain cannot be checked.
ADMIN_REQUIRED_COLUMNS = ("id", "occurred_at", "chain_seq")

#: Session settings for the read: timestamptz then prints as exact ISO text in UTC
#: (``2026-05-11 08:00:03.212365+00``), which is what Arrow parses.
_SESSION = ("SET LOCAL TimeZone = 'UTC'", "SET LOCAL DateStyle = 'ISO, YMD'")

_EVENT_TIMESTAMPS = ("occurred_at", "ingested_at")
#: Model columns a reader fills itself; never read from the table.
_DERIVED = (PRECISION_FIELD, ABSENT_FIELD, "source_file", "source_line", "source_shape")


# --- the DSN, without its password ------------------------------------------------------


def redact_dsn(dsn: str | None) -> str:
    """The DSN (conninfo string or URL) as conninfo text with any password removed.

    An unparseable DSN is never echoed (it may hold a password): a UsageError says so.
    """
    from psycopg import conninfo

    if not dsn:
        return ""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception:  # psycopg.ProgrammingError; its message may quote the password
        raise UsageError(
            "the DSN is neither a libpq connection string (key=value ...) nor a "
            "postgresql:// URL (not shown: it may hold a password)"
        ) from None
    params.pop("password", None)
    return conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def describe_connection(info: Any) -> str:
    """``postgresql://host:port/dbname`` from a live connection's info (never a password)."""
    host = info.host or "localhost"
    if host.startswith("/"):  # a unix socket directory
        host = f"[{host}]"
    return f"postgresql://{host}:{info.port}/{info.dbname}"


def _target(dsn: str | None) -> str:
    """What a connection error names: the redacted DSN, or the libpq environment."""
    try:
        shown = redact_dsn(dsn)
    except UsageError:
        shown = ""
    return shown or "the libpq defaults (PGHOST, PGUSER, PGSERVICE, ...)"


# --- filters ----------------------------------------------------------------------------


def parse_time(value: str | dt.datetime | None, parameter: str) -> dt.datetime | None:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware datetime."""
    if value is None or isinstance(value, dt.datetime):
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{parameter} must be an ISO 8601 time like 2026-05-11 or 2026-05-11T08:00:00Z, "
            f"not {value!r}",
            parameter,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def _where(
    zones: Sequence[str] | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    table: str = EVENTS_TABLE,
) -> tuple[str, str, list[Any]]:
    """(WITH prefix, WHERE clause, parameters) selecting the rows of ``table`` to snapshot.

    A zone filter is exact: zones are independent chains. A time window is widened to
    whole chain segments: per zone, every event from the first to the last chain_seq
    whose occurred_at lies in [since, until). chain_seq follows insertion, not
    occurred_at, so a late-arriving event inside the segment may lie outside the window;
    leaving it out would make the snapshot show a gap that is not in the database.
    ``admin_audit_events`` is windowed alike, its rows without a zone (the global chain)
    being one chain of their own; a zone filter leaves that chain out unless it names it
    (``(global)``, ``admin.model.GLOBAL_CHAIN``).
    """
    from .admin.model import GLOBAL_CHAIN

    clauses: list[str] = []
    params: list[Any] = []
    if zones and table != EVENTS_TABLE and GLOBAL_CHAIN in zones:
        clauses.append("(zone_id = ANY(%s) OR zone_id IS NULL)")
        params.append(list(zones))
    elif zones:
        clauses.append("zone_id = ANY(%s)")
        params.append(list(zones))
    if since is None and until is None:
        return "", (" WHERE " + clauses[0]) if clauses else "", params
    if since is not None:
        clauses.append("occurred_at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("occurred_at < %s")
        params.append(until)
    prefix = (
        "WITH _window (w_zone, w_first, w_last) AS ("
        f"SELECT zone_id, min(chain_seq), max(chain_seq) FROM {table} "
        f"WHERE {' AND '.join(clauses)} GROUP BY zone_id) "
    )
    # audit_events.zone_id is NOT NULL: plain equality, which the (zone_id, chain_seq)
    # index serves; the admin table's global chain has a NULL zone
    same = "w_zone = zone_id" if table == EVENTS_TABLE else "w_zone IS NOT DISTINCT FROM zone_id"
    where = (
        f" WHERE EXISTS (SELECT 1 FROM _window WHERE {same} "
        "AND chain_seq BETWEEN w_first AND w_last)"
    )
    return prefix, where, params


# --- the snapshot -----------------------------------------------------------------------


def take_snapshot(
    dsn: str | None,
    out_dir: str,
    zones: Sequence[str] | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    *,
    block_bytes: int = BLOCK_BYTES,
) -> dict[str, Any]:
    """Snapshot ``audit_events`` (and ``audit_ingest_alerts``, ``admin_audit_events`` and
    ``audit_export_watermark`` where the database has them) into ``out_dir``.

    ``dsn`` is a libpq connection string or URL; None or "" uses the libpq environment.
    ``zones`` keeps only those zones. ``since`` (inclusive) and ``until`` (exclusive)
    bound occurred_at; per zone the snapshot holds the whole chain segment from the first
    to the last event inside that window, so it verifies without false gaps (see
    :func:`_where`); admin rows are selected by the same rules. The watermark's
    ``parquet-hourly`` hour is the manifest's ``last_exported_hour`` (null without it).
    Returns the manifest written to ``out_dir/manifest.json``.
    Raises DatabaseError (refused, authentication, missing table, no rights) or
    UsageError (a bad filter, an unusable DSN or output directory).
    """
    import psycopg

    from .engine import connect
    from .ingest import prepare_out_dir, write_snapshot
    from .snapshot import Snapshot
    from .sources import BadLines

    since_at = parse_time(since, "since")
    until_at = parse_time(until, "until")
    if since_at and until_at and since_at >= until_at:
        raise UsageError("since must be earlier than until", ("since", "until"))
    zone_list = [z for z in (zones or []) if z is not None]
    redacted = redact_dsn(dsn)  # validates the DSN before any connection attempt
    created = not os.path.exists(out_dir)
    # Refuse an unusable --out before reading a possibly large table.
    prepare_out_dir(out_dir, [])
    con = connect()
    try:
        pg = _connect(dsn)
        try:
            # DuckDB waits, without running Python's signal handlers, for its scan of the
            # COPY, which waits for the server: an interrupt cancels the statement there
            # and the signal is held meanwhile: raised inside psycopg or the COPY's reader,
            # it could leave psycopg waiting for the end of a COPY forever
            with cancel_on_interrupt(lambda: pg.cancel_safe(timeout=2.0)), \
                    deferred_interrupts():
                source = _read_transaction(pg, con, zone_list, since_at, until_at, block_bytes)
        except psycopg.Error as error:  # including a connection lost mid-read
            raise _database_error(error, describe_connection(pg.info)) from None
        except pa.ArrowInvalid as error:  # COPY output Arrow cannot take (not UTF-8?)
            raise DatabaseError(
                f"{describe_connection(pg.info)}: unreadable rows: {_one_line(error)[:200]}"
            ) from None
        finally:
            _release(pg)
        source["dsn"] = redacted
        source["filters"] = {
            "zones": zone_list or None,
            "since": since_at.isoformat() if since_at else None,
            "until": until_at.isoformat() if until_at else None,
            "window": WINDOW_RULE if since_at or until_at else None,
        }
        inputs = [
            _input(source["events_source"], source.pop("event_rows")),
            _input(source["alerts_source"], source.pop("alert_rows")),
        ]
        admin_rows = source.pop("admin_rows")
        if admin_rows is not None:
            inputs.append(_input(source["admin_source"], admin_rows))
        return write_snapshot(
            Snapshot(con, [], BadLines()),
            out_dir,
            extra_manifest={"inputs": inputs, "source": source,
                            "last_exported_hour": source.pop("last_exported_hour")},
        )
    except BaseException:
        if created and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    finally:
        con.close()


def _input(path: str, rows: int) -> dict[str, Any]:
    """A manifest ``inputs`` entry for a table read live (no file, so no size or hash)."""
    return {"path": path, "shape": POSTGRES_SHAPE, "bytes": None, "sha256": None, "rows": rows}


def _connect(dsn: str | None) -> psycopg.Connection:
    import logging

    import psycopg

    # psycopg logs an error it ignores while a cancelled COPY is ended (an interrupt);
    # with no handler Python would print that warning on stderr beside our one line
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        return psycopg.connect(
            dsn or "",
            fallback_application_name="caracal-forensics snapshot",
            client_encoding="UTF8",
        )
    except psycopg.Error as error:
        raise DatabaseError(
            f"cannot connect to PostgreSQL ({_target(dsn)}): {_one_line(error)}"
        ) from None


def _release(pg: psycopg.Connection) -> None:
    """End the session at once, whatever state the read left it in.

    Read only, the transaction has nothing to commit, and closing the connection ends
    it on the server. A rollback would first wait for a COPY still streaming (the whole
    table) or a statement still running: Ctrl-C hung there, holding an ``idle in
    transaction`` session. So a statement still running (an interrupt, an error mid-COPY)
    is cancelled on the server, and the connection is closed without a rollback.
    """
    import psycopg

    try:
        if pg.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
            pg.cancel_safe(timeout=2.0)
    except BaseException:  # noqa: BLE001 - closing below ends the session anyway
        pass
    finally:
        pg.close()


def _read_transaction(
    pg: psycopg.Connection,
    con: duckdb.DuckDBPyConnection,
    zones: list[str],
    since: dt.datetime | None,
    until: dt.datetime | None,
    block_bytes: int,
) -> dict[str, Any]:
    import psycopg

    where = describe_connection(pg.info)
    pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    pg.read_only = True
    for statement in _SESSION:  # these begin the transaction but take no snapshot yet
        pg.execute(statement)
    # The first query fixes the transaction's snapshot: record what it is.
    version_num = pg.info.server_version
    current_snapshot = (
        "pg_current_snapshot()" if version_num >= 130000 else "txid_current_snapshot()"
    )
    info = pg.execute(
        "SELECT current_setting('server_version'), "
        """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), """
        f"{current_snapshot}::text, current_database(), current_user, "
        "to_regclass(%s)::text, to_regclass(%s)::text, to_regclass(%s)::text, "
        "to_regclass(%s)::text",
        [EVENTS_TABLE, ALERTS_TABLE, ADMIN_TABLE, WATERMARK_TABLE],
    ).fetchall()[0]
    (server_version, snapshot_time, txid_snapshot, database, user, events_rel, alerts_rel,
     admin_rel, watermark_rel) = info
    if events_rel is None:
        raise DatabaseError(
            f"{where}: no table {EVENTS_TABLE} in database {database!r} "
            "(is this Caracal's audit database? check dbname and search_path)"
        )
    columns = _columns(pg, EVENTS_TABLE)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatabaseError(
            f"{where}: {EVENTS_TABLE} has no column {', '.join(missing)}; not a Caracal audit table"
        )
    events_source = f"{where}#{EVENTS_TABLE}"
    event_rows = _load(
        con,
        "events",
        EVENT_SCHEMA,
        _event_batches(pg, columns, zones, since, until, events_source, block_bytes),
    )

    alerts_source = f"{where}#{ALERTS_TABLE}"
    if alerts_rel is not None:
        alert_columns = _columns(pg, ALERTS_TABLE)
        alert_rows = _load(
            con,
            "alerts",
            ALERT_SCHEMA,
            _alert_batches(pg, alert_columns, zones, alerts_source, block_bytes),
        )
    else:
        alert_rows = _load(con, "alerts", ALERT_SCHEMA, iter(()))

    admin_source = f"{where}#{ADMIN_TABLE}"
    admin_rows = None
    if admin_rel is not None:
        admin_rows = _load_admin(con, pg, where, zones, since, until, admin_source, block_bytes)
    from .admin.snapshot import admin_view

    admin_view(con, loaded=admin_rows is not None)  # what ingest writes (empty: no table)
    watermark = _watermark(pg, where) if watermark_rel is not None else {}
    pg.rollback()  # read only: nothing to commit
    return {
        "kind": "postgresql",
        "connection": where,
        "database": database,
        "user": user,
        "server_version": server_version,
        "snapshot_time": snapshot_time,
        "transaction_snapshot": txid_snapshot,
        "isolation": "repeatable read, read only",
        "events_source": events_source,
        "alerts_source": alerts_source,
        "alerts_table": "present" if alerts_rel is not None else "absent",
        "admin_source": admin_source,
        "admin_table": "present" if admin_rel is not None else "absent",
        "watermark_table": "present" if watermark_rel is not None else "absent",
        "export_watermark": watermark,
        "last_exported_hour": watermark.get(WATERMARK_NAME),
        "event_rows": event_rows,
        "alert_rows": alert_rows,
        "admin_rows": admin_rows,
    }


def _load_admin(
    con: duckdb.DuckDBPyConnection,
    pg: psycopg.Connection,
    where: str,
    zones: list[str],
    since: dt.datetime | None,
    until: dt.datetime | None,
    source: str,
    block_bytes: int,
) -> int:
    """Read admin_audit_events (FORMAT.md 8) into the table admin_snapshot.LOADED_TABLE."""
    from .admin.model import ADMIN_SCHEMA
    from .admin.snapshot import LOADED_TABLE

    columns = _columns(pg, ADMIN_TABLE)
    missing = [c for c in ADMIN_REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatabaseError(
            f"{where}: {ADMIN_TABLE} has no column {', '.join(missing)}; not Caracal's "
            "admin audit table"
        )
    return _load(con, LOADED_TABLE, ADMIN_SCHEMA,
                 _admin_batches(pg, columns, zones, since, until, source, block_bytes))


def _admin_batches(
    pg: psycopg.Connection,
    columns: list[str],
    zones: list[str],
    since: dt.datetime | None,
    until: dt.datetime | None,
    source: str,
    block_bytes: int,
) -> Iterator[pa.RecordBatch]:
    """The admin rows as batches of ADMIN_SCHEMA: the table's columns as ``_select``
    reads events (jsonb as its ``::text``, times as UTC text), and what the readers of
    the dumps derive (``signed``, ``change_kind``, ``changed_fields``, the absent
    columns) computed by the server from the same row, as ``admin.read`` computes them."""
    from psycopg import sql

    from .admin.model import ABSENT_FIELD, ADMIN_SCHEMA, TABLE_COLUMNS

    present = [n for n in TABLE_COLUMNS if n in columns]
    absent = ",".join(n for n in TABLE_COLUMNS if n not in columns) or None
    select = []
    types: dict[str, pa.DataType] = {}
    for name in present:
        ident = sql.Identifier(name).as_string(pg)
        if name == "occurred_at":
            select.append(ident)  # printed in the session's UTC / ISO settings
            types[name] = pa.string()
        else:
            cast = {"chain_seq": "bigint", "status_code": "integer"}.get(name, "text")
            select.append(f"{ident}::{cast}")
            types[name] = ADMIN_SCHEMA.field(name).type
    select.append("(chain_hmac IS NOT NULL)::integer" if "chain_hmac" in present else "NULL")
    payload = "payload_json::jsonb" if "payload_json" in present else "NULL::jsonb"
    select.append(f"CASE WHEN jsonb_typeof({payload} -> 'change_kind') = 'string' "
                  f"THEN {payload} ->> 'change_kind' END")
    select.append(
        "(SELECT string_agg(CASE WHEN jsonb_typeof(e) = 'string' THEN e #>> '{}' "
        "ELSE e::text END, ' ' ORDER BY n) FROM jsonb_array_elements(CASE WHEN "
        f"jsonb_typeof({payload} -> 'changed_fields') = 'array' THEN {payload} -> "
        "'changed_fields' END) WITH ORDINALITY AS f(e, n))")
    types.update(signed=pa.bool_(), change_kind=pa.string(), changed_fields=pa.string())
    prefix, where, params = _where(zones, since, until, ADMIN_TABLE)
    query = prefix + f"SELECT {', '.join(select)} FROM {ADMIN_TABLE}{where}"
    derived = {ABSENT_FIELD: lambda n, first: pa.array([absent] * n, pa.string())}
    yield from _batches(pg, query, params, types, ADMIN_SCHEMA, source, derived, block_bytes)


def _watermark(pg: psycopg.Connection, where: str) -> dict[str, str | None]:
    """audit_export_watermark as {name: last exported hour}, each hour as ISO 8601 UTC
    (``2026-05-11T10:00:00Z``) when it is a timestamp, else as the table's text."""
    kinds = dict(pg.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [WATERMARK_TABLE],
    ).fetchall())
    if "last_exported_hour" not in kinds:
        raise DatabaseError(f"{where}: {WATERMARK_TABLE} has no column last_exported_hour")
    hour = {
        "timestamp with time zone": (
            """to_char(last_exported_hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""),
        "timestamp without time zone": (
            """to_char(last_exported_hour, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""),
    }.get(kinds["last_exported_hour"], "last_exported_hour::text")
    name = "name::text" if "name" in kinds else f"'{WATERMARK_NAME}'"
    rows = pg.execute(f"SELECT {name}, {hour} FROM {WATERMARK_TABLE} ORDER BY 1").fetchall()
    return {str(n): h for n, h in rows}


def _columns(pg: psycopg.Connection, table: str) -> list[str]:
    rows = pg.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _event_batches(
    pg: psycopg.Connection,
    columns: list[str],
    zones: list[str],
    since: dt.datetime | None,
    until: dt.datetime | None,
    source: str,
    block_bytes: int,
) -> Iterator[pa.RecordBatch]:
    wanted = [n for n in EVENT_SCHEMA.names if n not in _DERIVED]
    present = [n for n in wanted if n in columns]
    absent = ",".join(n for n in wanted if n not in columns) or None
    prefix, where, params = _where(zones, since, until)
    # No ORDER BY: a sort of the whole table would spill to temporary files on the
    # (production) server; the snapshot writer sorts anyway. source_line is the row's
    # position in this read.
    order: list[str] = []
    query = prefix + _select(pg, EVENTS_TABLE, present, _EVENT_TIMESTAMPS, where, order)
    types = {n: (pa.int64() if n == "chain_seq" else pa.string()) for n in present}
    derived = {
        PRECISION_FIELD: lambda n, first: pa.array([6] * n, pa.int8()),
        ABSENT_FIELD: lambda n, first: pa.array([absent] * n, pa.string()),
    }
    yield from _batches(pg, query, params, types, EVENT_SCHEMA, source, derived, block_bytes)


def _alert_batches(
    pg: psycopg.Connection,
    columns: list[str],
    zones: list[str],
    source: str,
    block_bytes: int,
) -> Iterator[pa.RecordBatch]:
    present = [c for c in ALERT_COLUMNS if c in columns]
    if not present:
        return
    where, params = "", []
    if zones and "zone_id" in columns:
        where, params = " WHERE zone_id = ANY(%s)", [list(zones)]
    order = [c for c in ("observed_at", "id") if c in columns]
    query = _select(pg, ALERTS_TABLE, present, ("observed_at",), where, order)
    types = {n: pa.string() for n in present}
    yield from _batches(pg, query, params, types, ALERT_SCHEMA, source, {}, block_bytes)


def _select(
    pg: psycopg.Connection,
    table: str,
    names: list[str],
    timestamps: tuple[str, ...],
    where: str,
    order: list[str],
) -> str:
    """The SELECT: text columns as ``::text`` (jsonb's exact rendering), times as UTC text."""
    from psycopg import sql

    select = []
    for name in names:
        ident = sql.Identifier(name).as_string(pg)
        if name in timestamps:
            select.append(ident)  # printed in the session's UTC / ISO settings
        elif name == "chain_seq":
            select.append(f"{ident}::bigint")
        else:
            select.append(f"{ident}::text")
    ordering = ", ".join(sql.Identifier(n).as_string(pg) for n in order)
    return f"SELECT {', '.join(select)} FROM {table}{where}" + (
        f" ORDER BY {ordering}" if ordering else ""
    )


def _batches(
    pg: psycopg.Connection,
    query: str,
    params: list[Any],
    types: dict[str, pa.DataType],
    schema: pa.Schema,
    source: str,
    derived: dict[str, Any],
    block_bytes: int,
) -> Iterator[pa.RecordBatch]:
    """The query's rows as record batches of ``schema``, with provenance filled in."""
    line = 1
    for batch in _copy_batches(pg, query, params, types, block_bytes):
        n = batch.num_rows
        arrays = []
        for field in schema:
            name = field.name
            if name in types:
                column = batch.column(name)
                if field.type == UTC_MICROS:
                    column = _timestamps(column, source, name)
                arrays.append(column)
            elif name in derived:
                arrays.append(derived[name](n, line))
            elif name == "source_file":
                arrays.append(constant(source, n, pa.string()))
            elif name == "source_line":
                arrays.append(lines_from(line, n))
            elif name == "source_shape":
                arrays.append(constant(str(POSTGRES_SHAPE), n, pa.string()))
            else:
                arrays.append(pa.nulls(n, field.type))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        line += n


def _copy_batches(
    pg: psycopg.Connection,
    query: str,
    params: list[Any],
    types: dict[str, pa.DataType],
    block_bytes: int,
) -> Iterator[pa.RecordBatch]:
    """``COPY (query) TO STDOUT`` as CSV, parsed by Arrow block by block.

    COPY streams rows without a cursor round trip per batch and Arrow parses them in
    C++. COPY takes no server-side parameters, so psycopg binds ``params`` client-side,
    quoting each as a literal (never string formatting). In COPY's CSV, NULL is an empty
    unquoted field and an empty string is ``""``: Arrow is told exactly that.
    """
    import pyarrow.csv as pacsv

    names = list(types)
    with pg.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params or None) as copy:
            stream = _CopyStream(copy)
            if stream.at_end():
                return  # Arrow refuses an empty CSV; no rows is no batches
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    column_names=names, block_size=block_bytes, use_threads=True
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from reader


class _CopyStream(io.RawIOBase):
    """A read-only file over a psycopg COPY TO (which hands out one row at a time)."""

    def __init__(self, copy: Any) -> None:
        super().__init__()
        self._copy = copy
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def at_end(self) -> bool:
        """Whether the COPY produced nothing (more): reads ahead one row if needed."""
        if not self._buffer and not self._done:
            row = self._copy.read()
            if row:
                self._buffer += row
            else:
                self._done = True
        return not self._buffer and self._done

    def readinto(self, target: Any) -> int:
        wanted = len(target)
        while len(self._buffer) < wanted and not self._done:
            row = self._copy.read()
            if not row:
                self._done = True
                break
            self._buffer += row
        n = min(wanted, len(self._buffer))
        target[:n] = self._buffer[:n]
        del self._buffer[:n]
        return n


def _timestamps(array: pa.Array, source: str, field: str) -> pa.Array:
    try:
        return pc.cast(array, UTC_MICROS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = next((v for v in array.to_pylist() if v is not None and not _parses(v)), "?")
        raise DatabaseError(
            f"{source}: {field} {bad!r} is outside the range this toolkit stores "
            "(infinity or a year beyond 9999?)"
        ) from None


def _parses(value: str) -> bool:
    try:
        pc.cast(pa.array([value]), UTC_MICROS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _load(
    con: duckdb.DuckDBPyConnection,
    table: str,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
) -> int:
    """Stream ``batches`` into a new DuckDB table (which spills to disk); the row count.

    A reader error (psycopg's, Arrow's) is captured and re-raised as itself, not as
    DuckDB's wrapper around it.
    """
    import duckdb

    check_interrupt()  # between two statements: a held interrupt ends the read here
    failure: list[BaseException] = []
    rows = [0]

    def guarded() -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                rows[0] += batch.num_rows
                yield batch
        except BaseException as error:  # re-raised below, outside DuckDB
            failure.append(error)

    reader = pa.RecordBatchReader.from_batches(schema, guarded())
    con.register("_incoming", reader)
    try:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _incoming").fetchall()
    except duckdb.Error:
        if not failure:
            raise
    finally:
        con.unregister("_incoming")
    if failure:
        raise failure[0]
    return rows[0]


# --- errors -----------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    """libpq's (multi-line) message as one line, without psycopg's and libpq's prefixes."""
    text = " ".join((str(error).strip() or type(error).__name__).split())
    text = text.removeprefix("connection failed: ")
    if "FATAL: " in text:  # the server's own reason says it best
        text = text.rsplit("FATAL: ", 1)[1].strip()
    return text


def _database_error(error: BaseException, where: str) -> DatabaseError:
    """A psycopg error met while reading, as one clear line naming what went wrong."""
    import psycopg
    from psycopg import errors as pgerrors

    diag = getattr(error, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or _one_line(error)
    if isinstance(error, pgerrors.InsufficientPrivilege):
        return DatabaseError(
            f"{where}: {primary} (the role needs SELECT on {EVENTS_TABLE} and {ALERTS_TABLE}, "
            f"and on {ADMIN_TABLE} and {WATERMARK_TABLE} where they exist)"
        )
    if isinstance(error, pgerrors.UndefinedTable):
        return DatabaseError(f"{where}: no such table: {primary}")
    if isinstance(error, pgerrors.UndefinedColumn):
        return DatabaseError(f"{where}: {primary}; not a Caracal audit table")
    if isinstance(error, psycopg.OperationalError):
        return DatabaseError(f"{where}: connection lost while reading: {primary}")
    return DatabaseError(f"{where}: {primary}")
