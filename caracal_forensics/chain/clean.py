"""The clean pass: prove an intact export intact in one streaming pass, or give up.

Most exports handed to verify are intact, and proving that needs no work tables: every
row's content hash and HMAC are recomputed by the C kernel on two threads while the
rows stream past in the order they are stored, and each row is linked to the previous
row of its zone on the way (zones may interleave, as in a table dump; within a zone the
seqs must come consecutively). Nothing is kept per row but a 64-bit hash of its id.

The pass only ever says "intact, and here is the report" or "not proven": at the first
row that does not verify exactly (a content or HMAC mismatch, a gap, a repeated seq, a
copy of an event, a shape lacking a field, millisecond timestamps, upper-case hex, ...)
it stops, and ``verify`` runs the exhaustive pipeline (``stages.py``, ``findings.py``),
which finds and explains every problem. So the pass can never hide a finding; tests check
that both give the same report wherever the pass answers.

One failure it answers for: a wrong key. When the first row it cannot prove fails on its
HMAC alone, a second pass expects every HMAC to fail and everything else to hold, and
gives the exhaustive pipeline's report for that (one ``every_hmac_failed`` finding per
zone); at the first HMAC that verifies, it gives up as well (with a wrong key, verify of
10M events took the exhaustive pipeline's 22.7 s and 1.05 GB; now 7.7 s and 0.57 GB).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..keys import key_fingerprint
from ..model import ABSENT_FIELD, HASH_FIELDS, PRECISION_FIELD
from . import digest, native, wording
from .engine import arrow_reader
from .report import Finding, Kind, Reason, Report

if TYPE_CHECKING:
    import duckdb

    from .summary import Head

#: Try the clean pass first: one streaming pass that proves an intact export intact,
#: else gives up and the exhaustive pipeline (``stages.py``, ``findings.py``) explains
#: what is wrong.
ENABLED = True

#: Rows per batch read from DuckDB and checked by one kernel call.
BATCH_ROWS = 65536

#: Rows the reorder window may hold back, waiting for the rows before them in their
#: zone (hourly OCSF files file an event by its time, so one ingested late sits in an
#: earlier hour's file), before the pass gives up; 0 disables the window. About 300
#: bytes of memory per row held (1M events of hourly files: at most 4,934 held).
REORDER_ROWS = 262_144

#: Rows a zone not yet started (its seq 1 not seen) may hold before it starts at the
#: lowest seq held: hourly OCSF files put an event early in an earlier hour's file.
ZONE_START_ROWS = 16_384

#: Columns of a canonical snapshot read as stored, dictionary-encoded, not expanded: the
#: kernel hashes the repeating text fields through their indices, and the source file is
#: only looked at for a zone's first row (decoding 1M rows: 0.69 -> 0.52 CPU-seconds).
#: zone_id stays plain for the follower; request_id is nearly unique per row.
_AS_STORED = ("event_type", "decision", "policy_set_id", "policy_set_version_id",
              "manifest_sha", "evaluation_status", "determining_policies_json",
              "diagnostics_json", "source_file")

#: The columns the follower and the report need: all the reorder window holds.
_LINK_COLUMNS = ("zone_id", "chain_seq", "id", "source_file", "source_line",
                 "prev_content_sha256", "content_sha256", "chain_hmac")

_META = ("zone_id", "chain_seq", "id", "source_file", "source_line", PRECISION_FIELD,
         ABSENT_FIELD, "content_sha256", "prev_content_sha256", "chain_hmac", "occurred_at")


_COLUMNS = tuple(dict.fromkeys((*_META, *HASH_FIELDS)))


class _NotClean(Exception):
    """A row the pass cannot prove: the exhaustive pipeline takes over."""


class _HmacFails(_NotClean):
    """The first row the pass cannot prove fails on its HMAC alone: a wrong key, maybe."""


class _OutOfOrder(_NotClean):
    """A row that does not follow its zone's previous row: out of order, or a broken link."""

    def __init__(self, mode: _Mode | None) -> None:
        super().__init__()
        self.mode = mode


@dataclass(frozen=True)
class Outcome:
    """The clean pass's report, or None. ``sorting_may_prove``: it gave up on rows out of
    chain order only, which the pass over the loaded rows sorted (``clean_pass``) may
    still prove; at anything else that pass would give up again, at the same row."""

    report: Report | None
    sorting_may_prove: bool = False


def clean_pass_over(
    read: Callable[[], Iterable[pa.RecordBatch]] | None,
    key: bytes | None,
    zones: Sequence[str] | None,
    anchor: Report | None,
    inputs: Iterable[Any],
    recover_microseconds: bool = True,
) -> Outcome:
    """The clean pass over the event batches ``read()`` gives, as a reader gives them, or
    (``read`` None) over the Parquet files of the canonical snapshots among ``inputs``,
    without DuckDB: the report if every row verifies in the order given.
    (The wrong key's second pass calls ``read`` again: the first gives up early.)"""
    inputs = list(inputs)
    return _answer(lambda wrong_key: _Pass(
        None, key, zones, anchor, recover_microseconds, wrong_key).run(
            anchor, inputs, batches=None if read is None else read()))


def clean_pass(
    con: duckdb.DuckDBPyConnection,
    key: bytes | None,
    zones: Sequence[str] | None,
    anchor: Report | None,
    inputs: Iterable[Any],
    recover_microseconds: bool = True,
) -> Report | None:
    """The report of an export every row of which verifies, or None if one does not."""
    inputs = list(inputs)

    def attempt(wrong_key: bool) -> Report:
        try:
            return _Pass(con, key, zones, anchor, recover_microseconds, wrong_key).run(
                anchor, inputs)
        except _OutOfOrder as error:
            if _snapshot_files(inputs) is not None:
                raise
            mode = error.mode
        # Rows not stored in chain order (hourly OCSF files hold late events in a later
        # hour; a merged export): once more, sorted by DuckDB. Where the content is not
        # recomputed (millisecond time) only the narrow chain columns are sorted.
        return _Pass(con, key, zones, anchor, recover_microseconds, wrong_key).run(
            anchor, inputs, sort=True, narrow=mode is not None and not mode.precise)

    return _answer(attempt).report


def _answer(attempt: Callable[[bool], Report]) -> Outcome:
    """``attempt(False)``'s report; when it gave up on an HMAC alone, ``attempt(True)``'s,
    which expects every HMAC to fail (``_Pass.wrong_key``: it never gives up so)."""
    for wrong_key in (False, True):
        try:
            return Outcome(attempt(wrong_key))
        except _HmacFails:
            continue
        except _NotClean as error:
            return Outcome(None, isinstance(error, _OutOfOrder))
    return Outcome(None)


@dataclass(frozen=True)
class _Mode:
    """What the rows' shape lets the pass check, the same for every row of a pass."""

    has_prev: bool  # prev_content_sha256 is carried (else the HMAC is the link)
    stored: bool  # content_sha256 is carried (else the recomputed one is chained)
    precise: bool  # occurred_at in microseconds (else the content is unproven)


class _Pass:
    """One attempt: rows checked on two worker threads, linked in order on this one.
    ``wrong_key``: every row's HMAC must fail instead, and the rest hold (the report then
    says the key is probably wrong); without a prev column the follower tests each HMAC
    against its predecessor's content hash, and seqs stand in for the links."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, key: bytes | None,
                 zones: Sequence[str] | None, anchor: Report | None,
                 recover_microseconds: bool, wrong_key: bool = False) -> None:
        from .summary import anchor_heads

        self.con = con
        self.key = key
        self.wrong_key = wrong_key and key is not None
        self.zones = list(dict.fromkeys(zones)) if zones else None  # as verify takes them
        self.zone_set = pa.array(self.zones, pa.string()) if self.zones else None
        self.heads: dict[str, Head] = anchor_heads(anchor, self.zones)
        self.recover = recover_microseconds
        self.mode: _Mode | None = None
        self.follower = native.follower()
        #: per zone: (event id, seq, source, stored prev, content hash, chain_hmac) of
        #: its first row
        self.starts: dict[str, tuple[str, int, str, str | None, str, str | None]] = {}
        #: per anchored zone: the content hashes seen at the anchor's last seq
        self.at_head: dict[str, list[str]] = {zone: [] for zone in self.heads}
        self._local = threading.local()  # each worker thread's open Parquet files
        self.reorder: _Reorder | None = None  # rows out of chain order are expected

    def run(self, anchor: Report | None, inputs: list[Any], sort: bool = False,
            narrow: bool = False, batches: Iterable[pa.RecordBatch] | None = None) -> Report:
        from concurrent.futures import ThreadPoolExecutor

        from .summary import in_order

        files = None if sort or batches is not None else _snapshot_files(inputs)
        if not sort and REORDER_ROWS > 0 and _displaced(inputs):
            self.reorder = _Reorder()  # from the first row: see _displaced
        with ThreadPoolExecutor(max_workers=2) as pool:
            if batches is not None:
                checked = in_order(pool, self._select_and_check, batches)
            elif files is not None:
                # Canonical snapshots only: each worker reads and checks whole row groups
                # straight from Parquet, so decoding runs on both cores too.
                checked = in_order(pool, self._read_and_check, _row_groups(files, self.zones))
            else:
                checked = in_order(pool, self._check_rows, self._batches(sort, narrow))
            for batch, mode in checked:
                if not batch.num_rows:
                    continue  # e.g. a row group without the zones asked for
                if self.mode is None:
                    self.mode = mode
                elif mode != self.mode:
                    raise _NotClean  # shapes mixed: the exhaustive path tells them apart
                self._follow(batch)
        if self.reorder is not None:
            self._link(self._reordered(None))  # the zones still waiting start now
            if self.reorder.held_rows:
                raise _OutOfOrder(self.mode)  # rows whose predecessors never came
        if not native.ids_unique(self.follower):
            raise _NotClean  # an id at two seqs (or a 64-bit collision): let SQL tell
        stats = {zone: {"events": events, "first_seq": first, "last_seq": last,
                        "last_c": last_c}
                 for zone, events, first, last, last_c in native.follower_zones(self.follower)}
        findings, hmac_unchecked = self._findings(stats)
        from .summary import assemble_report, describe_checks

        total = sum(z["events"] for z in stats.values())
        mode = self.mode or _Mode(True, True, True)
        checks = {}
        if not mode.precise and total:
            checks["microseconds"] = wording.recovery_skipped_check(total)
        proven = total if mode.precise and mode.stored else 0
        checks = describe_checks(checks, proven=proven, total=total, key=self.key,
                                 hmac_checked=total - hmac_unchecked, heads=len(self.heads),
                                 anchor=anchor)
        return assemble_report(findings, stats, inputs, self.key, checks)

    # --- the stream -----------------------------------------------------------------------

    def _batches(self, sort: bool, narrow: bool = False) -> Iterator[pa.RecordBatch]:
        columns = ", ".join(f'"{name}"' if name in _META or not narrow
                            else f'NULL::VARCHAR AS "{name}"' for name in _COLUMNS)
        where, params = "", None
        if self.zones is not None:
            where, params = "WHERE list_contains($zones, zone_id)", {"zones": list(self.zones)}
        order = "ORDER BY zone_id, chain_seq" if sort else ""
        reader = arrow_reader(self.con, f"SELECT {columns} FROM events {where} {order}",
                              params, BATCH_ROWS, ordered=not sort)
        try:
            yield from reader
        finally:
            reader.close()

    def _read_and_check(self, part: tuple[str, Any, int]) -> tuple[pa.RecordBatch, _Mode]:
        path, metadata, index = part
        # A ParquetFile is not safe to read from two threads: one per thread and file.
        opened = self._local.__dict__.setdefault("files", {})
        try:
            if path not in opened:
                import pyarrow.parquet as pq

                opened[path] = pq.ParquetFile(path, metadata=metadata, memory_map=False,
                                              read_dictionary=list(_AS_STORED))
            table = opened[path].read_row_group(index, columns=list(_COLUMNS), use_threads=False)
        except (pa.ArrowException, KeyError, OSError, ValueError):
            raise _NotClean from None  # the exhaustive path names the file and row group
        batch = table.combine_chunks().to_batches()
        return self._select_and_check(batch[0] if batch else pa.RecordBatch.from_pylist(
            [], schema=table.schema))

    def _select_and_check(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, _Mode]:
        """The pass's columns of the zones asked for, checked (``_check_rows``)."""
        batch = batch.select(list(_COLUMNS))
        if self.zone_set is not None:
            batch = batch.filter(pc.is_in(batch.column("zone_id"), value_set=self.zone_set))
        return self._check_rows(batch)

    def _check_rows(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, _Mode]:
        """Every row's content hash (or, at millisecond precision, its form) and, where
        the prev is carried, its HMAC exact (a worker thread: the kernel releases the GIL).
        Without a stored content hash the recomputed one takes its place."""
        mode = _mode_of(batch)
        if not mode.precise and (self.recover or not mode.stored):
            raise _NotClean  # recovery (or an unverifiable row) is the exhaustive path's
        if not mode.stored:
            column = batch.schema.get_field_index("content_sha256")
            batch = batch.set_column(column, "content_sha256", native.content_hex(batch))
        check_content = mode.precise and mode.stored
        # in the wrong key's pass every HMAC must fail (without a prev column the follower
        # tests them, as links)
        if native.first_unproven_row(batch, self.key, check_content=check_content,
                                     has_prev=mode.has_prev, wrong_key=self.wrong_key) >= 0:
            if (self.key is not None and not self.wrong_key and mode.has_prev
                    and native.first_unproven_row(
                        batch, None, check_content=check_content, has_prev=True) < 0):
                raise _HmacFails  # the rows hold but for an HMAC: a wrong key?
            raise _NotClean
        return batch, mode

    def _follow(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Link the batch's rows to their zones' previous rows (this thread, in order).
        Rows out of chain order send this and every later batch through a reorder
        window; the pass gives up only if that fails."""
        assert self.mode is not None
        if self.reorder is None:
            bad, starts = self._follow_rows(batch)
            if bad < 0:
                self._note(batch, starts)
                return
            if REORDER_ROWS <= 0:
                raise _OutOfOrder(self.mode)
            # rows before ``bad`` are linked; from it on, rows wait for their predecessors
            self._note(batch.slice(0, bad), [row for row in starts if row < bad])
            self.reorder = _Reorder({zone: last + 1 for zone, _events, _first, last, _head
                                     in native.follower_zones(self.follower)})
            batch = batch.slice(bad)
        self._link(self._reordered(batch))

    def _reordered(self, batch: pa.RecordBatch | pa.Table | None) -> pa.Table:
        assert self.reorder is not None
        try:
            return self.reorder.add(batch)
        except _OutOfOrder:
            raise _OutOfOrder(self.mode) from None  # a sort may still prove it intact

    def _link(self, rows: pa.Table) -> None:
        """Follow rows the reorder window let through: they must link now."""
        if not rows.num_rows:
            return
        assert self.mode is not None
        bad, starts = self._follow_rows(rows)
        if bad >= 0:
            raise _OutOfOrder(self.mode)
        self._note(rows, starts)

    def _follow_rows(self, rows: pa.RecordBatch | pa.Table) -> tuple[int, list[int]]:
        """``native.follow``: the first row that does not link (-1 if none), the rows
        starting a zone. Without a prev column an HMAC failing where the seq links is no
        matter of order (``_HmacFails``); in the wrong key's pass one verifying ends it."""
        assert self.mode is not None
        bad, starts, on_hmac = native.follow(self.follower, rows, self.key,
                                             self.mode.has_prev, self.wrong_key)
        if on_hmac:
            raise _NotClean if self.wrong_key else _HmacFails
        return bad, starts

    def _note(self, batch: pa.RecordBatch | pa.Table, starts: list[int]) -> None:
        """Remember what the report needs of linked rows: the anchor heads' content
        hashes, and each zone's first row."""
        for zone, hashes in self.at_head.items():
            seq = self.heads[zone].last_seq
            at = pc.and_(pc.equal(batch.column("zone_id"), zone),
                         pc.equal(batch.column("chain_seq"), seq))
            if pc.any(at).as_py():
                hashes += pc.filter(batch.column("content_sha256"), at).to_pylist()
        if starts:
            picked = batch.select(["zone_id", "id", "chain_seq", "source_file", "source_line",
                                   "prev_content_sha256", "content_sha256", "chain_hmac"]
                                  ).take(pa.array(starts, pa.int64()))
            for zone, event, seq, file, line, prev, content, hmac in zip(
                    *(column.to_pylist() for column in picked.columns), strict=True):
                source = file or ""
                self.starts[zone] = (event, seq, source if line is None else f"{source}:{line}",
                                     prev, content, hmac)

    # --- the report -----------------------------------------------------------------------

    def _findings(self, stats: dict[str, dict[str, Any]]) -> tuple[list[Finding], int]:
        """The findings of an intact export, and how many HMACs went unchecked (a zone
        starting later without a prev column: its first HMAC chains to an unseen hash)."""
        mode = self.mode or _Mode(True, True, True)
        findings, unchecked = [], 0
        for zone, z in stats.items():
            event, seq, source, prev, content, hmac = self.starts[zone]
            head = self.heads.get(zone)
            if head is None:
                if seq > 1:
                    findings.append(Finding(Kind.UNANCHORED_START, zone, event, seq, source,
                                            wording.unanchored_start(seq, mode.has_prev)))
                    unchecked += not mode.has_prev
            elif not self._check_head(zone, z, seq, prev, content, hmac, head):
                unchecked += not mode.has_prev
            if not mode.precise:
                findings.append(Finding(Kind.UNVERIFIABLE, zone, event, seq, source,
                                        wording.recovery_skipped(z["events"])))
            if self.key is None:
                findings.append(Finding(Kind.UNVERIFIABLE, zone, None, None, None,
                                        wording.no_key(0 if mode.stored else z["events"])))
            elif self.wrong_key:
                if z["events"] < 2:
                    raise _NotClean  # one HMAC failing is no sign of a wrong key
                if seq != 1 and not mode.has_prev:
                    raise _NotClean  # its first HMAC chains to a hash not in the export
                findings.append(Finding(
                    Kind.HMAC_MISMATCH, zone, event, seq, source,
                    wording.every_hmac_failed(z["events"], key_fingerprint(self.key)),
                    reason=Reason.EVERY_HMAC_FAILED))
        for zone in self.heads:
            if zone not in stats:
                raise _NotClean  # truncated: the whole zone is gone
        for zone in sorted(set(self.zones or ()) - set(stats) - set(self.heads)):
            findings.append(Finding(Kind.UNVERIFIABLE, zone, None, None, None,
                                    wording.NO_EVENTS_DETAIL))
        return findings, unchecked

    def _check_head(self, zone: str, z: dict[str, Any], first_seq: int, first_prev: str | None,
                    first_c: str, first_hmac: str | None, head: Head) -> bool:
        """The anchor's head must be in the export, or the export must start right after
        it. Returns whether the first row's link to its predecessor was checked."""
        assert self.mode is not None
        if first_seq == 1:
            pass
        elif first_seq == head.last_seq + 1:
            if not head.last_content_sha256:
                if self.mode.has_prev:
                    return False
                raise _NotClean  # an HMAC that cannot be checked: the exhaustive path says so
            if self.mode.has_prev:
                if first_prev != head.last_content_sha256:
                    raise _NotClean  # chain_break against the anchor
            elif self.key is not None and first_hmac != digest.chain_hmac(
                    self.key, first_c, head.last_content_sha256):
                raise _NotClean  # its HMAC does not chain to the anchor's head
            return True
        elif first_seq > head.last_seq + 1:
            raise _NotClean  # a gap after the anchor
        if z["last_seq"] < head.last_seq:
            raise _NotClean  # truncated
        if head.last_content_sha256 and head.last_seq >= first_seq:
            if self.at_head[zone] != [head.last_content_sha256]:
                raise _NotClean  # anchor_mismatch
        return first_seq == 1


class _Reorder:
    """Puts rows back in chain order. A zone's rows are let through from the seq it
    expects next, as far as they run without a gap; the others are held (the link
    columns only) until the rows before them arrive. A zone not yet started starts at
    seq 1, or, when it holds ZONE_START_ROWS rows or the stream ends without its seq 1,
    at the lowest seq held (an export that begins later). The pass gives up at a seq
    at or before one let through (a copy, a repeat, or a row displaced further than
    the window reaches) and when more than REORDER_ROWS rows are held."""

    def __init__(self, next_seq: dict[str, int] | None = None):
        self.next_seq = dict(next_seq or {})  # per started zone: the seq that links next
        self.held: pa.Table | None = None

    @property
    def held_rows(self) -> int:
        return 0 if self.held is None else self.held.num_rows

    def add(self, batch: pa.RecordBatch | pa.Table | None) -> pa.Table:
        """The rows (of ``batch`` and those held) that now link, in chain order per zone;
        ``None`` at the end of the stream, to let out every zone that can start."""
        from ..sources._batch import lines_from

        parts = [] if self.held is None else [self.held]
        if batch is not None:
            table = batch.select(list(_LINK_COLUMNS))
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            parts.append(_decoded(table))
        if not parts:
            return pa.table({})
        table = pa.concat_tables(parts)
        if table.column("zone_id").null_count or table.column("chain_seq").null_count:
            raise _NotClean  # the exhaustive path names the row
        table = table.take(pc.sort_indices(
            table, [("zone_id", "ascending"), ("chain_seq", "ascending")])).combine_chunks()
        if not table.num_rows:
            self.held = None
            return table
        seqs = table.column("chain_seq").chunk(0)
        runs = pc.run_end_encode(table.column("zone_id")).chunk(0)
        through, kept, start = [], [], 0
        for zone, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
            run = seqs.slice(start, end - start)
            lowest = run[0].as_py()
            first = self.next_seq.get(zone)
            if first is None and (lowest == 1 or batch is None or len(run) >= ZONE_START_ROWS):
                first = lowest
            if first is None:
                linked = 0  # the zone waits for its start
            else:
                if lowest < first:
                    raise _OutOfOrder(None)  # a seq already let through, again
                apart = pc.not_equal(pc.subtract(run, lines_from(first, len(run))), 0)
                linked = pc.index(apart, True).as_py()
                linked = len(run) if linked < 0 else linked
            if linked:
                through.append(table.slice(start, linked))
                self.next_seq[zone] = first + linked
            if linked < len(run):
                kept.append(table.slice(start + linked, len(run) - linked))
            start = end
        self.held = pa.concat_tables(kept).combine_chunks() if kept else None
        if self.held_rows > REORDER_ROWS:
            raise _OutOfOrder(None)
        return pa.concat_tables(through) if through else table.slice(0, 0)


def _decoded(table: pa.Table) -> pa.Table:
    """``table`` with any dictionary-encoded column expanded (``_AS_STORED``), so that
    tables from row groups with different dictionaries concatenate."""
    for index, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(index, field.name,
                                     table.column(index).cast(field.type.value_type))
    return table


def _mode_of(batch: pa.RecordBatch) -> _Mode:
    """The batch's one mode; rows of mixed shapes or precisions are not the pass's."""
    absent = pc.unique(pc.fill_null(batch.column(ABSENT_FIELD), "")).to_pylist()
    if len(absent) > 1:
        raise _NotClean
    names = set(absent[0].split(",")) - {""} if absent else set()
    if names & {*HASH_FIELDS, "occurred_at"}:
        raise _NotClean  # a hashed field the shape lacks: unverifiable content
    digits = pc.min_max(pc.fill_null(batch.column(PRECISION_FIELD), 6)).as_py()
    precise = digits["min"] is None or digits["min"] >= 6
    if not precise and digits["max"] >= 6:
        raise _NotClean
    return _Mode(has_prev="prev_content_sha256" not in names,
                 stored="content_sha256" not in names, precise=precise)


def _displaced(inputs: list[Any]) -> bool:
    """Whether the inputs hold rows displaced from chain order by design: hourly OCSF
    files file an event by its time, and an event ingested late sits in an earlier
    hour's file than the rows before it. Those go through the reorder window from the
    first row, before a zone's start is taken from a row that came early."""
    from ..sources.registry import shape_named

    return any((shape := shape_named(getattr(i, "shape", None) or "")) is not None
               and shape.displaced for i in inputs)


def _snapshot_files(inputs: list[Any]) -> list[str] | None:
    """The event files behind ``events`` when every event input is a canonical snapshot
    (as ``snapshot._create_views`` unions them, in that order), else None."""
    from ..model import Shape
    from ..sources.snapshot_dir import event_files

    holding = [i for i in inputs if not getattr(i, "holds_alerts", False)]
    if not holding or any(getattr(i, "shape", None) != Shape.SNAPSHOT for i in holding):
        return None
    return [path for i in holding for path in event_files(i.path)]


def _row_groups(files: list[str], zones: Sequence[str] | None
                ) -> Iterator[tuple[str, Any, int]]:
    """(path, its Parquet metadata, row group) in file order; row groups whose zone_id
    statistics exclude every requested zone are skipped."""
    import pyarrow.parquet as pq

    for path in files:
        try:
            parquet = pq.ParquetFile(path, memory_map=False)
        except (pa.ArrowException, OSError, ValueError):
            raise _NotClean from None
        names = parquet.schema_arrow.names
        if any(name not in names for name in _COLUMNS):
            raise _NotClean
        zone_column = names.index("zone_id")
        for index in range(parquet.num_row_groups):
            if zones is not None:
                stats = parquet.metadata.row_group(index).column(zone_column).statistics
                if stats is not None and stats.has_min_max and not any(
                        stats.min <= zone <= stats.max for zone in zones):
                    continue
            yield path, parquet.metadata, index
