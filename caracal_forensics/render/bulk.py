"""``tail --json`` and ``--query`` results in bulk: DuckDB writes the lines, in order.

A line is a SQL expression (``records.json_line_sql``, or the one
``jmes_sql.compile_query`` makes of a JMESPath expression); DuckDB computes it for the
selected events and hands over Arrow batches of finished lines, which
``jsonl.write_arrow_lines`` writes as they stand. No Python object per event.

Every event, oldest first, needs a sort; one sort of 10M events (~10 GB of lines) goes far
past DuckDB's memory limit and spills all of it. So the selection is sorted in slices of
occurred_at (``BUCKET_ROWS`` events each, by the quantiles of a first pass over the
occurred_at column alone): each slice is one query whose occurred_at range DuckDB pushes
into the scan (a canonical snapshot's row groups outside it are skipped), sorted in
memory and streamed out before the next begins. Memory stays that of one slice; ``|
head`` stops it at the next write (BrokenPipeError, exit 0, as before).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ForensicsError
from ..filters import ORDER_COLUMNS, ORDER_DESC, Filters

#: Events sorted at once when printing every match: about 250 MB of lines of real events.
BUCKET_ROWS = 250_000
#: Rows of one Arrow batch handed over by DuckDB: its own vector, so Python never holds
#: more of a long event's lines than DuckDB does.
FETCH_ROWS = 2048
#: The quantiles of occurred_at the first pass asks for (slices merge adjacent ones).
_QUANTILES = 256


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
) -> Iterator[Any]:
    """Arrow record batches of ``SELECT {select}`` over the events ``filters`` select
    from ``relation`` (newest ``filters.limit``, or every one), oldest first.

    ``select``: SQL from this package (``json_line_sql() AS line``, a compiled query),
    never user text, with its bound ``params``; ``keep``: a condition on the selected
    columns (``line IS NOT NULL``); ``guard``: one more condition on the events (see
    ``Query.guard``)."""
    where, bound = filters.where()
    if guard is not None:
        where = f"({where}) AND ({guard[0]})"
        bound = {**bound, **guard[1]}
    bound = {**bound, **(params or {})}
    if filters.limit:
        source = (f"(SELECT * FROM {relation} WHERE {where} "
                  f"ORDER BY {ORDER_DESC} LIMIT {int(filters.limit)})")
        yield from _batches(con, _sorted_sql(select, source, "TRUE", keep), bound)
        return
    for low, high in _slices(con, relation, where, bound, bucket_rows):
        condition = where
        sliced = dict(bound)
        if low is not None:
            condition += " AND occurred_at >= CAST($slice_low AS TIMESTAMPTZ)"
            sliced["slice_low"] = low
        if high is not None:
            below = "occurred_at < CAST($slice_high AS TIMESTAMPTZ)"
            condition += f" AND ({below} OR occurred_at IS NULL)" if low is None else \
                f" AND {below}"
            sliced["slice_high"] = high
        yield from _batches(con, _sorted_sql(select, relation, condition, keep), sliced)


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


def _slices(con, relation: str, where: str, params: dict[str, Any],
            bucket_rows: int) -> list[tuple[str | None, str | None]]:
    """(low, high) occurred_at bounds (text, low inclusive, high exclusive; None: open,
    NULLs go with the first) of slices of about ``bucket_rows`` selected events each."""
    wanted = [index / _QUANTILES for index in range(1, _QUANTILES)]
    rows, cuts = _fetch_one(con, (
        f"SELECT count(*), CAST(approx_quantile(occurred_at, {wanted}) AS VARCHAR[]) "
        f"FROM {relation} WHERE {where}"), params)
    slices = -(-rows // max(1, bucket_rows))
    if slices <= 1 or not cuts:
        return [(None, None)]
    step = len(wanted) / slices
    bounds: list[str] = []
    for index in range(1, slices):
        cut = cuts[min(len(cuts) - 1, int(index * step))]
        if cut is not None and (not bounds or cut != bounds[-1]):
            bounds.append(cut)
    edges: list[str | None] = [None, *bounds, None]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _fetch_one(con, sql: str, params: dict[str, Any]) -> Sequence[Any]:
    import duckdb

    try:
        return con.sql(sql, params=params).fetchall()[0]
    except duckdb.Error as error:
        raise ForensicsError(f"query failed: {str(error).splitlines()[0]}") from None


def _batches(con, sql: str, params: dict[str, Any]) -> Iterator[Any]:
    import duckdb

    try:
        reader = con.sql(sql, params=params).to_arrow_reader(FETCH_ROWS)
        for batch in reader:
            if batch.num_rows:
                yield batch
    except duckdb.Error as error:
        raise ForensicsError(f"query failed: {str(error).splitlines()[0]}") from None
