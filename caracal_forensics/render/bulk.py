"""``tail --json`` and ``--query`` results in bulk: DuckDB writes the lines, in order
(``tail --json``'s are written by a C kernel where it is built: ``write_json_lines``).

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

from ..engine import query_error
from ..errors import ForensicsError
from ..filters import ORDER_ASC, ORDER_COLUMNS, ORDER_DESC, ROW_COUNT, Filters, newest_only

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
#: Events whose lines are measured (``line_bytes``) when the selection is more than one
#: first slice: the first rows of the relation, read before any filter.
SAMPLE_ROWS = 2048
#: At most this many distinct texts of a ``per_text`` column among the sample's events
#: (each used 32 times or more): its values are computed once per text and joined.
PER_TEXT_DISTINCT = SAMPLE_ROWS // 32


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
    line_bytes: str | None = None,
    per_text: tuple[str, Callable[[str], str]] | None = None,
    compact: bool = False,
    sorted_only: str | None = None,
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
    such an event; from there on with them, the slice it came from again.
    ``line_bytes``: SQL over the selected columns giving a row's bytes (``strlen(line)``):
    when every event is printed and they are more than a first slice holds, the first
    ``SAMPLE_ROWS`` events are measured with it and the first slice sized from what they
    print, not ``bucket_rows`` (a narrow projection of a million events is then one
    statement, one scan, instead of two). ``per_text``: a jsonb column and ``wrap`` as
    ``CompiledQuery.relation(per_text=True)`` makes it; taken instead of ``wrap`` when
    the sample holds at most ``PER_TEXT_DISTINCT`` texts of the column (the determining
    policies of 1M events: 4; their lists then computed 4 times, not 1M). ``compact``:
    ``select`` costs more per DuckDB vector than per event (a compiled query's lambdas
    over lists): when filters or a guard select events, they are sorted before it reads
    them (``_selected``), not only its result after (not when ``per_text`` is taken:
    the lists are few then). ``sorted_only``: a condition over what ``wrap`` makes of
    the events, TRUE for every event whose row matters (a compiled query's
    ``prints_sql OR fallback_sql``): the others are not sorted, and their sort keys
    size no slice (a query printing 35,089 of 1M events sorted all 1M, and at 10M
    needed six slices, six scans, to stay within memory)."""
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
    if filters.limit:  # before the select's own parameters join the filters'
        where, bound = newest_only(con, relation, where, bound, filters.limit)
    bound = {**bound, **(params or {})}
    sample = _Sample(con, relation, select, where, bound, wrap, line_bytes, per_text,
                     sorted_only)
    if filters.limit:
        wanted = "*" if columns is None else ", ".join(
            f'"{name}"' for name in dict.fromkeys([*columns, *ORDER_COLUMNS]))
        source = (f"(SELECT {wanted} FROM {relation} WHERE {where} "
                  f"ORDER BY {ORDER_DESC} LIMIT {int(filters.limit)})")
        kept = sorted_only or "TRUE"
        yield from _switching(con, lambda s: _sorted_sql(s, sample.wrap(source), kept, keep),
                              bound, refusable, current, fallback_select)
        return

    def source(condition: str) -> tuple[str, str]:
        """What the select reads, and the condition left to apply to it: the selected
        events sorted (``compact``, filters or a guard select them, and the lists are
        not computed per distinct text), else the relation."""
        also = f" AND ({sorted_only})" if sorted_only else ""
        if compact and where != "TRUE" and not (per_text and sample.wrap is per_text[1]):
            return sample.wrap(_selected(relation, condition)), "TRUE" + also
        return sample.wrap(relation), condition + also

    plan = _slices(con, relation, plain_where, plain_bound, where, bound, bucket_rows,
                   slice_bytes, sample.bytes_per_event if sample.sql else None)
    step, first = next(plan), True
    while True:
        condition, sliced = step
        written = 0
        for batch in _switching(
                con, lambda s, c=condition: _sorted_sql(s, *source(c), keep),
                sliced, refusable and first, current, fallback_select):
            written += batch.nbytes
            yield batch
        first = False
        try:
            step = plan.send(written)
        except StopIteration:
            return


def _slices(con, relation: str, plain_where: str, plain_bound: dict[str, Any], where: str,
            bound: dict[str, Any], bucket_rows: int, slice_bytes: int,
            measure: Callable[[], float | None] | None = None):
    """The slices of occurred_at every selected event is printed in: yields (condition,
    its parameters) per slice, oldest first, and is sent back the bytes the slice took
    (what sizes the next); see ``ordered_batches``. ``measure``: the bytes a selected
    event prints and its sort keys hold, from a sample (None: unknown), asked only when
    there are more than one first slice holds; with it, the events are counted first
    (one column read) and the quantiles asked for only when they take several slices."""
    want = bucket_rows
    if measure is not None:
        rows = _fetch_one(con, f"SELECT {ROW_COUNT} FROM {relation} WHERE {plain_where}",
                          plain_bound)[0]
        if rows > bucket_rows * _SLACK:
            printed = measure()
            if printed is not None:
                want = max(bucket_rows, int(slice_bytes / printed))
        if rows <= want * _SLACK:  # one slice: every event, no quantile needed
            yield where, dict(bound)
            return
    rows, cuts = _first_pass(con, relation, plain_where, plain_bound)
    per_cut = rows / _QUANTILES  # selected events between two quantiles, about
    position, low = 0, None
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
        written = yield condition, sliced
        if high is None:
            return
        # what the slice printed per event it held sizes the next: a selective query or a
        # narrow projection is sorted in a few large slices, whole events in small ones
        held = max(1.0, (end - position) * per_cut)
        want = max(bucket_rows, int(slice_bytes / ((written or 0) / held + KEY_BYTES)))
        position, low = end, high


#: The sort keys, under names no selected column has; ascending as ``filters.ORDER_ASC``.
#: (tests/unit/render/test_bulk.py holds the two to the same order)
_KEYS = [f"__order_{index}" for index in range(len(ORDER_COLUMNS))]


def _selected(relation: str, where: str) -> str:
    """The events of ``relation`` that ``where`` selects, in order: what the select reads
    when a filter drops most events. DuckDB filters in the scan and passes on vectors
    as sparse as the filter (70,178 events of 1M: some 140 in each vector of 2,048);
    the lambdas and CASEs of a compiled ``--query`` cost per vector more than per event,
    so the lines of the step-up recipe took 0.46 s of CPU over them against 0.11 s over
    the same events packed. A sort packs them, and costs little beside the one after
    the select (whose ORDER BY alone orders the output)."""
    return f"(SELECT * FROM {relation} WHERE {where} ORDER BY {ORDER_ASC})"


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


class _Sample:
    """The first ``SAMPLE_ROWS`` events of the relation as ``ordered_batches`` selects them:
    what one prints with its sort keys (``line_bytes``), asked only when the events are
    more than a first slice holds, and ``wrap``, the relation the select reads: the
    ``per_text`` one once the sample holds at most ``PER_TEXT_DISTINCT`` texts of its
    column, else the plain one."""

    def __init__(self, con, relation: str, select: str, where: str, bound: dict[str, Any],
                 wrap: Callable[[str], str] | None, line_bytes: str | None,
                 per_text: tuple[str, Callable[[str], str]] | None,
                 sorted_only: str | None = None) -> None:
        self.con, self.bound, self.per_text = con, bound, per_text
        self.wrap: Callable[[str], str] = wrap or (lambda source: source)
        self.sql: str | None = None
        if line_bytes is None:
            return
        sampled = f"(SELECT * FROM {relation} LIMIT {SAMPLE_ROWS})"
        keys = " + ".join(f'coalesce(strlen(CAST("{name}" AS VARCHAR)), 0)'
                          for name in ORDER_COLUMNS)
        texts = (f"(SELECT count(DISTINCT {per_text[0]}) FROM {sampled})" if per_text
                 else "NULL")
        # an event printing nothing is sorted all the same (its keys count), unless
        # ``sorted_only`` leaves it out
        kept = f"({sorted_only})" if sorted_only else "true"
        self.sql = (f"SELECT count(*), sum(CASE WHEN __kept THEN coalesce({line_bytes}, 0) "
                    f"+ __key_bytes ELSE 0 END), {texts} FROM (SELECT {select}, {keys} AS "
                    f"__key_bytes, {kept} AS __kept FROM {self.wrap(sampled)} WHERE {where})")

    def bytes_per_event(self) -> float | None:
        """What a selected event takes (line, sort keys, an Arrow offset and flags); None
        when the sample holds none, or DuckDB refuses it (the slices say so, as they
        would have). Chooses ``wrap`` on the way."""
        import duckdb

        if self.sql is None:
            return None
        try:
            events, printed, texts = self.con.sql(self.sql, params=self.bound).fetchall()[0]
        except duckdb.Error:
            return None
        if self.per_text is not None and texts is not None and texts <= PER_TEXT_DISTINCT:
            self.wrap = self.per_text[1]
        return (printed or 0) / events + 16 if events else None


def _fetch_one(con, sql: str, params: dict[str, Any]) -> Sequence[Any]:
    import duckdb

    try:
        return con.sql(sql, params=params).fetchall()[0]
    except duckdb.Error as error:
        raise query_error(error, con) from None


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


def _close(pieces: Any) -> None:
    """End a generator of pieces (its statement and files) now; a list has nothing to end."""
    close = getattr(pieces, "close", None)
    if close is not None:
        close()


class Refused(ForensicsError):
    """DuckDB did not parse or bind a statement (nothing was read or written)."""


def _batches(con, sql: str, params: dict[str, Any], refusable: bool = False,
             rows: int = FETCH_ROWS) -> Iterator[Any]:
    import duckdb

    try:  # DuckDB parses and binds the statement here, and runs it below
        relation = con.sql(sql, params=params)
    except duckdb.Error as error:
        if refusable:
            raise Refused(f"query failed: {str(error).splitlines()[0]}") from None
        raise query_error(error, con) from None
    reader = None
    try:
        reader = relation.to_arrow_reader(rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    except duckdb.Error as error:
        raise query_error(error, con) from None
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

    The line is not filtered on: DuckDB would build it twice (a filter on it is pushed
    below the projection as a copy of the expression). The events that print nothing
    are left out before the sort on the expression's truth instead
    (``CompiledQuery.prints_sql``, ``ordered_batches``' ``sorted_only``); a NULL line
    left is not written."""
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


def write_tail_lines(con, filters: Filters, query=None, out: IO[str] | None = None,
                     relation: str = "unique_events") -> int:
    """Write what ``audit tail --json`` prints (``query`` None) or ``audit tail --query``
    (``query``: a ``render.query.Query``) for the events ``filters`` select, oldest first,
    to ``out`` (stdout). Returns how many events came out of DuckDB: 0 when nothing
    matched (an event the query skips is counted).

    DuckDB writes the lines when it can: every ``--json`` line (``write_json_lines``), and
    a query it compiles (``jmes_sql``; the events it cannot answer exactly go to the
    evaluator in place). A query it does not compile, or one DuckDB refuses before
    anything is written, is evaluated in Python a batch of events at a time; with every
    match wanted, its ``field == 'text'`` conditions still run in SQL first (``guard``: a
    limit picks the newest N events before the query sees them)."""
    import sys

    from .jsonl import write_lines
    from .records import EVENT_COLUMNS, OCCURRED_AT_SQL, OCCURRED_AT_TEXT, byte_slices

    out = out or sys.stdout
    if query is None:  # the C kernel writes the lines, or DuckDB builds them
        return write_json_lines(con, filters, out, relation)
    guard = query.guard() if not filters.limit else None
    # the event's columns, and where it came from, for an error naming it (too_deep)
    needed = (*EVENT_COLUMNS, "source_file", "source_line")
    sql = query.to_sql()
    if sql is not None:
        try:
            return write_query_lines(ordered_batches(
                con, filters, query_select(sql, events=False), guard=guard,
                columns=(*needed, *sql.columns), relation=relation, wrap=sql.relation,
                refusable=True, fallback_select=None if sql.always_exact else query_select(sql),
                line_bytes="strlen(line)", compact=sql.lists,
                sorted_only=f"({sql.prints_sql}) OR ({sql.fallback_sql})",
                per_text=sql.per_text_lets and (
                    sql.per_text_lets[0],
                    lambda source: sql.relation(source, per_text=True))), query, out)
        except Refused:  # before anything was written: the evaluator answers the same
            pass
    columns = ", ".join(f'"{name}"' for name in needed)
    rows = 0
    for batch in ordered_batches(con, filters, f"{columns}, {OCCURRED_AT_SQL} AS "
                                 f"{OCCURRED_AT_TEXT}", guard=guard, columns=needed,
                                 relation=relation):
        rows += batch.num_rows
        for part in byte_slices(batch):  # long events a few at a time
            write_lines(list(query.lines(part)), out)
    return rows


# --- tail --json: every line written by the C kernel -----------------------------------

#: Arrow bytes of event columns one slice holds when the kernel writes the lines (one
#: slice at a time). Larger slices cut fewer row groups (each cut row group is read by
#: two slices); 384 MB peaked at 944 MB on 10M events with --zone or --decision.
NATIVE_SLICE_BYTES = 256 << 20
#: Bytes of lines handed to the system at once.
WRITE_BYTES = 8 << 20
#: Rows of one Arrow batch DuckDB hands over for a slice.
NATIVE_FETCH_ROWS = 2048


def write_json_lines(con, filters: Filters, out: IO[str] | None = None,
                     relation: str = "unique_events") -> int:
    """Write the ``tail --json`` line of every event ``filters`` select (the newest
    ``filters.limit``, or all), oldest first; returns how many were written.

    With the C kernel (``native_lines``): every event of Parquet files alone is swept
    row group by row group (``sweep``); otherwise DuckDB reads the record's columns and
    the sort keys of one slice of occurred_at at a time (as ``ordered_batches`` slices)
    or the newest ``limit`` in order; Arrow sorts the keys, and the kernel writes the
    lines in that order straight to ``out``'s file descriptor, on every core: no line
    is built in SQL, none is moved by a sort. Without it, or for a time the kernel does
    not write, DuckDB builds them (``records.json_line_sql``)."""
    import sys

    from . import native_lines
    from .jsonl import write_arrow_lines
    from .records import EVENT_COLUMNS, json_line_sql, json_text_columns_sql

    out = out or sys.stdout
    needed = list(dict.fromkeys([*EVENT_COLUMNS, "source_file", "source_line",
                                 *ORDER_COLUMNS]))
    if native_lines.AVAILABLE and native_lines.supported(_schema(con, relation, needed)):
        return _write_native(con, filters, out, relation, needed)
    if filters.limit:  # the newest N picked first, then N lines built
        return write_arrow_lines(ordered_batches(
            con, filters, f"{json_line_sql()} AS line", columns=needed, relation=relation),
            out)
    prepared = f"(SELECT *, {json_text_columns_sql()} FROM {relation})"
    return write_arrow_lines(ordered_batches(
        con, filters, f"{json_line_sql(prepared=True)} AS line", relation=prepared), out)


def _schema(con, relation: str, columns: Sequence[str]):
    import duckdb

    listed = ", ".join(f'"{name}"' for name in columns)
    try:
        return con.sql(f"SELECT {listed} FROM {relation} LIMIT 0").to_arrow_table().schema
    except duckdb.Error as error:
        raise query_error(error, con) from None


class _Sink:
    """Where the lines go: the file descriptor of ``out`` when it has one (large writes,
    the GIL released), else its binary buffer, else its text."""

    def __init__(self, out: IO[str]):
        import io

        out.flush()  # what was written as text goes first
        self.out = out
        self.binary = getattr(out, "buffer", None)
        self.fd = None
        try:
            self.fd = out.fileno()
            if self.binary is not None:
                self.binary.flush()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.fd = None

    def write(self, data: memoryview) -> None:
        import os

        if self.fd is not None:
            while len(data):
                data = data[os.write(self.fd, data):]
        elif self.binary is not None:
            self.binary.write(data)
        else:
            self.out.write(bytes(data).decode("utf-8"))

    def flush(self) -> None:
        if self.fd is None:
            (self.binary or self.out).flush()


#: The times the kernel writes (``native_lines.TIME_RANGE``): a selection with any other
#: (a year before 1 or after 9999) is written by DuckDB's lines.
_OUTSIDE_TIMES = ("(occurred_at < CAST('0001-01-01 00:00:00+00' AS TIMESTAMPTZ) OR "
                  "occurred_at >= CAST('10000-01-01 00:00:00+00' AS TIMESTAMPTZ))")


def _write_native(con, filters: Filters, out: IO[str], relation: str,
                  needed: Sequence[str]) -> int:
    """``write_json_lines`` with the kernel: every event of Parquet files alone swept
    (``sweep``, its reading in a thread), else a slice read at a time (DuckDB on every
    core); the lines written by the kernel on every core, in order as they come."""
    from . import native_lines

    where, bound = filters.where()
    pieces = None
    if not filters.limit and relation == "unique_events":
        from .sweep import sorted_pieces

        # taken only when the files' statistics put every time within the kernel's years:
        # no count of the others then (DuckDB read every occurred_at for it, 40 ms at 10M)
        pieces = sorted_pieces(con, needed, filters)
    if pieces is None and _fetch_one(
            con, f"SELECT count(*) FROM {relation} WHERE ({where}) AND {_OUTSIDE_TIMES}",
            bound)[0]:
        from .jsonl import write_arrow_lines
        from .records import json_line_sql

        return write_arrow_lines(ordered_batches(
            con, filters, f"{json_line_sql()} AS line", columns=needed, relation=relation),
            out)
    listed = ", ".join(f'"{name}"' for name in needed)
    writer = _LineWriter(_Sink(out))
    written = 0
    try:
        if filters.limit:  # DuckDB picks and sorts the newest N, handed over in pieces
            where, bound = newest_only(con, relation, where, bound, filters.limit)
            source = (f"SELECT {listed} FROM {relation} WHERE {where} "
                      f"ORDER BY {ORDER_DESC} LIMIT {int(filters.limit)}")
            piece: list[Any] = []
            size = 0
            for batch in _batches(con, f"SELECT * FROM ({source}) ORDER BY {ORDER_ASC}",
                                  bound, rows=NATIVE_FETCH_ROWS):
                piece.append(batch)
                size += batch.nbytes
                if size >= WRITE_BYTES * 4:
                    written += writer.write(native_lines.LineTable(piece), None)
                    piece, size = [], 0
            if piece:
                written += writer.write(native_lines.LineTable(piece), None)
        else:
            if pieces is not None:  # Arrow alone from here: a thread of its own
                pieces = _ahead(pieces)
            sliced = pieces is None
            if sliced:
                pieces = _sorted_slices(con, relation, listed, where, bound)
            try:
                for table, order in pieces:
                    written += writer.write(table, order)
                    del table, order
                    if sliced:  # one slice held at a time (see _sorted_slices)
                        writer.finish()
            finally:
                _close(pieces)
        writer.finish()
        writer.sink.flush()
    finally:
        writer.close()
    return written


def _ahead(pieces: Iterator[Any]) -> Iterator[Any]:
    """``pieces`` made in a thread, one ahead of the lines written: the sweep's next step
    (waiting for its row group, merging the rows held, its ``LineTable``) is done while
    the lines of this one are written, not between them (the main thread spent 2-3.6 s
    of a 10M run there, the lines' threads idle and the pipe dry). Stops the thread when
    the caller stops (a closed pipe, an interrupt) and raises what the thread raised."""
    import queue
    import threading

    handed: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for piece in pieces:
                if not hand((piece, None)):
                    return
                del piece
            hand((done, None))
        except BaseException as error:  # handed over to the caller, raised there
            hand((None, error))
        finally:
            _close(pieces)

    thread = threading.Thread(target=run, name="tail-json-sweep", daemon=True)
    thread.start()
    try:
        while True:
            piece, error = handed.get()
            if error is not None:
                raise error
            if piece is done:
                return
            yield piece
            del piece
    finally:
        stop.set()
        thread.join()


def _sorted_slices(con, relation: str, listed: str, where: str,
                   bound: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """(``native_lines.LineTable``, the order of its rows) per slice of occurred_at,
    oldest first. One slice at a time: reading the next in a thread while one is written
    held two (smaller slices, so more row groups read twice) and measured slower on two
    cores (bench/RESULTS.md, issue 20)."""
    import pyarrow as pa

    from . import native_lines

    plan = _slices(con, relation, where, bound, where, bound, BUCKET_ROWS,
                   NATIVE_SLICE_BYTES)
    step = next(plan)
    while True:
        condition, params = step
        batches = list(_batches(con, f"SELECT {listed} FROM {relation} WHERE {condition}",
                                params, rows=NATIVE_FETCH_ROWS))
        size = 0
        if batches:
            table = pa.Table.from_batches(batches)
            size = table.nbytes
            order = native_lines.order_buffer(native_lines.sort_order(table))
            del table
            yield native_lines.LineTable(batches), order
            del batches, order
        try:
            step = plan.send(size)
        except StopIteration:
            return


class _LineWriter:
    """Writes the lines of ``native_lines.LineTable``s: pieces of rows rendered by a pool
    of threads (the kernel releases the GIL), written in order as they are done, the
    pieces of one table following those of the one before without a pause (``finish``
    writes the last)."""

    #: Rendering pieces in flight (each writes into its own buffer).
    AHEAD = 4

    def __init__(self, sink: _Sink):
        import os
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.sink = sink
        self.pool = ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 4)),
                                       thread_name_prefix="tail-json-lines")
        self.free = [memoryview(bytearray(WRITE_BYTES)) for _ in range(self.AHEAD + 1)]
        self.per_row = 0.0  # bytes of line per row, as last written
        self.pending: deque = deque()

    def write(self, table: Any, order: Any) -> int:
        """Start writing the lines of the rows ``order`` lists (an int64 buffer; None:
        every row as they are), those of earlier tables written meanwhile; returns how
        many."""
        rows = table.rows if order is None else memoryview(order).nbytes // 8
        pending = self.pending
        start = 0
        while start < rows:
            if len(pending) >= self.AHEAD:
                self._drain(pending.popleft())
            # rows of about 7/8 of a buffer, by the lines written so far (a piece
            # longer than its buffer takes more: see _render)
            per_row = self.per_row or table.nbytes / max(1, table.rows) * 2
            step = max(1, int(WRITE_BYTES * 7 / 8 / max(1.0, per_row)))
            end = min(rows, start + step)
            buffer = self.free.pop() if self.free else memoryview(bytearray(WRITE_BYTES))
            pending.append(self.pool.submit(_render, table, order, start, end, buffer))
            start = end
        return rows

    def finish(self) -> None:
        """Write every line started."""
        while self.pending:
            self._drain(self.pending.popleft())

    def _drain(self, future: Any) -> None:
        buffer, pieces, rows = future.result()
        size = 0
        for piece in pieces:
            self.sink.write(piece)
            size += len(piece)
        self.free.append(buffer)
        self.per_row = size / max(1, rows)

    def close(self) -> None:
        """Stop: pieces not started are dropped, those being rendered waited for (their
        buffers are still being written into)."""
        for future in self.pending:
            future.cancel()
        for future in self.pending:
            if not future.cancelled():
                future.exception()
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _render(table: Any, order: Any, start: int, end: int,
            buffer: memoryview) -> tuple[memoryview, list[memoryview], int]:
    """The lines of rows order[start:end]: (the buffer, the pieces of it or of larger
    buffers that hold them, in order, how many rows)."""
    pieces = []
    own = buffer
    position = start
    while position < end:
        position, size = table.render(order, position, end, buffer)
        if size < 0:  # a line longer than the buffer: one of its own
            buffer = memoryview(bytearray(-size))
            continue
        pieces.append(buffer[:size])
        if position < end:  # the rest in a new buffer: this one is handed over whole
            buffer = memoryview(bytearray(len(own)))
    return own, pieces, end - start
