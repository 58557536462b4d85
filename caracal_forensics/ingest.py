"""Writing a canonical snapshot: sorted zstd Parquet plus a manifest that fingerprints it.

Sorted by zone_id then chain_seq, in row groups of bounded size, so DuckDB's min/max
statistics skip row groups by zone (and, since chain order follows time, by time too).
Columns that repeat within a row group are dictionary-encoded, and request_id gets a
Parquet bloom filter, so an equality lookup (``tail --request-id``, ``explain``) skips
the row groups that cannot hold the value although request ids are not sorted. Zones the
spool received in canonical order are written as event files while they are read
(``event_file_writer``), and ingest only moves those files into place; any other rows
are sorted and written by DuckDB.
The manifest records what went in (path, size, SHA-256, shape, rows), what came out, and
per zone the first and last chain_seq with the last content hash: an anchor for later.
Admin rows (``admin_audit_events``, FORMAT.md 8), when the sources hold any, are written
as their own part, ``admin/part-00000.parquet``, and the manifest records each admin
chain's rows, chain_seq range and head (``admin.snapshot``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .engine import memory_limit, size_bytes, union_files, view_sql
from .errors import ForensicsError, UsageError
from .model import EVENT_SCHEMA
from .queries import count_duplicate_events
from .sources._io import file_sha256
from .sources.snapshot_dir import (
    ADMIN_DIR,
    ALERTS_FILE,
    EVENTS_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
)

if TYPE_CHECKING:
    from .snapshot import Snapshot

#: Rows per Parquet row group: small enough to skip, large enough to scan fast. A lookup
#: by request id reads the one row group its bloom filter admits: half DuckDB's default
#: row group halves that read (10M events: ~270 ms -> under 100 ms).
ROW_GROUP_ROWS = 61_440
#: ... and bytes (in Arrow) of a row group at most: rows of long events (lines up to the
#: maximum, 16 MiB) go in row groups of fewer rows, so that neither the writer nor a
#: reader holds a row group of them whole. 61,440 real events (~1 KB) never reach it ...
ROW_GROUP_BYTES = 128 << 20
#: ... and events of more than ``spool.LONG_ROW_BYTES`` each (see there) this many.
LONG_ROW_GROUP_BYTES = 48 << 20
#: False positive rate of the bloom filters (DuckDB's default 0.01 would let about one row
#: group in a hundred through for a request id it does not hold).
BLOOM_FILTER_FPP = 0.001
#: DuckDB's ceiling while sorting and writing: the sort spills beyond it, so that with
#: Python and Arrow on top ingest stays under 1 GiB however many events it writes.
WRITE_MEMORY_LIMIT = "600MB"
#: The same when the rows need no sort (loaded in order, see ``events_query``): DuckDB only
#: holds the row groups being written (it began to spill at 300 MB in our measurements).
ORDERED_WRITE_MEMORY_LIMIT = "450MB"
SORT_ORDER = "zone_id, chain_seq NULLS LAST, occurred_at, source_file, source_line"


#: zstd level of the snapshot: level 1 writes in about half the time of DuckDB's default
#: (3) and, on these columns (hex hashes, JSON text), comes out no larger.
COMPRESSION_LEVEL = 1
#: Bytes a column chunk's string dictionary may reach: request ids fit (a row group of
#: unique 36-character ids takes ~2.5 MB), so they keep their dictionary and bloom filter,
#: while wide unique text (metadata, hashes) gives the attempt up early and stays plain.
STRING_DICTIONARY_BYTES = 3 << 20


def parquet_options(row_group_rows: int = ROW_GROUP_ROWS) -> str:
    """The COPY ... (options) of a canonical snapshot's event file.

    DuckDB writes a bloom filter for every dictionary-encoded column chunk. A dictionary
    limit of one less than the row group size dictionary-encodes (and so bloom-filters)
    every column that repeats a value within a row group (request_id, zone, decision,
    policies) but leaves the unique ones (id, hashes, HMACs) plain, where a dictionary
    would only cost size and write time.
    """
    rows = max(2, int(row_group_rows))
    return (
        f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {COMPRESSION_LEVEL}, "
        f"ROW_GROUP_SIZE {rows}, DICTIONARY_SIZE_LIMIT {rows - 1}, "
        f"STRING_DICTIONARY_PAGE_SIZE_LIMIT {STRING_DICTIONARY_BYTES}, "
        f"BLOOM_FILTER_FALSE_POSITIVE_RATIO {BLOOM_FILTER_FPP}"
    )


def write_snapshot(
    snapshot: Snapshot,
    out_dir: str,
    *,
    extra_manifest: dict[str, Any] | None = None,
    row_group_rows: int | None = None,
) -> dict[str, Any]:
    """Write ``snapshot``'s events and alerts under ``out_dir``; return the manifest.
    ``row_group_rows``: rows of a row group (default ROW_GROUP_ROWS). A failure (an input
    changed before ingest read it again, a full disk) leaves no half-written snapshot:
    ``out_dir`` is removed, or emptied when it existed (empty) before."""
    row_group_rows = row_group_rows or ROW_GROUP_ROWS
    created = not os.path.exists(out_dir)
    prepare_out_dir(out_dir, [i.path for i in snapshot.inputs])
    try:
        return _write(_by_zone(snapshot) or snapshot, out_dir, extra_manifest, row_group_rows)
    except BaseException:
        _remove_written(out_dir, created)
        raise


def _write(snapshot: Snapshot, out_dir: str, extra_manifest: dict[str, Any] | None,
           row_group_rows: int) -> dict[str, Any]:
    con = snapshot.duckdb
    events_dir = os.path.join(out_dir, EVENTS_DIR)
    os.makedirs(events_dir)
    spooled = _spooled_in_order(snapshot, row_group_rows)
    if spooled:
        try:
            _place(spooled, events_dir)
        except OSError as error:  # a full disk, say: one line on stderr, exit 2
            raise ForensicsError(f"{events_dir}: cannot write the snapshot: {error}") from None
    else:
        _copy_events(snapshot, os.path.join(events_dir, "part-00000.parquet"), row_group_rows)
    alert_count = con.sql("SELECT count(*) FROM alerts").fetchall()[0][0]
    if alert_count:
        con.execute(
            "COPY (SELECT * FROM alerts ORDER BY observed_at, id) TO $path "
            "(FORMAT parquet, COMPRESSION zstd)",
            {"path": os.path.join(out_dir, ALERTS_FILE)},
        ).fetchall()
    from .admin.snapshot import write_admin_part

    try:
        admin_count = write_admin_part(con, os.path.join(out_dir, ADMIN_DIR, "part-00000.parquet"))
    except OSError as error:
        raise ForensicsError(f"{out_dir}: cannot write the snapshot: {error}") from None
    manifest = _manifest(snapshot, out_dir, alert_count, admin_count)
    if extra_manifest:
        manifest.update(extra_manifest)
    path = os.path.join(out_dir, MANIFEST)
    try:  # a full disk: the file named (the snapshot is removed by write_snapshot)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    except OSError as error:
        raise ForensicsError(f"{path}: cannot write the manifest: {error.strerror or error}"
                             ) from None
    return manifest


def _remove_written(out_dir: str, created: bool) -> None:
    """Undo a failed write: everything in ``out_dir`` is ours (``prepare_out_dir`` found
    it new or empty)."""
    import shutil

    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    for entry in os.scandir(out_dir):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:  # the error being raised is the one to report
                pass


def _copy_events(snapshot: Snapshot, events_path: str, row_group_rows: int) -> None:
    """Write the events file with DuckDB: sorted, or in order from a canonical snapshot."""
    con = snapshot.duckdb
    query, ordered = _events_query(snapshot)
    limit = ORDERED_WRITE_MEMORY_LIMIT if ordered else WRITE_MEMORY_LIMIT
    configured = memory_limit()
    lowered = size_bytes(limit) < size_bytes(configured)
    if lowered:
        con.execute(f"SET memory_limit = '{limit}'")
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    if ordered:
        # Rows read in order are written by one thread: with more, DuckDB's ordered copy
        # reads ahead of the encoder and spills what it read (10M events: 10 GB spilled,
        # 72 s against 52 s), and even at 1M one thread took less time on 2 busy cores.
        con.execute("SET threads = 1")
    # in order as read (an ORDER BY keeps its order whatever this says)
    con.execute("SET preserve_insertion_order = true")
    try:
        con.execute(
            f"COPY ({query}) TO $path ({parquet_options(row_group_rows)})",
            {"path": events_path},
        ).fetchall()
    finally:
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        if lowered:
            con.execute(f"SET memory_limit = '{configured}'")


#: Columns that repeat within a row group, dictionary-encoded by ``event_file_writer`` (the
#: ones DuckDB's limits above encode so on exports). The timestamps stay plain: on 1M
#: bench events a dictionary made them 3% larger and no faster to write.
DICTIONARY_COLUMNS = (
    "zone_id", "event_type", "request_id", "decision", "policy_set_id",
    "policy_set_version_id", "manifest_sha", "evaluation_status",
    "determining_policies_json", "diagnostics_json", "occurred_at_digits",
    "ingest_signature", "absent_fields", "source_file", "source_shape",
)  # fmt: skip


def _by_zone(snapshot: Snapshot) -> Snapshot | None:
    """The same sources opened again by zone, when ``snapshot`` spooled its events in
    arrival order (as ``open_sources`` does unless told otherwise): reading them again
    and moving in-order zones into place takes a third of the time of sorting them
    (1M JSON lines events: 4.1 s against 10.4 s)."""
    layout = _current_layout(snapshot)
    spool = _spool_alone(layout)
    if spool is None or spool.by_zone or layout.reopen_by_zone is None:
        return None
    return layout.reopen_by_zone()


def _spooled_in_order(snapshot: Snapshot, row_group_rows: int = ROW_GROUP_ROWS
                      ) -> list[str] | None:
    """The spool's zone files, when they hold every event, in canonical order, written as
    snapshot event files in row groups of ``row_group_rows``."""
    spool = _spool_alone(_current_layout(snapshot))
    if spool is None or not spool.by_zone or spool.group_rows != row_group_rows:
        return None
    return spool.ordered_files() or None


def _spool_alone(layout):
    """The spool of ``layout`` (``_current_layout``), when it holds every event: no canonical
    snapshot was opened beside it."""
    if layout is None or layout.snapshots:
        return None
    return layout.spool


def event_file_writer(path: str, row_group_rows: int = ROW_GROUP_ROWS):
    """A pyarrow writer of one snapshot event file, as DuckDB's COPY writes it with
    ``parquet_options``: zstd, the DICTIONARY_COLUMNS dictionary-encoded, statistics, and
    a request_id bloom filter sized, as DuckDB sizes it, for one distinct value per row of
    a row group (128 KB a row group at 0.001). The spool of ``open_sources(by_zone=True)``
    writes its zone files with it, so that ingest only moves them into place."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(
        path,
        EVENT_SCHEMA,
        compression="zstd",
        compression_level=COMPRESSION_LEVEL,
        use_dictionary=list(DICTIONARY_COLUMNS),
        dictionary_pagesize_limit=STRING_DICTIONARY_BYTES,
        write_statistics=True,
        store_schema=False,
        bloom_filter_options={"request_id": {"ndv": row_group_rows, "fpp": BLOOM_FILTER_FPP}},
    )


def _place(files: list[str], events_dir: str) -> None:
    """The spool's zone files (written by ``event_file_writer``, zones in canonical order)
    as the snapshot's part files: hard links where the spool shares the file system, else
    copies. The spool's own names go with the connection."""
    import shutil

    for index, path in enumerate(files):
        target = os.path.join(events_dir, f"part-{index:05d}.parquet")
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)


def events_query(snapshot: Snapshot) -> str:
    """SELECT of every event in canonical order, without a sort when the rows are known to
    be in that order already: loaded zone by zone in chain order (``spool.Spool``), or
    one canonical snapshot alone. Anything else (or a replaced ``events`` view) sorts."""
    return _events_query(snapshot)[0]


def _events_query(snapshot: Snapshot) -> tuple[str, bool]:
    """events_query and whether it reads the rows in order (no sort)."""
    columns = ", ".join(f'"{name}"' for name in EVENT_SCHEMA.names)
    layout = _current_layout(snapshot)
    if layout is not None:
        files = None
        spool, snapshots = layout.spool, layout.snapshots
        if spool is not None and not snapshots:
            files = spool.ordered_files()
        elif spool is None and len(snapshots) == 1:
            files = _canonical_files(snapshots[0].path)
        if files:
            return f"SELECT {columns} FROM ({union_files(files)})", True
    return f"SELECT {columns} FROM events ORDER BY {SORT_ORDER}", False


def _current_layout(snapshot: Snapshot):
    """How open_sources laid the events out (``spool.Layout``), while ``events`` is still
    the view it made."""
    layout = getattr(snapshot, "layout", None)
    if layout is None or view_sql(snapshot.duckdb, "events") != layout.events_sql:
        return None
    return layout


def _duplicate_events(snapshot: Snapshot) -> int:
    """count_duplicate_events, unless opening already found none (the 'plain' plan of
    ``unique_events`` over the same ``events``): a pass over the data saved."""
    con = snapshot.duckdb
    if _current_layout(snapshot) is not None:
        plan = con.sql(
            "SELECT comment FROM duckdb_views() WHERE view_name = 'unique_events' AND temporary"
        ).fetchall()
        if plan and plan[0][0] == "plain":
            return 0
    return count_duplicate_events(con)


def _canonical_files(directory: str) -> list[str] | None:
    """The event files of a snapshot written in this sort order (in it file after file,
    see ``_place``), else None."""
    from .sources.snapshot_dir import event_files, load_manifest

    files = event_files(directory)
    if not files or load_manifest(directory).get("sort_order") != SORT_ORDER:
        return None
    return files


def prepare_out_dir(out_dir: str, inputs: list[str]) -> None:
    """Refuse to write over anything: the output must be new or an empty directory, and
    neither inside an input nor holding one (``outputs.refuse_overwriting_inputs``)."""
    from .outputs import refuse_overwriting_inputs

    refuse_overwriting_inputs(out_dir, inputs, directory=True)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir) or os.listdir(out_dir):
            raise UsageError(f"out_dir {out_dir} exists and is not an empty directory",
                             "out_dir")
    else:
        try:
            os.makedirs(out_dir)
        except OSError as error:  # under a file, in /proc, read-only, no permission
            raise UsageError(f"out_dir {out_dir}: cannot create it: {error.strerror or error}",
                             "out_dir") from None


def zone_heads(con) -> dict[str, dict[str, Any]]:
    """Per zone: event count, first and last chain_seq, and the last row's content hash."""
    rows = con.sql(
        """
        SELECT zone_id, count(*), min(chain_seq), max(chain_seq),
               arg_max(content_sha256, chain_seq)
        FROM events GROUP BY zone_id ORDER BY zone_id
        """
    ).fetchall()
    return {
        zone: {"events": n, "first_seq": first, "last_seq": last, "last_content_sha256": head}
        for zone, n, first, last, head in rows
    }


def _manifest(snapshot: Snapshot, out_dir: str, alert_count: int,
              admin_count: int = 0) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from .admin.snapshot import chain_heads

    con = snapshot.duckdb
    paths = []
    for root, _dirs, names in os.walk(out_dir):
        paths += [os.path.join(root, name) for name in sorted(names) if name != MANIFEST]
    # the files' SHA-256 on two threads (hashlib releases the GIL) while DuckDB reads the
    # events for the counts: 1M events, 0.19 -> 0.13 s
    with ThreadPoolExecutor(2, thread_name_prefix="manifest-sha256") as pool:
        digests = pool.map(file_sha256, paths)
        events, first, last = con.sql(
            "SELECT count(*), min(occurred_at)::VARCHAR, max(occurred_at)::VARCHAR FROM events"
        ).fetchall()[0]
        zones = zone_heads(con)
        # events (zone_id, id) present more than once: readers skip their own check at 0
        duplicates = _duplicate_events(snapshot)
        files = [
            {"path": os.path.relpath(path, out_dir), "bytes": size, "sha256": digest}
            for path, (size, digest) in zip(paths, digests, strict=True)
        ]
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "events": events,
        "alerts": alert_count,
        "first_occurred_at": first,
        "last_occurred_at": last,
        "sort_order": SORT_ORDER,
        "inputs": [source.to_dict() for source in snapshot.inputs],
        "files": files,
        "bytes": sum(f["bytes"] for f in files),
        "zones": zones,
        "duplicate_events": duplicates,
        # the second chain (FORMAT.md 8): rows, and per chain (zone, or the global
        # chain) the chain_seq range and head; {} when the sources held none
        "admin_events": admin_count,
        "admin_chains": chain_heads(con) if admin_count else {},
    }
