"""The canonical snapshot directory that ``ingest`` and ``snapshot`` write.

Layout: ``manifest.json``, ``events/*.parquet`` (EVENT_SCHEMA, sorted by zone_id and
chain_seq, zstd), ``alerts.parquet`` and, when the sources held admin rows (FORMAT.md 8),
``admin/*.parquet`` (the admin model's schema, sorted by chain and chain_seq). Read
through DuckDB directly, it is the fastest source: no Python touches its rows.

The manifest lists every data file with its size and SHA-256. Every open checks the
files against it cheaply (:func:`check_snapshot`: sizes and Parquet footers); ``verify``
also checks their SHA-256 (``manifest.check_digests``). A snapshot is trusted only as far as
its manifest, so a file added, removed or changed since it was written is an input error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InputError
from ..manifest import (  # noqa: F401 - the manifest's side lives there, re-exported
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    check_listed,
    listed_files,
    load_manifest,
)
from ._marker import (  # noqa: F401 - re-exported
    ALERTS_FILE,
    EVENTS_DIR,
    alerts_file,
    event_files,
    is_snapshot_dir,
)

#: A snapshot's admin rows (admin_audit_events): their own part files, beside the events.
ADMIN_DIR = "admin"


def admin_files(directory: str) -> list[str]:
    """A snapshot's admin parts, in order (none when its sources held no admin row)."""
    import glob

    return sorted(glob.glob(os.path.join(directory, ADMIN_DIR, "*.parquet")))


def last_exported_hour(directory: str) -> str | None:
    """The hour up to which Caracal's hourly upload was complete when ``snapshot --dsn``
    read ``audit_export_watermark`` (ISO 8601 UTC, its ``parquet-hourly`` row), or None:
    the database had no watermark, or the snapshot was made by ``ingest``."""
    value = load_manifest(directory).get("last_exported_hour")
    if value is not None and not isinstance(value, str):
        raise InputError(os.path.join(directory, MANIFEST),
                         '"last_exported_hour" must be a string or null')
    return value


def check_snapshot(directory: str) -> int:
    """Check the snapshot against its manifest without hashing (stat calls and Parquet
    footers, so opening a large snapshot stays fast); returns the events it holds.

    Every listed file must be a regular file of the listed size, every data file present
    must be listed, and every event part must have the event model's columns and types
    (a part with chain_seq as text would otherwise be read silently)."""
    manifest_path = os.path.join(directory, MANIFEST)
    listed = listed_files(directory, load_manifest(directory))
    known = {item.path for item in listed}
    present = event_files(directory) + admin_files(directory)
    if os.path.lexists(os.path.join(directory, ALERTS_FILE)):
        present.append(os.path.join(directory, ALERTS_FILE))
    for path in present:
        if path not in known:
            raise InputError(path, f"not listed in {manifest_path} (added since the "
                             "snapshot was written)")
    for item in listed:
        check_listed(item, manifest_path)
        size = os.stat(item.path).st_size
        if size != item.bytes:
            raise InputError(item.path, f"{size} bytes, but {manifest_path} lists "
                             f"{item.bytes} (changed since the snapshot was written)")
    from ..admin.model import ADMIN_SCHEMA
    from ..model import EVENT_SCHEMA

    for path in admin_files(directory):
        _part_rows(path, ADMIN_SCHEMA, "admin")
    return sum(_part_rows(path, EVENT_SCHEMA, "event") for path in event_files(directory))


def _part_rows(path: str, model, what: str) -> int:
    """The rows of one part file, from its footer, once its schema is ``model``'s."""
    from ._parquet import open_parquet

    parquet = open_parquet(path)
    schema = parquet.schema_arrow
    if schema.names != model.names:
        missing = [n for n in model.names if n not in schema.names]
        extra = [n for n in schema.names if n not in model.names]
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
        ) if part) or "in another order"
        raise InputError(path, f"not a snapshot {what} file: its columns differ from the "
                         f"{what} model ({detail})")
    for field, expected in zip(schema, model, strict=True):
        if field.type != expected.type:
            raise InputError(path, f"not a snapshot {what} file: column {field.name} is "
                             f"{field.type}, not {expected.type}")
    _check_times(path, parquet, what)
    return parquet.metadata.num_rows


def _check_times(path: str, parquet, what: str) -> None:
    """Every time of the part inside the years 1-9999 and no chain_seq an int64
    extreme (``_batch.drop_out_of_range`` says why), from the footer's statistics (a row
    group without them is read): ingest writes no other, but a part rewritten with its
    manifest could, and every command showing it would stop "unexpected"."""
    import pyarrow as pa

    from ._batch import (
        FIRST_MICROS,
        FIRST_SEQ,
        LAST_MICROS,
        LAST_SEQ,
        out_of_range,
        seq_at_the_ends,
    )

    meta = parquet.metadata
    for index, field in enumerate(parquet.schema_arrow):
        if pa.types.is_timestamp(field.type):
            low, high, check = FIRST_MICROS, LAST_MICROS, out_of_range
            problem = "a time outside the years 1-9999"
        elif field.name == "chain_seq" and pa.types.is_integer(field.type):
            low, high, check = FIRST_SEQ, LAST_SEQ, seq_at_the_ends
            problem = "an int64 extreme, out of the range of a chain"
        else:
            continue
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max:
                if low <= stats.min_raw and stats.max_raw <= high:
                    continue
            elif check(parquet.read_row_group(group, columns=[field.name])
                       .column(0).combine_chunks()) is None:
                continue
            raise InputError(path, f"not a snapshot {what} file: column {field.name} holds "
                             f"{problem}", f"row group {group + 1}")


#: What the words of every discrepancy end with: what it means.
ALTERED = "the snapshot was altered after it was written"


def manifest_discrepancies(
    directory: str, zones: list[str] | None = None
) -> list[tuple[str | None, str]]:
    """Where the snapshot's event files disagree with its manifest's own records: the
    events in all (without a zone filter), and per zone the events, first and last
    chain_seq, the last content hash, and events held in two part files (a zone's events
    are in one part, in chain order; copies from several shapes sit side by side). A
    manifest whose sizes and SHA-256 were recomputed after a part was copied or deleted
    still holds the counts it was written with. Returns (zone or None, detail). Reads
    zone_id and chain_seq of every row group, and the content hashes at the heads only
    (2M events: 0.1 s, a few MB)."""
    from ..manifest import manifest_zones

    manifest = load_manifest(directory)
    recorded = manifest_zones(directory, manifest)
    held = _held(event_files(directory))
    found: list[tuple[str | None, str]] = []
    if zones is None:
        total = sum(z.rows for z in held.values())
        if manifest.get("events") != total:
            found.append((None, f"the manifest records {_count(manifest.get('events'))} "
                                f"events, the snapshot's event files hold {total}: {ALTERED}"))
    for zone in sorted(set(recorded) | set(held)):
        if zones is None or zone in zones:
            found += _zone_discrepancies(zone, recorded.get(zone), held.get(zone))
    return found


def admin_discrepancies(
    directory: str, chains: list[str] | None = None
) -> list[tuple[str | None, str]]:
    """Where the snapshot's admin part disagrees with its manifest's own admin records:
    the admin rows in all (without a chain filter), and per admin chain (a zone, or the
    global chain) its rows, first and last chain_seq and the head's content hash and
    HMAC, as :func:`manifest_discrepancies` holds the event files. A manifest written
    before admin rows were kept (no ``admin_events``) is not held to them. The admin part
    is small (one row per administrative change): read whole."""
    from ..admin.model import GLOBAL_CHAIN
    from ..manifest import manifest_admin_chains

    manifest = load_manifest(directory)
    if manifest.get("admin_events") is None:
        return []
    recorded = manifest_admin_chains(directory, manifest)
    held: dict[str, dict] = {}
    total = 0
    for path in admin_files(directory):
        table = _admin_columns(path)
        if table is None:
            continue
        total += table.num_rows
        for zone, seq, content, hmac in zip(*(table.column(i).to_pylist() for i in range(4)),
                                            strict=True):
            name = GLOBAL_CHAIN if zone is None else zone
            chain = held.setdefault(name, {"events": 0, "seqs": []})
            chain["events"] += 1
            chain["seqs"].append((seq, content, hmac))
    found: list[tuple[str | None, str]] = []
    if chains is None and manifest["admin_events"] != total:
        found.append((None, f"the manifest records {manifest['admin_events']} admin "
                            f"changes, the snapshot's admin part holds {total}: {ALTERED}"))
    for chain in sorted(set(recorded) | set(held)):
        if chains is None or chain in chains:
            found += [(chain, f"{problem}: {ALTERED}")
                      for problem in _admin_chain_problems(recorded.get(chain), held.get(chain))]
    return found


def _admin_columns(path: str):
    """An admin part's zone_id, chain_seq, content_sha256 and chain_hmac (a part that is
    no Parquet, or a corrupt row group, is an InputError naming it)."""
    import pyarrow as pa

    from ._parquet import open_parquet, row_groups

    columns = ["zone_id", "chain_seq", "content_sha256", "chain_hmac"]
    parts = [table for _first, table in row_groups(path, open_parquet(path), columns)]
    return pa.concat_tables(parts) if parts else None


def _admin_chain_problems(head: dict | None, held: dict | None) -> list[str]:
    """What one admin chain's part rows (``held``) and manifest record (``head``) disagree
    on: their count and seq range (``_range_problems``), then the head's content hash and
    HMAC."""
    seqs = [s for s, _c, _h in held["seqs"] if s is not None] if held else []
    first, last = min(seqs, default=None), max(seqs, default=None)
    problems = _range_problems(head, held and held["events"], first, last, _ADMIN_WORDS)
    if problems or head is None or held is None or last is None:
        return problems
    at_head = [(c, h) for s, c, h in held["seqs"] if s == last]
    for field, position in (("last_content_sha256", 0), ("last_chain_hmac", 1)):
        value = head.get(field)
        there = sorted({str(pair[position]) for pair in at_head})
        if value is not None and value not in there:
            name = field.removeprefix("last_")
            problems.append(f"the manifest records {name} {value} at the chain's last "
                            f"seq {last}, the admin part holds {', '.join(there)} there")
    return problems


@dataclass(frozen=True)
class _Words:
    """How a part of the snapshot speaks of what it holds, in a discrepancy."""

    holds: str  #: the part, and its verb
    held: str  #: what it holds of one chain
    recorded: str  #: what the manifest records of one chain


_EVENT_WORDS = _Words("the event files hold", "events of this zone", "events of this zone")
_ADMIN_WORDS = _Words("the admin part holds", "changes of this chain",
                      "admin changes of this chain")


def _range_problems(head: dict | None, rows: int | None, first: int | None,
                    last: int | None, words: _Words) -> list[str]:
    """What the event files and the admin part are both held to, per chain: held but not
    recorded (``head`` None), recorded but not held (``rows`` None), or another count or
    chain_seq range than the manifest records."""
    if head is None:
        return [f"{words.holds} {rows} {words.held} (seq {_span(first, last)}), which the "
                "manifest does not record"]
    said = (f"the manifest records {_count(head.get('events'))} {words.recorded} (seq "
            f"{_span(head.get('first_seq'), head.get('last_seq'))})")
    if rows is None:
        return [f"{said}, {words.holds} none of them"]
    if (head.get("events"), head.get("first_seq"), head.get("last_seq")) != (rows, first,
                                                                               last):
        return [f"{said}, {words.holds} {rows} (seq {_span(first, last)})"]
    return []


class _Held:
    """One zone as its event files hold it: rows, chain_seq range, and per part file
    and row group its rows' chain_seq range."""

    __slots__ = ("zone_id", "rows", "first", "last", "parts")

    def __init__(self, zone_id: str | None) -> None:
        self.zone_id = zone_id
        self.rows = 0
        self.first: int | None = None
        self.last: int | None = None
        self.parts: dict[str, list[tuple[int, int, int]]] = {}  # (row group, first, last)

    def add(self, path: str, group: int, rows: int, first: int | None,
            last: int | None) -> None:
        self.rows += rows
        if first is None or last is None:
            return
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)
        self.parts.setdefault(path, []).append((group, first, last))

    def spans(self) -> list[tuple[str, int, int]]:
        """(part file, first, last chain_seq) per part file, in order."""
        return sorted((path, min(g[1] for g in groups), max(g[2] for g in groups))
                      for path, groups in self.parts.items())


def _held(files: list[str]) -> dict[str, _Held]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from ._parquet import row_groups

    zones: dict[str, _Held] = {}
    for path in files:
        parquet = _Groups(_parquet(path))
        for group, (_first, table) in enumerate(
                row_groups(path, parquet, ["zone_id", "chain_seq"])):
            zone_ids, seqs = table.column(0).combine_chunks(), table.column(1)
            names = zone_ids.dictionary.to_pylist()
            if len(names) == 1 and zone_ids.null_count == 0:  # a row group of one zone
                span = pc.min_max(seqs)
                _zone(zones, names[0]).add(
                    path, group, len(seqs), span["min"].as_py(), span["max"].as_py())
                continue
            for zone_id in pc.unique(zone_ids.cast(pa.string())).to_pylist():
                mask = pc.is_null(zone_ids) if zone_id is None else pc.equal(zone_ids, zone_id)
                rows = seqs.filter(mask)
                if len(rows):
                    span = pc.min_max(rows)
                    _zone(zones, zone_id).add(
                        path, group, len(rows), span["min"].as_py(), span["max"].as_py())
    pa.default_memory_pool().release_unused()
    return zones


def _zone(zones: dict[str, _Held], zone_id: str | None) -> _Held:
    """The zone's entry, keyed as the manifest's JSON keys it (a NULL zone as "null")."""
    key = "null" if zone_id is None else zone_id
    if key not in zones:
        zones[key] = _Held(zone_id)
    return zones[key]


def _parquet(path: str):
    """The part file, its zone_id read as a dictionary (a few zones: little memory)."""
    import pyarrow.parquet as pq

    from ._parquet import open_parquet

    try:
        return pq.ParquetFile(path, memory_map=False, read_dictionary=["zone_id"])
    except Exception:  # noqa: BLE001 - open_parquet names what is wrong
        return open_parquet(path)


def _zone_discrepancies(zone: str | None, head: dict | None, held: _Held | None
                        ) -> list[tuple[str | None, str]]:
    problems = _range_problems(head, held and held.rows, held and held.first,
                               held and held.last, _EVENT_WORDS)
    if head is None or held is None:
        return [(zone, f"{problem}: {ALTERED}") for problem in problems]
    spans = sorted(held.spans(), key=lambda span: (span[1], span[2]))
    for (a, _a_lo, a_hi), (b, b_lo, b_hi) in zip(spans, spans[1:], strict=False):
        if b_lo <= a_hi:  # a snapshot's part files follow one another in chain_seq order
            problems.append(f"events of this zone at seq {_span(b_lo, min(a_hi, b_hi))} "
                            f"are held in two part files, {_name(a)} and {_name(b)}")
            break
    recorded_head = head.get("last_content_sha256")
    if recorded_head is not None and held.last == head.get("last_seq"):
        at_head = _hashes_at(held, held.zone_id, held.last)
        if recorded_head not in at_head:
            problems.append(f"the manifest records content_sha256 {recorded_head} at the "
                            f"zone's last seq {held.last}, the event files hold "
                            f"{', '.join(at_head) or 'none'} there")
    return [(zone, f"{problem}: {ALTERED}") for problem in problems]


def _hashes_at(held: _Held, zone: str | None, seq: int | None) -> list[str]:
    """The content hashes of the zone's rows at ``seq`` (only the row groups holding it)."""
    import pyarrow.compute as pc

    from ._parquet import row_groups

    hashes: set[str] = set()
    for path, groups in held.parts.items():
        wanted = [g for g, lo, hi in groups if seq is not None and lo <= seq <= hi]
        if not wanted:
            continue
        for _first, table in row_groups(path, _Groups(_parquet(path), wanted),
                                        ["zone_id", "chain_seq", "content_sha256"]):
            zone_ids = table.column(0).cast("string")
            same = pc.is_null(zone_ids) if zone is None else pc.equal(zone_ids, zone)
            rows = table.filter(pc.and_(same, pc.equal(table.column(1), seq)))
            hashes.update(str(h) for h in rows.column(2).to_pylist())
    return sorted(hashes)


class _Groups:
    """Some row groups of a ParquetFile (all by default), as ``row_groups`` reads a file,
    each on this thread: Arrow's reader threads cost more memory than these few columns
    (2M events: 20 MB against 30)."""

    def __init__(self, parquet, groups: list[int] | None = None):
        self._parquet = parquet
        self._groups = list(range(parquet.num_row_groups)) if groups is None else groups
        self.num_row_groups = len(self._groups)

    def read_row_group(self, index: int, columns: list[str]):
        return self._parquet.read_row_group(self._groups[index], columns=columns,
                                            use_threads=False)


def _name(path: str) -> str:
    return os.path.join(EVENTS_DIR, os.path.basename(path))


def _count(value: object) -> str:
    return "no" if value is None else str(value)


def _span(first: object, last: object) -> str:
    return f"{'?' if first is None else first}..{'?' if last is None else last}"
