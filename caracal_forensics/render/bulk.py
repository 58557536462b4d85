"""``tail --json`` and ``--query`` results in bulk: DuckDB writes the lines, in order.

A line is a SQL expression (``records.json_line_sql``, or the one
``jmes_sql.compile_query`` makes of a JMESPath expression); DuckDB computes it for the
selected events and hands over Arrow batches of finished lines, which
``jsonl.write_arrow_lines`` writes as they stand. No Python object per event.

Every event, oldest first, needs a sort; one sort of 10M events (~10 GB of lines) goes far
past DuckDB's memory limit and spills all of it. So the selection is sorted in slices of
occurred_at (``BUCKET_ROWS`` events first, then as many as make ``SLICE_BYTES`` of what
the first printed, cut at the quantiles of a first pass over the filters' columns and
occurred_at alone): each slice is one query whose occurred_at range DuckDB pushes
into the scan (a canonical snapshot's row groups outside it are skipped), sorted in
memory and streamed out before the next begins. Memory stays that of one slice; ``|
head`` stops it at the next write (BrokenPipeError, exit 0, as before).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from ..errors import ForensicsError
from ..filters import ORDER_COLUMNS, ORDER_DESC, Filters

#: Events of the first slice sorted when printing every match: about 250 MB of lines of
#: real events (~1 KB); the next slices hold about ``SLICE_BYTES`` of what it printed.
BUCKET_ROWS = 250_000
#: Bytes of selected lines (and their sort keys) a slice is sized for.
SLICE_BYTES = 256 << 20
#: What the sort holds per event besides its line: the keys (times, ids, the file name).
KEY_BYTES = 160
#: Rows of one Arrow batch handed over by DuckDB: its own vector, so Python never holds
#: more of a long event's lines than DuckDB does.
FETCH_ROWS = 2048
#: The quantiles of occurred_at the first pass asks for (slices merge adjacent ones).
_QUANTILES = 256
#: How much more than its size a slice takes when that is all that is left.
_SLACK = 1.25


def ordered_batches(
    con,
    filters: Filters,
    select: str,
    *,
    keep: str | None = None,
    params: dict[str, Any] | None = None,
    guard: tuple[str, dict[str, Any]] | None = None,
    relation: str = "unique_events",
    bucket_rows: int = BUCKET_ROWS,
    slice_bytes: int = SLICE_BYTES,
    columns: Sequence[str] | None = None,
    wrap: Callable[[str], str] | None = None,
    refusable: bool = False,
    fallback_select: str | None = None,
) -> Iterator[Any]:
    """Arrow record batches of ``SELECT {select}`` over the events ``filters`` select
    from ``relation`` (newest ``filters.limit``, or every one), oldest first.

    ``select``: SQL from this package (``json_line_sql() AS line``, a compiled query),
    never user text, with its bound ``params``; ``keep``: a condition on the selected
    columns (``line IS NOT NULL``); ``guard``: one more condition on the events (see
    ``Query.guard``). ``bucket_rows`` and ``slice_bytes`` size the slices (see there).
    ``columns``: the columns ``select`` reads (None: all), what the newest ``limit``
    events are picked with. ``wrap``: makes of the selected events the relation
    ``select`` reads (``CompiledQuery.relation``: columns it computes once per event).
    ``refusable``: when DuckDB refuses the first statement with ``select`` (it does not
    parse or bind), raise :class:`Refused` before anything is yielded, instead of a
    separate check beforehand (which parsed and bound the long SQL of a compiled
    expression once more: 12-20 ms). ``fallback_select``: ``select`` is a compiled
    query's line and ``fallback`` alone (``query_select(events=False)``), and this the
    same with the columns of the events marked ``fallback`` (``query_select()``): the
    events are sorted without those columns (all NULL but for the rare event the
    evaluator answers, they took a fifth of the sort of a million), until a batch holds
    such an event; from there on with them, the slice it came from again."""
    wrap = wrap or (lambda source: source)
    current = [select]  # becomes fallback_select for good (_switching)
    where, bound = filters.where()
    # the slices come from the filters (and a guard's clauses on text columns): a first
    # pass over their plain columns, never over the jsonb text a guard or the
    # expression reads; a selective guard makes fewer slices, so fewer scans
    plain_where, plain_bound = where, bound
    sizing = getattr(guard, "plain", None)
    if sizing:
        plain_where, plain_bound = f"({where}) AND ({sizing[0]})", {**bound, **sizing[1]}
    if guard is not None:
        where = f"({where}) AND ({guard[0]})"
        bound = {**bound, **guard[1]}
    bound = {**bound, **(params or {})}
    if filters.limit:
        wanted = "*" if columns is None else ", ".join(
            f'"{name}"' for name in dict.fromkeys([*columns, *ORDER_COLUMNS]))
        source = (f"(SELECT {wanted} FROM {relation} WHERE {where} "
                  f"ORDER BY {ORDER_DESC} LIMIT {int(filters.limit)})")
        yield from _switching(con, lambda s: _sorted_sql(s, wrap(source), "TRUE", keep),
                              bound, refusable, current, fallback_select)
        return
    rows, cuts = _first_pass(con, relation, plain_where, plain_bound)
    per_cut = rows / _QUANTILES  # selected events between two quantiles, about
    position, low, want = 0, None, bucket_rows
    while True:
        # the next slice: ``want`` events on, at a quantile other than where it starts
        end = position + max(1, math.ceil(want / max(per_cut, 1.0)))
        while end < _QUANTILES and cuts[end - 1] in (None, low):
            end += 1
        # a slice takes all that is left when that is little more than it would hold:
        # one scan, plan and sort fewer (259,781 denies were 250,000 and then 9,781)
        last = end >= _QUANTILES or rows - position * per_cut <= want * _SLACK
        high = None if last else cuts[end - 1]
        condition, sliced = where, dict(bound)
        if low is not None:
            condition += " AND occurred_at >= CAST($slice_low AS TIMESTAMPTZ)"
            sliced["slice_low"] = low
        if high is not None:
            below = "occurred_at < CAST($slice_high AS TIMESTAMPTZ)"
            condition += f" AND ({below} OR occurred_at IS NULL)" if low is None else \
                f" AND {below}"
            sliced["slice_high"] = high
        written = 0
        for batch in _switching(con, lambda s, c=condition: _sorted_sql(s, wrap(relation), c, keep),
                                sliced, refusable and low is None, current, fallback_select):
            written += batch.nbytes
            yield batch
        if high is None:
            return
        # what the slice printed per event it held sizes the next: a selective query or a
        # narrow projection is sorted in a few large slices, whole events in small ones
        held = max(1.0, (end - position) * per_cut)
        want = max(bucket_rows, int(slice_bytes / (written / held + KEY_BYTES)))
        position, low = end, high


#: The sort keys, under names no selected column has; ascending as ``filters.ORDER_ASC``.
#: (tests/unit/render/test_bulk.py holds the two to the same order)
_KEYS = [f"__order_{index}" for index in range(len(ORDER_COLUMNS))]


def _sorted_sql(select: str, source: str, where: str, keep: str | None) -> str:
    keys = ", ".join(f'"{name}" AS {key}' for name, key in zip(ORDER_COLUMNS, _KEYS,
                                                                 strict=True))
    inner = f"SELECT {select}, {keys} FROM {source} WHERE {where}"
    outer = f"SELECT * EXCLUDE ({', '.join(_KEYS)}) FROM ({inner})"
    if keep:
        outer += f" WHERE {keep}"
    return f"{outer} ORDER BY {', '.join(f'{key} ASC NULLS FIRST' for key in _KEYS)}"


def _first_pass(con, relation: str, where: str,
                params: dict[str, Any]) -> tuple[int, list[str | None]]:
    """How many events the filters select, and the quantiles 1/Q .. (Q-1)/Q of their
    occurred_at (as text, exact at microseconds; None when there are none)."""
    wanted = [index / _QUANTILES for index in range(1, _QUANTILES)]
    rows, cuts = _fetch_one(con, (
        f"SELECT count(*), CAST(approx_quantile(occurred_at, {wanted}) AS VARCHAR[]) "
        f"FROM {relation} WHERE {where}"), params)
    return rows, list(cuts or [None] * len(wanted))


def _fetch_one(con, sql: str, params: dict[str, Any]) -> Sequence[Any]:
    import duckdb

    try:
        return con.sql(sql, params=params).fetchall()[0]
    except duckdb.Error as error:
        raise ForensicsError(f"query failed: {str(error).splitlines()[0]}") from None


def _switching(con, sql_of: Callable[[str], str], params: dict[str, Any], refusable: bool,
               current: list[str], rich: str | None) -> Iterator[Any]:
    """The batches of ``sql_of(current[0])``; with ``rich`` (``ordered_batches``'
    ``fallback_select``), those before the first event marked ``fallback``, then the
    rest of them from ``sql_of(rich)`` (the same rows in the same order, as the sort keys
    order the events fully: the rows already yielded are skipped), and ``rich`` stays."""
    batches = _batches(con, sql_of(current[0]), params, refusable)
    if rich is None or current[0] is rich:
        yield from batches
        return
    done = 0
    for batch in batches:
        flags = batch.column(1)
        if not flags.true_count:
            done += batch.num_rows
            yield batch
            continue
        first = flags.to_pylist().index(True)
        if first:
            yield batch.slice(0, first)
        done += first
        batches.close()  # ends the statement: the connection runs one at a time
        current[0] = rich
        for batch in _batches(con, sql_of(rich), params):
            if done >= batch.num_rows:
                done -= batch.num_rows
                continue
            yield batch.slice(done) if done else batch
            done = 0
        return


class Refused(ForensicsError):
    """DuckDB did not parse or bind a statement (nothing was read or written)."""


def _batches(con, sql: str, params: dict[str, Any], refusable: bool = False) -> Iterator[Any]:
    import duckdb

    try:  # DuckDB parses and binds the statement here, and runs it below
        relation = con.sql(sql, params=params)
    except duckdb.Error as error:
        raise (Refused if refusable else ForensicsError)(
            f"query failed: {str(error).splitlines()[0]}") from None
    reader = None
    try:
        reader = relation.to_arrow_reader(FETCH_ROWS)
        for batch in reader:
            if batch.num_rows:
                yield batch
    except duckdb.Error as error:
        raise ForensicsError(f"query failed: {str(error).splitlines()[0]}") from None
    finally:
        if reader is not None:
            reader.close()


#: Prefix of the event columns selected for the events only the evaluator answers.
_EVENT_PREFIX = "__event_"


def query_select(compiled, events: bool = True) -> str:
    """The select for :func:`ordered_batches` of a compiled ``--query``
    (``jmes_sql.CompiledQuery``): its line with a newline (NULL: nothing printed),
    whether the evaluator must answer instead (``fallback``), and, for those events only
    (NULL otherwise), the columns the expression reads (and the event's id and origin,
    for an error naming it); without ``events``, the line and ``fallback`` alone.

    Nothing is filtered in SQL: DuckDB would evaluate the line twice (a filter on it is
    pushed below the projection as a copy of the expression); a NULL line costs the sort
    little and is not written."""
    from ..model import ABSENT_FIELD
    from .records import OCCURRED_AT_SQL, OCCURRED_AT_TEXT

    select = f"({compiled.line_sql}) || '\n' AS line"
    if compiled.always_exact:
        return select
    if not events:
        return f"{select}, {compiled.fallback_sql} AS fallback"
    needed = dict.fromkeys([*compiled.columns, ABSENT_FIELD, "id", "source_file",
                            "source_line"])
    # DuckDB reads an alias of the same SELECT (``fallback``) in the expressions after it
    guarded = ", ".join(f'CASE WHEN fallback THEN "{name}" END AS "{_EVENT_PREFIX}{name}"'
                        for name in needed)
    select += f", {compiled.fallback_sql} AS fallback, {guarded}"
    if "occurred_at" in needed:
        select += (f", CASE WHEN fallback THEN {OCCURRED_AT_SQL} END AS "
                   f'"{_EVENT_PREFIX}{OCCURRED_AT_TEXT}"')
    return select


def write_query_lines(batches: Iterable[Any], query, out: IO[str] | None = None) -> int:
    """Write the batches of :func:`query_select`: the SQL's lines as they stand, and for
    the events marked ``fallback`` what the evaluator prints (``query.lines``), in
    order. Returns how many events were selected."""
    import sys

    from .jsonl import write_arrow_lines, write_lines

    out = out or sys.stdout
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        if batch.num_columns == 1 or not batch.column(1).true_count:
            write_arrow_lines([batch], out, flush=False)
            continue
        fallback = batch.column(1).to_pylist()
        start = 0
        for index, evaluate in enumerate(fallback):
            if not evaluate:
                continue
            if index > start:
                write_arrow_lines([batch.slice(start, index - start)], out, flush=False)
            event = batch.slice(index, 1).select(range(2, batch.num_columns))
            event = event.rename_columns([name.removeprefix(_EVENT_PREFIX)
                                          for name in event.schema.names])
            write_lines(query.lines(event), out, flush=False)
            start = index + 1
        if start < batch.num_rows:
            write_arrow_lines([batch.slice(start)], out, flush=False)
    out.flush()
    return rows
