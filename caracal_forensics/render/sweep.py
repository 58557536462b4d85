"""``tail --json`` of every event of Parquet files, each row group read once.

Slices of occurred_at (``bulk._slices``) cut the row groups of a canonical snapshot
(written in zone and chain order, so every zone's row groups span the same days): a row
group a slice boundary cuts is read by both slices, about half of all the reading at 10M
events. When the events are the rows of Parquet files alone (a canonical snapshot, or the
spool of loaded exports) and every one is printed, this sweep reads each row group once
instead, in the order of the smallest occurred_at its statistics give: after reading one,
every row held with an occurred_at below the next unread row group's smallest can be
printed, since no unread row group holds one. The rows held are those of the row groups
whose times overlap (a few per zone here); a layout where too many would be held (the
statistics say so before anything is read) is left to the slices.

The lines are the C kernel's (``native_lines``), from the columns as stored: ``""`` in a
jsonb column is NULL, as ``unique_events`` makes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..filters import Filters

#: Rows the sweep may hold at once, in Arrow bytes (measured on the first row group).
HELD_BYTES = 640 << 20
#: Row groups read at once, and read ahead of the one printed (two readers measured no
#: faster on two cores, where the lines' threads take the other, and held 60 MB more;
#: with the steps made a step ahead of the lines, in their own thread (bulk._ahead), two
#: read ahead measured no faster than one, and held 40-60 MB more at 10M).
READERS, AHEAD = 1, 1
#: The smallest occurred_at of a row group holding NULLs: they are printed first.
_FIRST = -(1 << 63)
_LAST = (1 << 63) - 1

_PARQUET_LIST = re.compile(r"read_parquet\(list_value\(((?:'(?:[^']|'')*'(?:, )?)+)\)")
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def parquet_files(con) -> list[str] | None:
    """The Parquet files whose rows are the events of ``con``'s views, when they are all
    there is and ``unique_events`` is the events themselves (no copy to choose); None
    otherwise."""
    from ..engine import view_sql

    plan = con.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'unique_events' "
                   "AND temporary").fetchall()
    if not plan or plan[0][0] != "plain":
        return None
    texts = [view_sql(con, "events")]
    loaded = view_sql(con, "loaded_events")
    if loaded is not None:
        texts.append(loaded)
    elif con.sql("SELECT count(*) FROM loaded_events").fetchall()[0][0]:
        return None
    files: list[str] = []
    for text in texts:
        if text is None:
            return None
        lists = _PARQUET_LIST.findall(text)
        if len(lists) != text.count("read_parquet("):
            return None
        for listed in lists:
            files += [name.replace("''", "'") for name in _QUOTED.findall(listed)]
    return files


@dataclass
class _Group:
    """One row group: where, its occurred_at range (micros; NULLs make ``low`` _FIRST),
    its rows, and what its statistics say for the filters."""

    path: str
    index: int
    low: int
    high: int
    rows: int
    #: the smallest occurred_at that is not NULL (_LAST: none), and zone_id's range
    least: int = _LAST
    zones: tuple[str, str] | None = None


@dataclass
class _Held:
    """A row group read (its rows the filters select): its batches, its rows sorted
    (indices), their occurred_at in that order (NULL as _FIRST), its sort keys, how many
    rows, how many are printed."""

    batches: list[Any]
    order: Any
    times: Any
    keys: Any
    rows: int
    printed: int = 0
    #: Arrow bytes a row of the row group takes, filtered or not (sizes what is held)
    per_row: float = 0.0


def _groups(files: Sequence[str], columns: Sequence[str]) -> list[_Group] | None:
    """Every row group of the files with its occurred_at range, or None when a file
    lacks a column, types differ from a snapshot's, or a range is unknown."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import native_lines

    groups = []
    for path in files:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        if any(name not in schema.names for name in columns) or \
                not native_lines.supported(schema):
            return None
        kind = schema.field("occurred_at").type
        if kind != pa.timestamp("us", tz=kind.tz) or kind.tz is None:
            return None
        names = meta.schema.names
        if "occurred_at" not in names:
            return None
        position = names.index("occurred_at")
        zone = names.index("zone_id") if "zone_id" in names else -1
        for index in range(meta.metadata.num_row_groups):
            group = meta.metadata.row_group(index)
            stats = group.column(position).statistics
            rows = group.num_rows
            if not rows:
                continue
            if stats is None or not stats.has_null_count:
                return None
            nulls = stats.null_count
            least = _LAST
            if nulls == rows:
                low = high = _FIRST
            elif not stats.has_min_max or stats.physical_type != "INT64":
                return None
            else:
                low, high = int(stats.min_raw), int(stats.max_raw)
                least = low
                if nulls:
                    low = _FIRST
            zones = None
            zone_stats = group.column(zone).statistics if zone >= 0 else None
            if zone_stats is not None and zone_stats.has_min_max and \
                    isinstance(zone_stats.min, str) and isinstance(zone_stats.max, str):
                zones = (zone_stats.min, zone_stats.max)
            groups.append(_Group(path, index, low, high, rows, least, zones))
    groups.sort(key=lambda group: group.low)
    return groups


def _most_held(groups: list[_Group]) -> int:
    """The most rows held at once by the sweep over ``groups`` (sorted by ``low``): after
    reading one, those of every group read whose ``high`` the next ``low`` has not
    passed (an upper bound: a group is counted whole until it is done)."""
    import heapq

    most = held = 0
    reading: list[tuple[int, int]] = []  # (high, rows) of the groups held
    for position, group in enumerate(groups):
        heapq.heappush(reading, (group.high, group.rows))
        held += group.rows
        most = max(most, held)
        frontier = groups[position + 1].low if position + 1 < len(groups) else _LAST
        while reading and reading[0][0] < frontier:
            held -= heapq.heappop(reading)[1]
    return most


def sorted_pieces(con, columns: Sequence[str],
                  filters: Filters | None = None) -> Iterator[tuple[Any, Any]] | None:
    """(``native_lines.LineTable``, the order of its rows) per step of the sweep, every
    event ``filters`` select (their limit aside) oldest first; None when the events are
    not such files, the sweep would hold too much, a filter would not select here
    exactly what DuckDB selects (the caller slices instead), or the statistics of a row
    group it would read put a time outside the years the kernel writes. Row groups the filters'
    zones and times rule out by their statistics are not read."""
    files = parquet_files(con)
    if not files:
        return None
    groups = _groups(files, columns)
    if not groups:
        return None
    from ..filters import ROW_COUNT  # count(*) decoded every id here: 0.9 CPU-s at 10M

    if sum(group.rows for group in groups) != con.sql(
            f"SELECT {ROW_COUNT} FROM events").fetchall()[0][0]:
        return None
    keep = None
    if filters is not None:
        import dataclasses

        if {field.name for field in dataclasses.fields(filters)} - _KNOWN_FILTERS:
            return None  # a filter added since: the slices' SQL knows it
        if filters.decision is not None and con.sql(
                "SELECT count(*) FROM unique_events WHERE decision IS NOT NULL AND "
                "NOT regexp_full_match(decision, '[[:ascii:]]*')").fetchall()[0][0]:
            return None  # DuckDB's lower() of other text is not ascii_lower's
        keep = _selection(filters)
        groups = [group for group in groups if _may_hold(group, filters)]
        if not groups:
            return iter(())
    from .native_lines import TIME_RANGE

    low, high = TIME_RANGE
    if any(group.least != _LAST and (group.least < low or group.high >= high)
           for group in groups):
        return None  # a time the kernel does not write: DuckDB's lines (bulk)
    most = _most_held(groups)
    opened: dict[str, Any] = {}
    first = _read(groups[0], columns, opened, keep)
    if most * first.per_row > HELD_BYTES:
        return None
    return _sweep(groups, columns, first, opened, keep)


#: Bytes per row of a dictionary-encoded column (its first row group, uncompressed) from
#: which it is read dense: most of them are the dictionary's values, nearly one per row
#: (request_id: 22, against 2 or less for the others). Read as an Arrow dictionary, each
#: value is hashed into a new dictionary (0.2 CPU-s at 10M events), and the lines read
#: the values at random in it.
DENSE_BYTES_PER_ROW = 8


def _dictionary_columns(path: str, columns: Sequence[str]) -> list[str]:
    """The columns of ``columns`` the file stores dictionary-encoded with few values
    (repeating): read as Arrow dictionaries, they are decoded faster and held in less
    memory (the kernel writes a dictionary's values)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    if not meta.num_row_groups:
        return []
    group = meta.row_group(0)
    found = []
    for index in range(group.num_columns):
        chunk = group.column(index)
        if chunk.path_in_schema in columns and chunk.physical_type == "BYTE_ARRAY" and any(
                "DICTIONARY" in encoding for encoding in chunk.encodings) and \
                chunk.total_uncompressed_size < DENSE_BYTES_PER_ROW * max(1, group.num_rows):
            found.append(chunk.path_in_schema)
    return found


def _read(group: _Group, columns: Sequence[str], opened: dict[str, Any],
          keep: Any = None) -> _Held:
    """Read and sort one row group (``opened``: the files' readers, by thread and path:
    a footer is parsed once per thread)."""
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..errors import InputError
    from ..filters import ORDER_COLUMNS

    key = (threading.get_ident(), group.path)  # a reader per thread
    try:
        handle = opened.get(key)
        if handle is None:
            handle = opened[key] = pq.ParquetFile(
                group.path, read_dictionary=_dictionary_columns(group.path, columns))
        table = handle.read_row_group(group.index, columns=list(columns))
    except (OSError, pa.ArrowException) as error:
        # a part corrupted in place (its size unchanged, which opening does not hash):
        # Arrow's error names no file
        raise InputError(group.path, f"reading the data failed: {str(error).splitlines()[0]} "
                         "(`verify` checks a snapshot's files against its manifest)",
                         f"row group {group.index + 1}") from None
    per_row = table.nbytes / max(1, table.num_rows)
    if keep is not None:  # the filters' rows (a NULL condition drops the row, as in SQL)
        table = table.filter(keep(table))
    table = table.combine_chunks() if any(
        column.num_chunks > 1 for column in table.columns) else table
    keys = table.select(list(ORDER_COLUMNS))  # dictionaries decoded for the ties alone
    times = table.column("occurred_at").combine_chunks().cast(pa.int64()).fill_null(
        _int64(_FIRST))
    order, times = _time_order(
        times, lambda tied: _decoded(keys.take(tied)).append_column("__row", tied))
    return _Held(table.to_batches(), order, times, keys, table.num_rows, per_row=per_row)


def _sweep(groups: list[_Group], columns: Sequence[str], first: _Held,
           opened: dict[str, Any], keep: Any = None):
    """The steps of the sweep (see ``sorted_pieces``): read the next row group, print the
    rows held that no unread row group can precede."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.compute as pc

    from . import native_lines

    with ThreadPoolExecutor(READERS, thread_name_prefix="tail-json-read") as reader:
        ahead = [reader.submit(_read, group, columns, opened, keep)
                 for group in groups[1:1 + AHEAD]]
        held: list[_Held] = []
        for position in range(len(groups)):
            if position == 0:
                held.append(first)
            else:
                held.append(ahead.pop(0).result())
                if position + AHEAD < len(groups):
                    ahead.append(reader.submit(_read, groups[position + AHEAD], columns,
                                               opened, keep))
            frontier = groups[position + 1].low if position + 1 < len(groups) else _LAST
            if frontier == groups[position].low and position + 1 < len(groups):
                continue  # the next starts where this does: read it first
            times, ids, bases, base = [], [], [], 0
            batches: list[Any] = []
            for unit in held:
                end = unit.rows if frontier == _LAST else _before(unit.times, frontier)
                if end > unit.printed:
                    taken = unit.order.slice(unit.printed, end - unit.printed)
                    times.append(unit.times.slice(unit.printed, end - unit.printed))
                    ids.append(pc.add(taken.cast(pa.int64()), _int64(base)))
                    unit.printed = end
                batches += unit.batches
                bases.append(base)
                base += unit.rows
            if ids:
                rows = ids[0] if len(ids) == 1 else _merged(
                    pa.concat_arrays(times), pa.concat_arrays(ids), held, bases)
                yield (native_lines.LineTable(batches, empty_json_is_null=True),
                       native_lines.order_buffer(rows))
            # a row group printed is let go (its memory kept by Arrow's allocator for the
            # next: handing it back to the system after each cost a second of page faults
            # at 10M for 30 MB less held)
            held = [unit for unit in held if unit.printed < unit.rows]


def _time_order(times: Any, keys_of: Any) -> tuple[Any, Any]:
    """The order of rows by the six keys when ``times`` (occurred_at as int64, NULL as
    _FIRST) decides nearly all of it: sorted by time alone, then the rows of equal times
    (rare) by every key: ``keys_of(positions)`` gives their keys with the positions as
    column ``__row``. Returns the order and the times in it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .native_lines import sort_order

    order = pc.sort_indices(times)
    times = times.take(order)
    count = len(times)
    if count < 2:
        return order, times
    same = pc.equal(times.slice(1), times.slice(0, count - 1))
    if not pc.any(same).as_py():
        return order, times
    edge = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\0")])
    tie = pc.or_(pa.concat_arrays([edge, same]), pa.concat_arrays([same, edge]))
    keys = keys_of(order.filter(tie))
    resolved = keys.column("__row").take(sort_order(keys)).combine_chunks()
    return pc.replace_with_mask(order, tie, resolved.cast(order.type)), times


def _merged(times: Any, rows: Any, held: list[_Held], bases: list[int]) -> Any:
    """``rows`` (ids of rows held, each row group's in order) in the order of the six
    keys (see ``_time_order``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def keys_of(positions: Any) -> Any:
        tied = rows.take(positions)
        parts = []
        for unit, base in zip(held, bases, strict=True):
            mine = pc.and_(pc.greater_equal(tied, _int64(base)),
                           pc.less(tied, _int64(base + unit.rows)))
            if pc.any(mine).as_py():
                keys = _decoded(unit.keys.take(pc.subtract(tied.filter(mine), _int64(base))))
                parts.append(keys.append_column("__row", positions.filter(mine)))
        return parts[0] if len(parts) == 1 else pa.concat_tables(
            [part.cast(parts[0].schema) for part in parts])

    order, _ = _time_order(times, keys_of)
    return rows.take(order)


def _before(times: Any, moment: int) -> int:
    """How many of ``times`` (int64, ascending, no NULL) are below ``moment``: a binary
    search over its buffer (comparing every time held at every step cost 0.1 s at
    10M)."""
    import bisect

    if not len(times):
        return 0
    values = memoryview(times.buffers()[1]).cast("q")[times.offset:times.offset + len(times)]
    return bisect.bisect_left(values, moment)


def _decoded(keys: Any) -> Any:
    """``keys`` with its dictionary columns decoded: sorted by their values, as DuckDB
    sorts them (decoded for the rows of equal times alone, not every row read)."""
    import pyarrow as pa

    for position, kind in enumerate(keys.schema.types):
        if pa.types.is_dictionary(kind):
            keys = keys.set_column(position, keys.schema.names[position],
                                   keys.column(position).cast(kind.value_type))
    return keys


#: The fields of ``filters.Filters`` the sweep selects with (``_selection``).
_KNOWN_FILTERS = {"decision", "event_types", "zones", "since", "until", "request_id", "limit"}


def _may_hold(group: _Group, filters: Filters) -> bool:
    """Whether the row group's statistics leave room for a row the filters select."""
    since, until = _micros(filters.since), _micros(filters.until)
    if (since is not None or until is not None) and group.least == _LAST:
        return False  # NULL times only: no window holds them
    if since is not None and group.high < since:
        return False
    if until is not None and group.least >= until:
        return False
    if filters.zones and group.zones is not None:
        low, high = group.zones
        return any(low <= zone <= high for zone in filters.zones)
    return True


def _micros(moment: Any) -> int | None:
    """A UTC datetime as microseconds since 1970 (None stays None)."""
    import datetime as dt

    if moment is None:
        return None
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (moment - epoch) // dt.timedelta(microseconds=1)


def _selection(filters: Filters) -> Any:
    """A function of a table giving the mask of its rows ``filters.where()`` selects,
    condition for condition the same: ``zone_id IN``, ``event_type IN``,
    ``request_id =``, the time window (since inclusive, until exclusive) and
    ``lower(decision) =`` (decisions are ASCII here: ``sorted_pieces`` checks)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if filters.where()[0] == "TRUE":
        return None
    since, until = _micros(filters.since), _micros(filters.until)

    def keep(table: Any) -> Any:
        conditions = []
        if filters.zones:
            conditions.append(pc.is_in(_plain(table, "zone_id"),
                                       value_set=_strings(filters.zones)))
        if filters.event_types:
            conditions.append(pc.is_in(_plain(table, "event_type"),
                                       value_set=_strings(filters.event_types)))
        if filters.request_id is not None:
            conditions.append(pc.equal(_plain(table, "request_id"),
                                       _strings([filters.request_id])[0]))
        if since is not None or until is not None:
            times = table.column("occurred_at").cast(pa.int64())
            if since is not None:
                conditions.append(pc.greater_equal(times, _int64(since)))
            if until is not None:
                conditions.append(pc.less(times, _int64(until)))
        if filters.decision is not None:
            conditions.append(pc.equal(pc.ascii_lower(_plain(table, "decision")),
                                       _strings([filters.decision])[0]))
        mask = conditions[0]
        for condition in conditions[1:]:
            mask = pc.and_kleene(mask, condition)
        return mask

    return keep


def _plain(table: Any, name: str) -> Any:
    """Column ``name`` of ``table`` as plain strings (a dictionary decoded)."""
    import pyarrow as pa

    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _strings(values: Sequence[str]) -> Any:
    """A string array of ``values`` made from its bytes (see ``_int64``)."""
    import pyarrow as pa

    from .native_lines import typed_array

    encoded = [value.encode("utf-8") for value in values]
    offsets = typed_array("i", [0])
    for value in encoded:
        offsets.append(offsets[-1] + len(value))
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _int64(value: int) -> Any:
    """An int64 Arrow scalar made from its bytes: pyarrow converting a Python int (in
    ``pa.scalar`` or a compute call) imports pandas when it is installed, 0.13 s a
    command (tests/integration/cli/test_cli_startup.py)."""
    import pyarrow as pa

    data = pa.py_buffer(value.to_bytes(8, "little", signed=True))
    return pa.Array.from_buffers(pa.int64(), 1, [None, data])[0]
