"""``audit tail --follow``: keep watching the sources and hand over new matching events.

Every ``interval`` seconds the given paths are expanded again (directories walked, globs
re-matched) and each export file is compared with what was read before:

- JSON lines and CSV files (uncompressed) are read from the byte offset where the last
  read stopped, up to the last complete line: a line still being written waits for the
  next poll. A CSV chunk is read with the file's header line put in front of it.
- Anything else that changes (a Parquet file, a search page, a compressed file) is read
  again whole and its first rows, already handed over, are skipped. New files (a new
  hourly OCSF file) are read whole.
- A file that was replaced (rotated: another inode under the same name), truncated (it
  shrank) or rewritten (what was read before is no longer what the file begins with, or
  the bytes just before the offset changed) is read again from the start, however large
  it has grown since; a whole-file re-read whose first rows are not the ones handed over
  before (their ids' SHA-256) is handed over whole. A file found under a new name with
  the inode of one read before (rotated to a name that is followed too) is read on from
  where that one stopped.

A new or changed file that cannot be read yet (still being written: no Parquet footer,
a cut-off gzip stream) is retried when it changes again. Provenance (file, line) and
errors always name the real file and line, never the chunk file read behind the
scenes. New rows go through the same filters as ``tail``, in DuckDB; the first poll
hands over the newest ``limit`` matching events, later polls every new match, each batch
oldest first.

Memory stays that of a slice however much a poll reads (the first poll of a large
export): what a file gives is held in memory up to ``_Spooled.SPILL_BYTES`` and beyond
that in a compressed Arrow file (a file is read whole before any of its rows is handed
over), a poll's rows are spooled to a Parquet file that DuckDB reads (not a table in
memory; a snapshot's parts, Parquet already, are read in place, once checked against
its manifest as every open checks them), and ``--json`` / ``--query`` lines are written
by tail's bulk writer (``run(write=...)``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError, UsageError, check_on_bad_line
from .filters import Filters, select
from .model import EVENT_SCHEMA, Shape
from .render.records import OCCURRED_AT_SQL, OCCURRED_AT_TEXT
from .sources import BadLines, InputFile, is_excluded, read_events
from .sources._io import compression_of, expand_paths
from .sources.detect import detect_shape
from .sources.registry import shape_named

if TYPE_CHECKING:
    import duckdb

DEFAULT_INTERVAL = 1.0
_BLOCK = 8 << 20
_NEW_TABLE = "follow_new"
#: Bytes kept of what was read, at the file's start and just before the offset, to tell
#: a file rewritten in place from one that only grew.
_MARK_BYTES = 4096


@dataclass
class _FileState:
    path: str
    size: int = -1
    mtime_ns: int = -1
    shape: str | None = None
    ignored: bool = False  # not events (alerts, not an export)
    incremental: bool = False
    offset: int = 0  # bytes consumed (incremental)
    lines: int = 0  # lines consumed (incremental)
    header: bytes | None = None  # CSV header line (incremental CSV)
    rows: int = 0  # rows handed over (whole-file re-reads)
    rows_digest: bytes = b""  # SHA-256 of those rows' ids (whole-file re-reads)
    identity: tuple[int, int] | None = None  # (device, inode) read from (incremental)
    head: bytes = b""  # the first bytes read (incremental, up to _MARK_BYTES)
    mark: bytes = b""  # the last bytes read, ending at offset (incremental)
    failed_at: tuple[int, int] | None = None  # (size, mtime) of a failed attempt


class Follower:
    """Polls export files for new events; see the module docstring.

    ``poll()`` returns the new matching events (an Arrow table in the event schema plus
    ``occurred_at_text``), ``run()`` polls until stopped.
    """

    def __init__(
        self,
        paths: list[str],
        filters: Filters,
        *,
        on_bad_line: str = "error",
        interval: float = DEFAULT_INTERVAL,
        warn: Callable[[str], None] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        check_on_bad_line(on_bad_line)
        if not paths:
            raise UsageError("paths must name at least one source to follow", "paths")
        from .sources.objects import is_object_url

        if any(is_object_url(path) for path in paths):  # written once per hour, never grown
            raise UsageError("paths in object storage (s3://) cannot be followed: read "
                             "them again for the hours uploaded since", "paths")
        if not interval or not math.isfinite(interval) or interval <= 0:
            raise UsageError(
                f"interval must be a positive number of seconds, not {interval!r}", "interval")
        from .engine import connect

        self.paths = list(paths)
        self.exclude = tuple(exclude)  # glob patterns of files to leave out (scan's)
        self.filters = filters
        self.interval = float(interval)
        self.bad = BadLines(skip=on_bad_line == "skip")
        self._warn = warn or (lambda message: None)
        self._files: dict[str, _FileState] = {}
        self._con = connect()
        from . import tempdirs

        self._tmp = tempdirs.make("follow")
        # removed on close, or when the follower goes (also one whose paths were refused)
        self._remove_tmp = weakref.finalize(self, tempdirs.remove, self._tmp)
        self._polls = 0
        self._spools = 0  # files read so far, each spooled once (_Spooled)
        #: the event parts of the snapshots found this poll, read in place (not spooled)
        self._parts: list[str] = []
        self._check_paths()

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        self._remove_tmp()
        try:
            self._con.close()
        except Exception:  # pragma: no cover - closing twice
            pass

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        emit: Callable[[pa.Table], None],
        *,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
        write: Callable[[duckdb.DuckDBPyConnection, str, Filters], object] | None = None,
    ) -> None:
        """Poll every ``interval`` seconds and ``emit`` each non-empty batch of new matches.

        ``write``, when given, hands each poll's matches over instead of ``emit``: it is
        called with the connection, the relation holding the rows new since the last
        poll and the filters of this poll (the first: the newest ``limit``; later: every new
        match), and writes them itself (``render.bulk.write_tail_lines``: in slices, so
        a first poll of millions of events is never one table in memory).

        Returns when ``stop`` is set or after ``max_seconds``; Ctrl-C raises
        KeyboardInterrupt out of the sleep (the CLI turns it into a clean exit).
        """
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while True:
            self._hand_over(emit, write)
            if stop.is_set():
                return
            wait = self.interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, left)
            if stop.wait(wait):
                # Stopped while sleeping: one last look, then leave.
                self._hand_over(emit, write)
                return

    def _hand_over(self, emit, write) -> None:
        if write is None:
            table = self.poll()
            if table.num_rows:
                emit(table)
            return
        with self._new_rows() as first:
            write(self._con, _NEW_TABLE,
                  self.filters if first else dataclasses.replace(self.filters, limit=0))

    # -- one poll ---------------------------------------------------------------------

    def poll(self) -> pa.Table:
        """The matching events that appeared since the last poll (first poll: all, limited)."""
        with self._new_rows() as first:
            return select(
                self._con,
                self.filters,
                relation=_NEW_TABLE,
                extra=(f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",),
                limit=self.filters.limit if first else 0,
            )

    @contextmanager
    def _new_rows(self) -> Iterator[bool]:
        """The rows that appeared since the last poll, as the view ``_NEW_TABLE`` for the
        block; yields whether this is the first poll. They are spooled to a Parquet file
        in the follower's temporary directory (removed after the block) under the loading
        memory limit, not held in a DuckDB table, which kept a first poll of a million
        events in memory whatever the limit asked to print."""
        first = self._polls == 0
        self._polls += 1
        import duckdb

        from .engine import loading_memory, sql_list

        failure: list[BaseException] = []

        def guarded() -> Iterator[pa.RecordBatch]:
            # DuckDB would wrap an exception raised inside the stream: keep ours typed.
            try:
                yield from self._new_batches(first)
            except BaseException as error:
                failure.append(error)

        spooled = os.path.join(self._tmp, "new.parquet")
        reader = pa.RecordBatchReader.from_batches(EVENT_SCHEMA, guarded())
        self._con.register("_follow_incoming", reader)
        try:
            try:
                with loading_memory(self._con):
                    self._con.execute("COPY (SELECT * FROM _follow_incoming) TO $path "
                                      "(FORMAT PARQUET)", {"path": spooled})
            except duckdb.Error:
                if not failure:
                    raise
            finally:
                self._con.unregister("_follow_incoming")
                # the readers' freed buffers back to the system before the rows are printed
                pa.default_memory_pool().release_unused()
            if failure:
                raise failure[0]
            # a snapshot's parts hold the event model's columns in its order (its check)
            self._con.execute(f"CREATE OR REPLACE TEMP VIEW {_NEW_TABLE} AS SELECT * FROM "
                              f"read_parquet({sql_list([spooled, *self._parts])})")
            yield first
        finally:
            self._parts = []
            try:
                self._con.execute(f"DROP VIEW IF EXISTS {_NEW_TABLE}")
            except duckdb.ConnectionException:  # closed first: Ctrl-C before the block
                pass  # began, and this generator ended when collected (nothing to drop)
            if os.path.exists(spooled):
                os.unlink(spooled)

    def _check_paths(self) -> None:
        for path in self.paths:
            if not os.path.exists(path) and not _has_magic(path):
                raise InputError(path, "no such file or directory")

    def _discover(self, first: bool) -> dict[str, bool]:
        """Each export file now present, with whether it was named explicitly."""
        found: dict[str, bool] = {}
        for given in self.paths:
            try:
                for path, explicit in expand_paths([given]):
                    if self.exclude and is_excluded(path, self.exclude):
                        continue
                    found[path] = found.get(path, False) or explicit
            except InputError:
                if first and not _has_magic(given):
                    raise
                # A glob that matches nothing yet, or a file rotated away: look again later.
        return found

    def _new_batches(self, first: bool) -> Iterator[pa.RecordBatch]:
        # The files read incrementally, as they were at the end of the last poll, by
        # (device, inode): a file renamed away (rotated to audit-2026-05-11.jsonl, in a
        # followed directory) is the same file, read on from where it was, not a new
        # one whose every event would be shown again.
        known = {
            state.identity: dataclasses.replace(state)
            for state in self._files.values()
            if state.identity is not None and state.offset
        }
        for path, explicit in self._discover(first).items():
            state = self._files.get(path)
            if state is None:
                state = self._files[path] = _renamed(path, known) or _FileState(path=path)
            if state.ignored:
                continue
            try:
                stat = os.stat(path)
            except OSError:
                continue  # vanished between listing and reading
            signature = (stat.st_size, stat.st_mtime_ns)
            if signature == (state.size, state.mtime_ns):
                continue
            if state.failed_at == signature:
                continue
            try:
                yield from self._read_changes(state, stat)
            except _NotReady as error:
                if error.unknown_shape and not explicit:
                    state.failed_at = signature  # not an export (a README): as scan() does
                    continue
                if first:
                    raise error.cause from None
                if state.failed_at is None:
                    self._warn(f"{error.cause} (will retry when the file changes)")
                state.failed_at = signature
                continue
            state.failed_at = None

    def _read_changes(self, state: _FileState, stat: os.stat_result) -> Iterator[pa.RecordBatch]:
        path = state.path
        if state.shape is None:
            if os.path.isdir(path):
                state.shape = Shape.SNAPSHOT
            else:
                if stat.st_size == 0:
                    return  # just created: look again when it has content
                try:
                    state.shape = detect_shape(path)
                except InputError as error:  # e.g. a first line still being written
                    raise _NotReady(error, unknown_shape=True) from None
            shape = shape_named(state.shape)
            if shape is None or shape.holds_alerts:
                state.ignored = True
                return
            state.incremental = (
                shape.line_oriented  # read incrementally from a byte offset
                and not os.path.isdir(path)
                and compression_of(path) is None
            )
        shape = shape_named(state.shape)
        if shape is not None and shape.written_whole:
            if state.size < 0:  # a snapshot is read once: it is written whole
                try:  # held to its manifest, as every open holds it (sources.scan)
                    shape.check(path)
                except InputError as error:
                    raise _NotReady(error) from None
                if state.shape == Shape.SNAPSHOT:  # Parquet already: DuckDB reads it
                    from .sources.snapshot_dir import event_files

                    self._parts += event_files(path)
                else:
                    yield from self._read_whole(state)
            state.size, state.mtime_ns = stat.st_size, stat.st_mtime_ns
            return
        if state.incremental:
            yield from self._read_appended(state)
        else:
            yield from self._read_whole(state)
        state.size, state.mtime_ns = stat.st_size, stat.st_mtime_ns

    def _spooled(self, batches: Iterator[pa.RecordBatch]) -> _Spooled:
        self._spools += 1
        return _Spooled(os.path.join(self._tmp, f"read-{self._spools}.arrow"), batches)

    # -- whole-file re-reads ----------------------------------------------------------

    def _read_whole(self, state: _FileState) -> Iterator[pa.RecordBatch]:
        source = InputFile(path=state.path, shape=state.shape or "", bytes=0, sha256="")
        # Read everything first: a partial file must fail before any row is handed over,
        # and may be complete on a later poll (a Parquet file without its footer yet).
        try:
            batches = self._spooled(read_events(source, self.bad))
        except InputError as error:
            raise _NotReady(error) from None
        total = batches.rows
        if total < state.rows:
            self._warn(f"{state.path}: fewer events than before; reading it again from the start")
            state.rows = 0
        elif state.rows and _ids_digest(batches, state.rows) != state.rows_digest:
            self._warn(f"{state.path}: replaced (its first events changed); reading it whole")
            state.rows = 0
        skip = state.rows
        for batch in batches:
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            if skip:
                batch = batch.slice(skip)
                skip = 0
            yield batch
        state.rows = total
        state.rows_digest = _ids_digest(batches, total)

    # -- incremental line files -------------------------------------------------------

    def _read_appended(self, state: _FileState) -> Iterator[pa.RecordBatch]:
        chunk_path = os.path.join(self._tmp, "chunk")
        shape = shape_named(state.shape or "")
        is_csv = shape is not None and shape.header_line  # each chunk repeats the header
        # One descriptor for the checks and the read: a rotation in between cannot mix
        # the old file's checks with the new file's bytes.
        with open(state.path, "rb") as source:
            stat = os.fstat(source.fileno())
            change = _changed(state, source, stat)
            if change:
                self._warn(f"{state.path}: {change}; reading it from the start")
                state.offset = state.lines = 0
                state.header = None
                state.head = state.mark = b""
            state.identity = (stat.st_dev, stat.st_ino)
            size = stat.st_size
            if size == state.offset:
                return
            with open(chunk_path, "wb") as chunk:
                source.seek(state.offset)
                if is_csv and state.offset > 0 and state.header:
                    chunk.write(state.header)
                remaining = size - state.offset
                tail = b""
                copied = newlines = 0
                head, mark = state.head, state.mark
                while remaining > 0:
                    block = source.read(min(_BLOCK, remaining))
                    if not block:
                        break
                    remaining -= len(block)
                    block = tail + block
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        chunk.write(block[:cut])
                        copied += cut
                        newlines += block.count(b"\n", 0, cut)
                        if len(head) < _MARK_BYTES:
                            head += block[: min(cut, _MARK_BYTES - len(head))]
                        mark = (mark + block[max(0, cut - _MARK_BYTES) : cut])[-_MARK_BYTES:]
                    tail = block[cut:]
        if not copied:
            return  # only a partial line so far
        if is_csv and state.offset == 0:
            with open(chunk_path, "rb") as first:
                state.header = first.readline()
        # Line k of the chunk is line base + k of the file (for a CSV chunk after the
        # first, chunk line 1 is the repeated header, so data line 2 is file line lines+1).
        base = state.lines - 1 if (is_csv and state.offset > 0) else state.lines
        source_file = InputFile(path=chunk_path, shape=state.shape or "", bytes=copied, sha256="")
        try:
            batches = self._spooled(read_events(source_file, self.bad))
        except InputError as error:
            raise _relocate_error(error, chunk_path, state.path, base) from None
        state.offset += copied
        state.lines += newlines
        state.head, state.mark = head, mark
        for batch in batches:
            yield _relocate(batch, state.path, base)


def _renamed(path: str, known: dict[tuple[int, int], _FileState]) -> _FileState | None:
    """The state of a file read before under another name, now found at ``path``."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    before = known.get((stat.st_dev, stat.st_ino))
    if before is None or before.path == path:
        return None
    return dataclasses.replace(before, path=path, size=-1, mtime_ns=-1, failed_at=None)


def _changed(state: _FileState, source: BinaryIO, stat: os.stat_result) -> str | None:
    """Why the open file is not the one read up to ``state.offset`` before, or None: another
    file under the name (rotated), shorter than what was read (truncated), or not
    beginning, or not ending at the offset, with the bytes read there (rewritten)."""
    if not state.offset:
        return None
    if state.identity is not None and (stat.st_dev, stat.st_ino) != state.identity:
        return "replaced by another file (rotated)"
    if stat.st_size < state.offset:
        return "file shrank (truncated or replaced)"
    source.seek(0)
    if source.read(len(state.head)) != state.head:
        return "rewritten (its first bytes changed)"
    source.seek(state.offset - len(state.mark))
    if source.read(len(state.mark)) != state.mark:
        return "rewritten (the bytes already read changed)"
    return None


class _Spooled:
    """A file's batches, all read before any is handed over (a partial file must fail
    first), held in memory up to ``SPILL_BYTES`` and beyond that in a compressed Arrow
    file at ``path`` (the first poll of a million CSV rows held them all: 2 GB), read
    back a batch at a time; the file goes with this object (or the follower's
    directory)."""

    SPILL_BYTES = 64 << 20

    def __init__(self, path: str, batches: Iterator[pa.RecordBatch]) -> None:
        self.path, self.rows = path, 0
        self._held: list[pa.RecordBatch] = []  # until they pass SPILL_BYTES
        self._written = 0  # batches in the file
        held_bytes = 0
        writer = None
        try:
            for batch in batches:
                self.rows += batch.num_rows
                if writer is not None:
                    writer.write_batch(batch)
                    self._written += 1
                    continue
                self._held.append(batch)
                held_bytes += batch.nbytes
                if held_bytes >= self.SPILL_BYTES:
                    writer = pa.ipc.new_file(path, batch.schema, options=pa.ipc.IpcWriteOptions(
                        compression="lz4"))
                    for held in self._held:
                        writer.write_batch(held)
                    self._written, self._held = len(self._held), []
        finally:
            if writer is not None:
                writer.close()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        yield from self._held
        if not self._written:
            return
        with pa.OSFile(self.path) as source:  # not mapped: its pages are no RSS
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)

    def __del__(self) -> None:
        if self._written:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _ids_digest(batches: Iterable[pa.RecordBatch], rows: int) -> bytes:
    """SHA-256 of the ids of the first ``rows`` rows: which events were handed over."""
    import hashlib

    digest = hashlib.sha256()
    left = rows
    for batch in batches:
        if left <= 0:
            break
        ids = batch.column(batch.schema.get_field_index("id")).slice(0, left)
        for value in ids.to_pylist():
            digest.update(b"\x00" if value is None else value.encode("utf-8", "surrogatepass"))
            digest.update(b"\x1f")
        left -= len(ids)
    return digest.digest()


def _relocate_error(error: InputError, chunk: str, path: str, base: int) -> InputError:
    """An error met in a chunk, naming the real file and its line."""
    import re

    where = error.where
    if where and base:
        where = re.sub(r"^line (\d+)", lambda m: f"line {int(m.group(1)) + base}", where)
    problem = error.problem.replace(chunk, path)
    return type(error)(path if error.path == chunk else error.path, problem, where)


class _NotReady(Exception):
    """A file that cannot be read yet; retried when it changes (after the first poll)."""

    def __init__(self, cause: InputError, unknown_shape: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.unknown_shape = unknown_shape


def _relocate(batch: pa.RecordBatch, path: str, base: int) -> pa.RecordBatch:
    """Point a chunk's provenance at the real file and line."""
    names = batch.schema.names
    file_index = names.index("source_file")
    line_index = names.index("source_line")
    batch = batch.set_column(
        file_index, "source_file", pa.array([path] * batch.num_rows, pa.string())
    )
    if base:
        lines = pc.add(batch.column(line_index), pa.scalar(base, pa.int64()))
        batch = batch.set_column(line_index, "source_line", lines)
    return batch


def _has_magic(path: str) -> bool:
    import glob

    return glob.has_magic(path)
