"""The spool: loaded events written to Parquet files on a thread of their own.

Every input that is not a canonical snapshot is streamed through its reader into a
``Spool`` of Parquet files in the connection's spill directory (``spool_events``), which
DuckDB then reads as the view ``loaded_events`` (``engine.create_views``); memory stays
flat as inputs grow. Spooled by zone, each zone's file is encoded as a snapshot event
file (``ingest.event_file_writer``): a zone whose rows arrived in chain order (every
export writes them so, give or take a few late rows) is ingested by moving its file into
the snapshot, without a sort. ``Layout`` tells ``ingest`` how the events were laid out.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import ForensicsError
from .model import EVENT_SCHEMA
from .sources import BadLines, InputFile, read_inputs

if TYPE_CHECKING:

    from .snapshot import Snapshot

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
#: Rows are bounded by bytes as well (issue 14.2: lines up to the maximum, 16 MiB): a
#: chunk is handed over at this many bytes ...
SPOOL_CHUNK_BYTES = 64 << 20
#: ... a row group of the spool's own file holds at most this many (16,384 real events,
#: ~1 KB each, are ~16 MB), DuckDB reading a row group's column at once ...
SPOOL_GROUP_BYTES = 32 << 20
#: ... and the rows a zone holds back for late rows (``REORDER_ROWS``) at most this many,
#: shared as the rows are beyond 4 zones. Real events (up to ~1.5 KB) never reach these
#: bounds, nor ``ingest.ROW_GROUP_BYTES``: their chunks, row groups and reordering are as
#: before (1M bench events: the same snapshot files, byte for byte).
KEEP_BYTES = 24 << 20
#: Events longer than this on average are long (real ones are ~1 KB): a batch of them is
#: handed over alone, a zone holds back at most LONG_KEEP_BYTES of them, zones hold at
#: most LONG_SPOOL_BYTES, and their row groups (at most ``ingest.LONG_ROW_GROUP_BYTES``)
#: are encoded one at a time, so that the spool holds about one reader's batch of them:
#: 500 events of 1.9 MiB held whole took the spool to 1.4 GB (stats) and 2.5 GB (ingest).
LONG_ROW_BYTES = 8 << 10
LONG_KEEP_BYTES = 8 << 20
LONG_SPOOL_BYTES = 32 << 20
#: DuckDB's vector: the unit in which it reads and batches rows.
VECTOR_ROWS = 2048
#: Rows of a zone held back unwritten (while at most 4 zones share the budget), so that
#: rows arriving a little late (the hourly OCSF files overlap by the events ingested late)
#: are still put in their place; a row later than that makes ``ingest`` sort instead.
REORDER_ROWS = 16_384
#: The canonical order's keys after zone_id (ingest.SORT_ORDER), all ascending, NULLs last.
_ORDER_KEYS = ("chain_seq", "occurred_at", "source_file", "source_line")

class _Zone:
    __slots__ = ("path", "writer", "pending", "rows", "bytes", "last", "written", "ordered",
                 "encoded")

    def __init__(self, path: str):
        self.path = path
        self.writer: Any = None
        self.pending: list[pa.Table] = []  # rows not yet written (in order while ordered)
        self.rows = 0
        self.bytes = 0  # of the pending rows
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
    #: ... but one at a time for long events (LONG_ROW_BYTES), each row group holding as
    #: much as the readers' batches
    LONG_ENCODERS = 1

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
        self._gathered_bytes = 0
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
        self._gathered_bytes += batch.nbytes
        if (self._gathered_rows >= SPOOL_ROWS or self._gathered_bytes >= SPOOL_CHUNK_BYTES
                or batch.nbytes >= LONG_ROW_BYTES * batch.num_rows):
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._gathered:
            return
        table = pa.Table.from_batches(self._gathered, EVENT_SCHEMA)
        self._gathered, self._gathered_rows, self._gathered_bytes = [], 0, 0
        split = self._split if self.by_zone else self._shared
        self._futures.append(self._pool.submit(split, table))
        while len(self._futures) > self.IN_FLIGHT:
            self._futures.popleft().result()
        if table.nbytes >= LONG_ROW_BYTES * table.num_rows:
            # long events: what the allocator keeps of the freed ones goes back to the
            # system (tens of MB of RSS on 300 events of 1.9 MiB)
            pa.default_memory_pool().release_unused()

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
        zone.bytes += added
        self.pending_bytes += added
        keep = self._keep(zone) if zone.ordered else 0  # only an ordered zone reorders
        if self.by_zone:
            group = self._group_rows(zone)
            if zone.rows >= keep + group:  # whole row groups
                self._flush(zone, keep, group)
            # long events: zones hold less, each row group (cut short) as large as the
            # readers' blocks
            budget = LONG_SPOOL_BYTES if _long(zone) else ZONE_SPOOL_BYTES
        else:
            if zone.rows >= keep + _fit(SPOOL_ROWS, SPOOL_GROUP_BYTES, zone):
                self._flush(zone, keep)
            budget = SPOOL_BYTES
        if self.pending_bytes > budget:
            for other in self.zones.values():
                self._flush(other, self._keep(other) if other.ordered else 0)

    def _keep(self, zone: _Zone) -> int:
        """Rows ``zone`` holds back for late rows (the budget shared beyond 4 zones), fewer
        when they are long (KEEP_BYTES)."""
        shared = 4 / max(4, len(self.zones))
        rows = int(REORDER_ROWS * shared)
        rows -= rows % VECTOR_ROWS
        limit = LONG_KEEP_BYTES if _long(zone) else KEEP_BYTES
        return _fit(rows, int(limit * shared), zone)

    def _group_rows(self, zone: _Zone) -> int:
        """Rows of the zone's next row group: ``group_rows``, fewer when they are long."""
        from .ingest import LONG_ROW_GROUP_BYTES, ROW_GROUP_BYTES

        if not self.by_zone:
            limit = SPOOL_GROUP_BYTES
        else:
            limit = LONG_ROW_GROUP_BYTES if _long(zone) else ROW_GROUP_BYTES
        return _fit(self.group_rows, limit, zone)

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
        group = self._group_rows(zone)
        if not final:
            rows -= rows % min(unit, group)  # long rows: vectors of fewer rows
        if not rows:
            return
        if zone.writer is None:
            zone.writer = self._writer(zone.path)
        table = pa.concat_tables(zone.pending)
        self.pending_bytes -= zone.bytes
        written = table.slice(0, rows)
        zone.written = _compact(written.select(list(_ORDER_KEYS)).slice(rows - 1))
        if self._encoder is None:
            zone.writer.write_table(written, row_group_size=group)
        else:
            # encoding (zstd, dictionaries) takes as long as reading: on threads of its
            # own, a zone's row groups one after the other
            if zone.encoded is not None:
                zone.encoded.result()
            if _long(zone):  # long events: the ones handed over first are done
                while len(self._encoding) >= self.LONG_ENCODERS:
                    self._encoding.popleft().result()
            zone.encoded = self._encoder.submit(zone.writer.write_table, written, group)
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
        zone.bytes = rest.nbytes
        self.pending_bytes += zone.bytes


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


def _long(zone: _Zone) -> bool:
    """Whether the zone's pending rows are long events (LONG_ROW_BYTES on average)."""
    return zone.bytes >= LONG_ROW_BYTES * max(1, zone.rows)


def _fit(rows: int, limit: int, zone: _Zone) -> int:
    """``rows``, or as many of the zone's pending rows (at their mean size) as fit in
    ``limit`` bytes when fewer (at least one): long events go in fewer rows."""
    if zone.rows and zone.bytes * rows > limit * zone.rows:
        return max(1, limit * zone.rows // zone.bytes)
    return rows


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


def spool_events(
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
    shortcuts (``ingest`` reads this; it does not import ``snapshot``)."""

    def __init__(self, spool: Spool | None, snapshots: list[InputFile], events_sql: str | None,
                 reopen_by_zone: Callable[[], Snapshot] | None = None):
        self.spool = spool
        self.snapshots = snapshots
        self.events_sql = events_sql
        #: the same sources opened again with ``by_zone=True`` (``ingest._by_zone``)
        self.reopen_by_zone = reopen_by_zone
