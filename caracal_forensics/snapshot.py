"""Snapshot: the sources of one investigation, opened as a DuckDB view ``events``.

Every command and the notebook API start here. Canonical snapshot directories are read
by DuckDB straight from their Parquet files (with row-group skipping); every other shape
is streamed through its reader into a spool of Parquet files in a private temporary
directory (``Spool``), which DuckDB then reads as the view ``loaded_events``; memory
stays flat as inputs grow. The inputs' SHA-256 is computed on a background thread
meanwhile. Spooled by zone, each zone's file is encoded as a snapshot event file: a zone
whose rows arrived in chain order (every export writes them so, give or take a few late
rows) is ingested by moving its file into the snapshot, without a sort.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from .errors import ForensicsError, UsageError
from .model import ALERT_SCHEMA, EVENT_SCHEMA, Shape
from .sources import BadLines, Fingerprints, InputFile, read_alerts, read_inputs, scan

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
    from . import tempdirs

    con = duckdb.connect(":memory:")
    # named and locked so that a run after a kill -9 finds and removes it (tempdirs.py)
    spill = tempdirs.make()
    # the spill directory goes with the connection (or at exit), not left behind in /tmp
    weakref.finalize(con, tempdirs.remove, spill)
    con.execute(f"SET memory_limit = '{_memory_limit()}'")
    # bound, not pasted: $TMPDIR may hold a quote
    con.execute("SET temp_directory = $path", {"path": spill})
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


def open_sources(paths: list[str], on_bad_line: str = "error", *,
                 by_zone: bool = False, exclude: Sequence[str] = ()) -> Snapshot:
    """Scan, detect and load the inputs; the result has a view ``events`` and ``alerts``.

    ``by_zone`` spools the loaded events one file per zone, encoded as a snapshot's event
    files, so that ``ingest`` moves the zones that arrived in order into the snapshot; a
    reader that will not ingest (tail, explain, queries, the notebook) spools them as they
    come, which costs less (1M JSON lines events: opened in 2.6 s against 4.0 s)."""
    if on_bad_line not in ("error", "skip"):
        raise UsageError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    inputs = scan(paths, fingerprint=False, exclude=exclude)
    if not inputs:
        raise UsageError(f"no export files found in {', '.join(paths)}")
    # SHA-256 of the inputs on another thread while they are read (hashlib releases the GIL)
    hashing = Fingerprints(inputs)
    try:
        bad = BadLines(skip=on_bad_line == "skip")
        con = connect()
        event_inputs = [i for i in inputs if not i.holds_alerts]
        alert_inputs = [i for i in inputs if i.holds_alerts]
        spool = _load_events(
            con, [i for i in event_inputs if i.shape != Shape.SNAPSHOT], bad, by_zone
        )
        _load(con, "loaded_alerts", ALERT_SCHEMA, alert_inputs, read_alerts, bad)
        snapshots = [i for i in event_inputs if i.shape == Shape.SNAPSHOT]
        events_sql = _create_views(con, snapshots, spool)
        hashing.wait()
    finally:
        hashing.cancel()
    from .queries import ensure_views

    ensure_views(con, known_unique=_known_unique(event_inputs))
    snap = Snapshot(con, inputs, bad)
    snap._layout = Layout(spool, snapshots, events_sql, list(paths), on_bad_line)
    snap._layout.exclude = tuple(exclude)  # what scan left out, to leave out again
    return snap


def _known_unique(event_inputs: list[InputFile]) -> bool:
    """One canonical snapshot whose manifest counted no duplicate event."""
    if len(event_inputs) != 1 or event_inputs[0].shape != Shape.SNAPSHOT:
        return False
    from .sources.snapshot_dir import load_manifest

    manifest = load_manifest(event_inputs[0].path)
    # the manifest's count holds only for the events it records (a part copied since
    # would hold each of its events twice): verify says which disagree
    return manifest.get("duplicate_events") == 0 and manifest.get("events") == event_inputs[0].rows


def _load(con, table: str, schema: pa.Schema, inputs: list[InputFile], read, bad: BadLines) -> None:
    """Stream every input's batches into one DuckDB table, keeping the reader's error typed."""
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from read_inputs(inputs, bad, read)
        except BaseException as error:  # re-raised below, outside DuckDB
            failure.append(error)

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


#: Loaded events are spooled, one uncompressed Parquet file per zone (in the connection's
#: spill directory), instead of being inserted into a DuckDB table: writing them costs
#: less than DuckDB's insert, holds no memory, and a zone whose rows arrive in chain order
#: (as every export writes them) is written into the canonical snapshot without a sort.
#: Zones beyond this many share one file (then ``ingest`` sorts, as for unordered input).
SPOOL_ZONE_FILES = 64
#: Rows gathered before they are handed to the spool's thread, and rows of one zone
#: gathered before they are written out (in arrival order) ... Each chunk is held three
#: times over (gathering, handed over, split by zone): 10M events from CSV peaked at
#: 875 MiB with 32,768 against 1,003 MiB with 65,536, in the same time.
SPOOL_ROWS = 32_768
#: ... in row groups of this many rows (a whole number of vectors), when the spool is
#: one file in arrival order (``by_zone=False``) ...
SPOOL_GROUP_ROWS = 16_384
#: ... and the bytes all zones may hold before every zone is written out.
SPOOL_BYTES = 48 << 20
#: The same when each zone's file is a snapshot event file (``by_zone=True``): a zone
#: holds a whole row group (``ingest.ROW_GROUP_ROWS``, ~50 MB of events) before it is
#: encoded, so a few zones may hold more; beyond, every zone writes a shorter row group.
ZONE_SPOOL_BYTES = 192 << 20
#: DuckDB's vector: the unit in which it reads and batches rows.
VECTOR_ROWS = 2048
#: Rows of a zone held back unwritten (while at most 4 zones share the budget), so that
#: rows arriving a little late (the hourly OCSF files overlap by the events ingested late)
#: are still put in their place; a row later than that makes ``ingest`` sort instead.
REORDER_ROWS = 16_384
#: The canonical order's keys after zone_id (ingest.SORT_ORDER), all ascending, NULLs last.
_ORDER_KEYS = ("chain_seq", "occurred_at", "source_file", "source_line")


class _Zone:
    __slots__ = ("path", "writer", "pending", "rows", "last", "written", "ordered", "encoded")

    def __init__(self, path: str):
        self.path = path
        self.writer: Any = None
        self.pending: list[pa.Table] = []  # rows not yet written (in order while ordered)
        self.rows = 0
        self.last: pa.Table | None = None  # key columns of the last pending row
        self.written: pa.Table | None = None  # key columns of the last row written
        self.ordered = True
        self.encoded: Any = None  # the Future of the zone's last row group handed over


class Spool:
    """The loaded events on disk: per zone, in arrival order, with whether that order is
    the canonical one (chain_seq, occurred_at, source_file, source_line ascending).

    Batches are gathered into chunks of SPOOL_ROWS and handed to one worker thread, which
    groups each chunk by zone, checks the order and writes (Arrow and Parquet release the
    GIL, so this overlaps the reading); one worker keeps every zone's rows in order.

    ``by_zone``: each zone's file is a snapshot event file (``ingest.event_file_writer``:
    zstd, dictionaries, bloom filters) in row groups of ``group_rows``, encoded on
    threads of their own (ENCODERS); a zone that arrived in order is then ingested as it
    is, without a sort or a second encoding. Else the events go to one uncompressed file
    as they come, which costs the least to write and to read back.
    """

    #: chunks handed over but not yet written (bounds the memory)
    IN_FLIGHT = 1
    #: threads encoding row groups (of different zones), and row groups handed to them
    #: but not yet written (each ~50 MB of events; 1M events: two threads halve the
    #: encoding of what the zones still hold when reading ends, 0.55 s)
    ENCODERS = 2

    def __init__(self, directory: str, by_zone: bool = True, group_rows: int | None = None):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        from .ingest import ROW_GROUP_ROWS

        self.directory = directory
        #: one file per zone (else one file, in arrival order: no split, no reordering)
        self.by_zone = by_zone
        #: rows of a row group: the snapshot's (by zone), else the spool's own
        self.group_rows = group_rows or (ROW_GROUP_ROWS if by_zone else SPOOL_GROUP_ROWS)
        self.zones: dict[str | None, _Zone] = {}  # None: the shared file (no zone of its own)
        self.pending_bytes = 0
        self.rows = 0
        self._gathered: list[pa.RecordBatch] = []
        self._gathered_rows = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._futures: deque = deque()
        self._encoder = (
            ThreadPoolExecutor(self.ENCODERS, thread_name_prefix="spool-encode")
            if by_zone
            else None
        )
        self._encoding: deque = deque()

    @property
    def files(self) -> list[str]:
        return [zone.path for zone in self.zones.values() if zone.writer is not None]

    def ordered_files(self) -> list[str] | None:
        """Every file in canonical order (by zone_id), when concatenating them is the
        canonical order of all the loaded events; None when they need a sort."""
        if None in self.zones or not all(z.ordered for z in self.zones.values()):
            return None
        names = sorted(self.zones, key=lambda name: name.encode("utf-8"))  # type: ignore[union-attr]
        return [self.zones[name].path for name in names if self.zones[name].writer is not None]

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self.rows += batch.num_rows
        self._gathered.append(batch)
        self._gathered_rows += batch.num_rows
        if self._gathered_rows >= SPOOL_ROWS:
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._gathered:
            return
        table = pa.Table.from_batches(self._gathered, EVENT_SCHEMA)
        self._gathered, self._gathered_rows = [], 0
        split = self._split if self.by_zone else self._shared
        self._futures.append(self._pool.submit(split, table))
        while len(self._futures) > self.IN_FLIGHT:
            self._futures.popleft().result()

    def close(self) -> None:
        """Write out everything; the files are complete when this returns."""
        try:
            self._hand_over()
            while self._futures:
                self._futures.popleft().result()
            for zone in self.zones.values():
                self._flush(zone, final=True)
            while self._encoding:
                self._encoding.popleft().result()
        finally:
            for future in (*self._futures, *self._encoding):
                future.cancel()
            self._pool.shutdown(wait=True)
            if self._encoder is not None:
                self._encoder.shutdown(wait=True)
            for zone in self.zones.values():
                if zone.writer is not None:
                    zone.writer.close()

    def abort(self) -> None:
        """Stop after an error: nothing more is written, the worker is joined."""
        for future in (*self._futures, *self._encoding):
            future.cancel()
        self._futures.clear()
        self._encoding.clear()
        self._pool.shutdown(wait=True)
        if self._encoder is not None:
            self._encoder.shutdown(wait=True)
        for zone in self.zones.values():
            if zone.writer is not None:
                try:
                    zone.writer.close()
                except Exception:  # noqa: BLE001 - the first error is the one reported
                    pass
                zone.writer = None

    def _split(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        zone_ids = table.column("zone_id")
        counts = pc.value_counts(zone_ids)
        values = counts.field("values").to_pylist()
        if len(values) == 1:
            self._take(values[0], table)
            return
        # each zone's rows, in arrival order, in buffers of their own: rows a zone holds
        # back (see _flush) keep no other zone's rows in memory
        for value in sorted(values, key=lambda v: (v is None, (v or "").encode("utf-8"))):
            rows = pc.is_null(zone_ids) if value is None else pc.equal(zone_ids, value)
            self._take(value, table.filter(rows))

    def _shared(self, table: pa.Table) -> None:
        self._take(None, table)

    def _take(self, zone_id: str | None, table: pa.Table) -> None:
        key = zone_id if zone_id in self.zones else None
        if zone_id is not None and zone_id not in self.zones:
            if len([k for k in self.zones if k is not None]) < SPOOL_ZONE_FILES:
                key = zone_id
        zone = self.zones.get(key)
        if zone is None:
            zone = self.zones[key] = _Zone(
                os.path.join(self.directory, f"zone-{len(self.zones):05d}.parquet")
            )
        if key is None:
            zone.ordered = False
        # bytes added: counting all pending rows again each time (slices among them) took
        # 0.3 s of the spool's thread on 1M events
        added = table.nbytes
        if zone.ordered:
            keys = table.select(list(_ORDER_KEYS)).combine_chunks()
            if _in_order(keys, zone.last):
                zone.pending.append(table)
                zone.last = _compact(keys.slice(keys.num_rows - 1))
            else:
                held = _nbytes(zone.pending)
                self._reorder(zone, table)
                added = _nbytes(zone.pending) - held
        else:
            zone.pending.append(table)
        zone.rows += table.num_rows
        self.pending_bytes += added
        keep = self._keep() if zone.ordered else 0  # only an ordered zone reorders
        if self.by_zone:
            if zone.rows >= keep + self.group_rows:  # whole row groups
                self._flush(zone, keep, self.group_rows)
            budget = ZONE_SPOOL_BYTES
        else:
            if zone.rows >= keep + SPOOL_ROWS:
                self._flush(zone, keep)
            budget = SPOOL_BYTES
        if self.pending_bytes > budget:
            for other in self.zones.values():
                self._flush(other, keep)

    def _keep(self) -> int:
        """Rows each zone holds back for late rows (the budget shared beyond 4 zones)."""
        rows = REORDER_ROWS * 4 // max(4, len(self.zones))
        return rows - rows % VECTOR_ROWS

    def _reorder(self, zone: _Zone, table: pa.Table) -> None:
        """Put ``table``'s rows in their place among the zone's pending (sorted) rows;
        the zone is no longer ordered when one belongs before a row already written."""
        import pyarrow.compute as pc

        held = pa.concat_tables(zone.pending) if zone.pending else table.slice(0, 0)
        # the pending rows before the earliest new chain_seq stay where they are
        first = pc.min(table.column("chain_seq"))
        if first.is_valid:
            before = pc.sum(pc.less(held.column("chain_seq"), first)).as_py() or 0
        else:
            before = held.num_rows - held.column("chain_seq").null_count
        merged = pa.concat_tables([held.slice(before), table])
        order = pc.sort_indices(
            merged, sort_keys=[(name, "ascending", "at_end") for name in _ORDER_KEYS]
        )
        merged = merged.take(order)
        keys = merged.select(list(_ORDER_KEYS)).combine_chunks()
        if before == 0 and zone.written is not None and not _in_order(keys, zone.written):
            zone.ordered = False
            zone.pending.append(table)
            return
        zone.pending = [held.slice(0, before), merged] if before else [merged]
        zone.last = _compact(keys.slice(keys.num_rows - 1))

    def _flush(self, zone: _Zone, keep: int = 0, unit: int = VECTOR_ROWS,
               final: bool = False) -> None:
        """Write the zone's pending rows but the last ``keep``: a whole number of ``unit``
        rows (DuckDB's vectors, or whole row groups) unless ``final``, the rest staying
        pending, so that DuckDB scanning the files (the sort of ``ingest``, every other
        command) gets full vectors."""
        rows = max(0, zone.rows - keep)
        if not final:
            rows -= rows % unit
        if not rows:
            return
        if zone.writer is None:
            zone.writer = self._writer(zone.path)
        table = pa.concat_tables(zone.pending)
        self.pending_bytes -= _nbytes(zone.pending)
        written = table.slice(0, rows)
        zone.written = _compact(written.select(list(_ORDER_KEYS)).slice(rows - 1))
        if self._encoder is None:
            zone.writer.write_table(written, row_group_size=self.group_rows)
        else:
            # encoding (zstd, dictionaries) takes as long as reading: on threads of its
            # own, a zone's row groups one after the other
            if zone.encoded is not None:
                zone.encoded.result()
            zone.encoded = self._encoder.submit(zone.writer.write_table, written, self.group_rows)
            self._encoding.append(zone.encoded)
            while len(self._encoding) > self.ENCODERS:
                self._encoding.popleft().result()
        rest = table.slice(rows)
        if rest.get_total_buffer_size() > 2 * rest.nbytes:
            # a copy, as the slice would keep much more of the chunk it came from in
            # memory; a zone's own rows are not copied (1M events in 4 zones: every row
            # was copied once more here, 1.4 s of the spool's thread)
            rest = _compact(rest)
        zone.pending = [rest] if rest.num_rows else []
        zone.rows = rest.num_rows
        self.pending_bytes += rest.nbytes


    def _writer(self, path: str) -> Any:
        import pyarrow.parquet as pq

        if self.by_zone:
            from .ingest import event_file_writer

            return event_file_writer(path, self.group_rows)
        return pq.ParquetWriter(
            path,
            EVENT_SCHEMA,
            compression="none",
            use_dictionary=False,
            write_statistics=True,  # null counts: DuckDB keeps NOT NULL columns required
            store_schema=False,
        )


def _compact(table: pa.Table) -> pa.Table:
    """The rows of ``table`` in buffers of their own (not a view of a larger chunk)."""
    return table.take(pa.array(range(table.num_rows), pa.int64()))


def _nbytes(tables: list[pa.Table]) -> int:
    return sum(table.nbytes for table in tables)


def _in_order(keys: pa.Table, last: pa.Table | None) -> bool:
    """Whether the rows of ``keys`` (after ``last``) ascend by its columns, NULLs last."""
    import pyarrow.compute as pc

    if last is not None:
        keys = pa.concat_tables([last, keys]).combine_chunks()
    rows = keys.num_rows
    if rows < 2:
        return True
    undecided = None  # pairs of neighbours equal on every key so far
    for column in keys.columns:
        a, b = column.slice(0, rows - 1), column.slice(1)  # neighbours: a comes first
        a_null, b_null = pc.is_null(a), pc.is_null(b)
        before = pc.or_(pc.and_(pc.invert(a_null), b_null), pc.fill_null(pc.less(a, b), False))
        after = pc.or_(pc.and_(a_null, pc.invert(b_null)), pc.fill_null(pc.greater(a, b), False))
        wrong = after if undecided is None else pc.and_(undecided, after)
        if pc.any(wrong).as_py():
            return False
        tied = pc.invert(pc.or_(before, after))
        undecided = tied if undecided is None else pc.and_(undecided, tied)
        if not pc.any(undecided).as_py():
            return True
    return True  # equal keys: any order of them is the canonical one


def _load_events(
    con, inputs: list[InputFile], bad: BadLines, by_zone: bool = True
) -> Spool | None:
    """Read every event input into the spool; None when there is none."""
    if not inputs:
        return None
    spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    directory = tempfile.mkdtemp(prefix="loaded-", dir=spill)
    spool = Spool(directory, by_zone)
    try:
        try:
            for batch in read_inputs(inputs, bad):
                spool.add(batch)
        except BaseException:
            spool.abort()
            raise
        spool.close()
    except OSError as error:  # the spool's own files (the readers raise InputError)
        raise ForensicsError(
            f"{error.filename or directory}: cannot write temporary data: {error.strerror or error}"
        ) from None
    finally:
        # hand the readers' freed buffers back to the system before DuckDB takes its share
        pa.default_memory_pool().release_unused()
    return spool


class Layout:
    """How ``open_sources`` laid out the events, and what it opened, for ``ingest``'s
    shortcuts."""

    def __init__(self, spool: Spool | None, snapshots: list[InputFile], events_sql: str | None,
                 sources: list[str], on_bad_line: str):
        self.spool = spool
        self.snapshots = snapshots
        self.events_sql = events_sql
        #: what ``open_sources`` was given, to open the same again (``ingest._by_zone``)
        self.sources = sources
        self.on_bad_line = on_bad_line
        self.exclude: tuple[str, ...] = ()


def _size_bytes(value: str) -> float:
    """Bytes of a memory limit such as 1GB, 512MB or 1.5GiB (as _memory_limit checks)."""
    text = value.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    units = {"": 1, "B": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    unit = text[len(number) :].rstrip("B")
    if unit.endswith("I"):
        return float(number) * 1024 ** ("KMGT".index(unit[0]) + 1)
    return float(number) * units.get(unit, 1)


def _create_views(
    con: duckdb.DuckDBPyConnection, snapshots: list[InputFile], spool: Spool | None = None
) -> str:
    """Create the views ``events`` and ``alerts``; returns ``events``' SQL as DuckDB keeps it."""
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
    if spool is not None and spool.files:
        con.execute("CREATE VIEW loaded_events AS " + _union_files(spool.files))
    else:
        con.register("_empty_events", EVENT_SCHEMA.empty_table())
        try:
            con.execute("CREATE TABLE loaded_events AS SELECT * FROM _empty_events")
        finally:
            con.unregister("_empty_events")
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


def view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The SQL of view ``name`` as DuckDB keeps it (to notice a view replaced later)."""
    rows = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = $name AND NOT internal",
        {"name": name},
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def _union_files(files: list[str]) -> str:
    """SELECT of the files' rows, file after file (in order when the connection preserves
    insertion order). ``union_by_name`` makes DuckDB read every file's statistics, so a
    column without NULLs stays NOT NULL (required) when written out again."""
    return f"SELECT * FROM read_parquet({_sql_list(files)}, union_by_name = true)"


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _confine(con: duckdb.DuckDBPyConnection, files: list[str], directories: list[str]) -> None:
    """Let ``con`` read and write only ``files`` and under ``directories``, for good."""
    paths = [name for path in files for name in (path, os.path.abspath(path))]
    con.execute(f"SET allowed_directories = {_sql_list(directories)}")
    if paths:
        con.execute(f"SET allowed_paths = {_sql_list(paths)}")
    con.execute("SET enable_external_access = false")


#: What a confined twin copies of a snapshot's connection, in order: views by their SQL,
#: tables (the loaded alerts, an empty loaded_events) by their rows.
_TWIN_RELATIONS = ("loaded_events", "loaded_alerts", "events", "alerts", "unique_events")


def _confined_twin(con: duckdb.DuckDBPyConnection, files: list[str]) -> duckdb.DuckDBPyConnection:
    """A new connection holding ``con``'s views over the same files, confined to them
    (DuckDB's file access is per database, and confining ``con`` itself is for good)."""
    views = dict(con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND view_name IN "
        "$names", {"names": list(_TWIN_RELATIONS)}).fetchall())
    twin = connect()
    for name in _TWIN_RELATIONS:
        if name in views:
            twin.execute(views[name])
        elif name != "unique_events":  # a table of con's (small: alerts, or empty events)
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
    _confine(twin, files, [spill])
    return twin


class Snapshot:
    """The opened sources of one investigation (the notebook's entry point).

    ``duckdb`` is the connection, with the views ``events`` (model.EVENT_SCHEMA: every row
    of every input), ``unique_events`` (one row per event when a directory holds several
    shapes of one export: what tail, explain, stats and queries read) and ``alerts``;
    ``inputs`` lists what was examined with sizes and SHA-256.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: list[InputFile], bad: BadLines):
        self._con = con
        self._layout: Layout | None = None
        self._confined: duckdb.DuckDBPyConnection | None = None  # see confined_duckdb
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
        """Run SQL over the views ``events`` and ``alerts``; the result as a polars frame.
        Statements that can write files (COPY, EXPORT, ATTACH ...) are refused; ``duckdb``
        is the connection itself, for anything else."""
        from .queries import refused_statement

        try:
            refused = refused_statement(self._con, query)
            if refused:
                raise ForensicsError(f"SQL error: {refused}")
            return self._con.sql(query, params=params).pl()
        except duckdb.Error as error:
            raise ForensicsError(f"SQL error: {str(error).splitlines()[0]}") from None

    def confine(self) -> None:
        """From now on let DuckDB read only the files behind ``events`` and ``alerts`` (and
        spill to its temporary directory): SQL a user types (``sql``) can then read no
        other file, such as a key file beside the export, and write none. For good: DuckDB
        cannot lift it on a running connection (so ``ingest`` and writing results out
        through ``duckdb`` are refused afterwards). Calling it again does nothing."""
        from .queries import ensure_views, is_confined

        if is_confined(self._con):
            return
        ensure_views(self._con)  # unique_events reads the data once: before, not after
        spill = self._con.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
        _confine(self._con, self._data_files(), [spill])

    def _data_files(self) -> list[str]:
        """The files DuckDB reads behind the views: snapshots' parts and alerts, and the
        spool of the loaded events."""
        from .sources.snapshot_dir import alerts_file, event_files

        files: list[str] = []
        for source in self.inputs:
            if source.shape == Shape.SNAPSHOT:
                alerts = alerts_file(source.path)
                files += [*event_files(source.path), *([alerts] if alerts else [])]
        layout = self._layout
        if layout is not None and layout.spool is not None:
            files += layout.spool.files
        return files

    def confined_duckdb(self) -> duckdb.DuckDBPyConnection:
        """A connection with the same views (``events``, ``unique_events``, ``alerts``)
        that reads only their files (see :meth:`confine`), for query text from outside the
        toolkit (``query`` files of one's own or someone else's); ``duckdb`` itself is left
        free. The snapshot's own connection when it is confined already."""
        from .queries import is_confined

        if is_confined(self._con):
            return self._con
        if self._confined is None:
            self._confined = _confined_twin(self._con, self._data_files())
        return self._confined

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

    def explain_all(
        self, request_id: str, zone: str | None = None, key: bytes | str | None = None
    ) -> list:
        """One ``explain.Explanation`` per zone ``request_id`` occurs in (a chain is per
        zone, so a request seen in several zones has one explanation in each)."""
        from .explain import explain_all

        return explain_all(self._con, request_id, zone=zone, key=key)

    def verify(self, key: bytes | str | None = None, *, progress: Any = None,
               **options: Any) -> Report:
        """``Verifier(key=key, **options).verify_snapshot(self)``, for the notebook: the
        options are ``Verifier``'s (anchor, zones, recover_microseconds, max_findings)."""
        from .chain.verifier import Verifier

        return Verifier(key=key, **options).verify_snapshot(self, progress=progress)

    def ingest(self, out_dir: str) -> dict[str, Any]:
        """Write a canonical snapshot of these events under ``out_dir``; returns its manifest."""
        from .ingest import write_snapshot

        return write_snapshot(self, out_dir)

    def stats(self) -> dict[str, Any]:
        """Counts by decision, zone and event type, time span, per-zone chain_seq range."""
        from .stats import stats

        return stats(self._con)

    def query(self, name: str, **params: Any) -> pl.DataFrame:
        """Run the named query ``name`` (queries/*.sql) with its parameters bound. A query
        file is text from elsewhere (``$CARACAL_FORENSICS_QUERIES``, a file dropped into
        ``queries/``): it runs on :meth:`confined_duckdb`, reading the sources and no other
        file, while ``duckdb`` stays free."""
        from .queries import run_named

        return run_named(self.confined_duckdb(), name, params).frame

    def __repr__(self) -> str:
        shapes = sorted({i.shape for i in self.inputs})
        return f"<Snapshot {len(self.inputs)} input(s) ({', '.join(shapes)})>"
