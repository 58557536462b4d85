"""The filters of ``audit tail`` (and the notebook's ``Snapshot.tail``) as bound DuckDB SQL.

A :class:`Filters` value is checked once (a bad value is a UsageError naming its flag) and
turns into a WHERE clause whose values are all bound parameters, never pasted text. The
clause only compares plain columns with constants, so DuckDB pushes it into the scan:
over a canonical snapshot, Parquet row groups whose min/max statistics cannot match are
never read.

Ordering: ``tail`` shows the newest N matching events by occurred_at, printed oldest
first. Ties are broken by zone_id, chain_seq, id, then where the row came from, so the
output is the same on every run and on every machine.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .errors import UsageError
from .timetext import iso_text

#: Values ``--decision`` accepts (compared case-insensitively with the stored decision).
#: ``partial``: current releases decide some requests only in part (FORMAT.md 6).
DECISIONS = ("allow", "deny", "partial")
DEFAULT_LIMIT = 100

#: Oldest first. Every key is given with its NULL placement so that the reverse order
#: (used to pick the newest N) is its exact mirror.
ORDER_ASC = (
    "occurred_at ASC NULLS FIRST, zone_id ASC NULLS FIRST, chain_seq ASC NULLS FIRST, "
    "id ASC NULLS FIRST, source_file ASC NULLS FIRST, source_line ASC NULLS FIRST"
)
ORDER_DESC = (
    "occurred_at DESC NULLS LAST, zone_id DESC NULLS LAST, chain_seq DESC NULLS LAST, "
    "id DESC NULLS LAST, source_file DESC NULLS LAST, source_line DESC NULLS LAST"
)
#: Columns the ordering reads (a projection must include them).
ORDER_COLUMNS = ("occurred_at", "zone_id", "chain_seq", "id", "source_file", "source_line")

_TIME_RE = re.compile(
    r"""^\s*(?P<date>\d{4}-\d{2}-\d{2})
        (?:[Tt\ ](?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})
            (?:[.,](?P<fraction>\d+))?)?)?
            \s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?\s*$""",
    re.VERBOSE,
)


def parse_time(value: str | dt.datetime | dt.date, parameter: str = "since") -> dt.datetime:
    """An ISO 8601 time as an aware UTC datetime at microsecond precision.

    Accepts ``2026-05-11T08:00:00Z``, offsets (``+02:00``, ``+0200``, ``-05``), a space
    instead of ``T``, a bare date (midnight UTC), and datetime/date objects. A time
    without an offset is UTC. Finer than microseconds rounds up, which for integer
    microsecond timestamps keeps both ``>= since`` and ``< until`` exact.
    """
    if isinstance(value, dt.datetime):
        return _as_utc(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if not isinstance(value, str):
        raise UsageError(f"{parameter} must be an ISO 8601 time, not {type(value).__name__}",
                         parameter)
    match = _TIME_RE.match(value)
    if not match:
        raise UsageError(
            f"{parameter} {value!r} is not an ISO 8601 time "
            "(e.g. 2026-05-11T08:00:00Z, 2026-05-11T10:00:00+02:00 or 2026-05-11)",
            parameter,
        )
    parts = match.groupdict()
    fraction = parts["fraction"] or ""
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    round_up = bool(fraction[6:].strip("0"))
    try:
        year, month, day = (int(p) for p in parts["date"].split("-"))
        moment = dt.datetime(
            year,
            month,
            day,
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            micros,
            tzinfo=_offset(parts["tz"]),
        )
        if round_up:
            moment += dt.timedelta(microseconds=1)
        # 9999-12-31T23:00-05:00 is past year 9999 in UTC, 0001-01-01T00:00+01:00 before 1
        return moment.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError) as error:
        raise UsageError(f"{parameter} {value!r} is not a valid time: {error}",
                         parameter) from None


def _offset(text: str | None) -> dt.timezone:
    if not text or text in ("Z", "z"):
        return dt.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} out of range")
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _strings(value: str | Iterable[str] | None, parameter: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        items = [value]
    else:
        items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{parameter} must be a string or a list of strings, not "
                             f"{item!r}", parameter)
        if not item:
            raise UsageError(f"{parameter} needs a non-empty value", parameter)
    return tuple(dict.fromkeys(items))  # de-duplicated, order kept


@dataclass(frozen=True)
class Filters:
    """What ``tail`` selects. Build it with :meth:`build`, which checks every value."""

    decision: str | None = None
    event_types: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    request_id: str | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def build(
        cls,
        *,
        decision: str | None = None,
        event_type: str | Iterable[str] | None = None,
        zone: str | Iterable[str] | None = None,
        since: str | dt.datetime | dt.date | None = None,
        until: str | dt.datetime | dt.date | None = None,
        request_id: str | None = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> Filters:
        """Check and normalise filter values as the CLI flags and the notebook give them."""
        if decision is not None:
            if not isinstance(decision, str) or decision.strip().lower() not in DECISIONS:
                raise UsageError(
                    f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}",
                    "decision",
                )
            decision = decision.strip().lower()
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise UsageError("request_id needs a non-empty value", "request_id")
        if limit is None:
            limit = 0
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < 2**63:
            raise UsageError(f"limit must be a whole number >= 0 (0 = all) and below 2**63, "
                             f"not {limit!r}",
                             "limit")
        since_at = parse_time(since, "since") if since is not None else None
        until_at = parse_time(until, "until") if until is not None else None
        if since_at is not None and until_at is not None and since_at >= until_at:
            raise UsageError(
                f"since ({_iso(since_at)}) must be before until ({_iso(until_at)}): "
                "since is inclusive, until exclusive",
                ("since", "until"),
            )
        return cls(
            decision=decision,
            event_types=_strings(event_type, "event_type"),
            zones=_strings(zone, "zone"),
            since=since_at,
            until=until_at,
            request_id=request_id,
            limit=limit,
        )

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE condition (``TRUE`` when unfiltered) and its named parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.zones:
            clauses.append(_in_list("zone_id", "zone", self.zones, params))
        if self.event_types:
            clauses.append(_in_list("event_type", "event_type", self.event_types, params))
        if self.request_id is not None:
            clauses.append("request_id = $request_id")
            params["request_id"] = self.request_id
        clauses += window_clauses(self.since, self.until, params)
        if self.decision is not None:
            clauses.append("lower(decision) = $decision")
            params["decision"] = self.decision
        return (" AND ".join(clauses) or "TRUE"), params


def window_clauses(since: dt.datetime | None, until: dt.datetime | None,
                   params: dict[str, Any]) -> list[str]:
    """The time window's conditions on occurred_at (since inclusive, until exclusive),
    their values put in ``params``: the one window of events and admin changes alike."""
    clauses = []
    if since is not None:
        clauses.append("occurred_at >= $since")
        params["since"] = since
    if until is not None:
        clauses.append("occurred_at < $until")
        params["until"] = until
    return clauses


def _in_list(column: str, name: str, values: Sequence[str], params: dict[str, Any]) -> str:
    if len(values) == 1:
        params[name] = values[0]
        return f"{column} = ${name}"
    names = []
    for index, value in enumerate(values):
        key = f"{name}_{index}"
        params[key] = value
        names.append(f"${key}")
    return f"{column} IN ({', '.join(names)})"


def _iso(moment: dt.datetime) -> str:
    return iso_text(moment) + "Z"


def _columns_sql(columns: Sequence[str] | None) -> str:
    if not columns:
        return "*"
    wanted = list(dict.fromkeys([*columns, *ORDER_COLUMNS]))
    return ", ".join(f'"{name}"' for name in wanted)


def select_sql(
    filters: Filters,
    relation: str = "unique_events",
    columns: Sequence[str] | None = None,
    limit: int | None = None,
    extra: Sequence[str] = (),
    guard: tuple[str, dict[str, Any]] | None = None,
    con=None,
) -> tuple[str, dict[str, Any]]:
    """SQL for the newest ``limit`` matching rows of ``relation``, oldest first.

    ``columns`` narrows the projection (the ordering columns are always added) so that a
    Parquet scan reads only those. ``extra`` are SQL expressions (``expr AS name``, from
    this package, never user text) computed on the selected rows only. ``limit`` defaults
    to ``filters.limit``; 0 means all. ``guard`` is one more condition with its own
    bound parameters (``Query.guard``). ``con``: with a limit, the newest rows' times are
    looked up there first (``newest_only``).
    """
    where, params = filters.where()
    if guard is not None:
        where = f"({where}) AND ({guard[0]})"
        params = {**params, **guard[1]}
    limit = filters.limit if limit is None else limit
    if limit and con is not None:
        where, params = newest_only(con, relation, where, params, limit)
    cols = _columns_sql(columns)
    outer = ", ".join(["*", *extra])
    inner = f"SELECT {cols} FROM {relation} WHERE {where}"
    if limit:
        inner += f" ORDER BY {ORDER_DESC} LIMIT {int(limit)}"
    return f"SELECT {outer} FROM ({inner}) ORDER BY {ORDER_ASC}", params


#: SQL counting the rows of the events' relations: by a value of zone_id (never NULL:
#: every row counts), not ``count(*)``: through the events view's UNION ALL BY NAME, DuckDB
#: answered ``count(*)`` by decoding every row's id (10M events: 0.27 s, against 0.02 s
#: for the few bytes a row of zone_id takes).
ROW_COUNT = "count(zone_id IS NULL)"


def count_sql(filters: Filters, relation: str = "unique_events") -> tuple[str, dict[str, Any]]:
    """SQL counting every matching row (ignores the limit; ``ROW_COUNT``)."""
    where, params = filters.where()
    return f"SELECT {ROW_COUNT} FROM {relation} WHERE {where}", params


def newest_only(con, relation: str, where: str, params: dict[str, Any],
                limit: int) -> tuple[str, dict[str, Any]]:
    """``where`` narrowed to the newest ``limit`` matching rows' times: occurred_at at or
    after the ``limit``-th newest, found first on that one column (DuckDB's top-N of a
    single value). The rows then read whole and sorted on the six keys are those few,
    their row groups picked by the times' statistics: tail's newest 100 of 10M events
    took 1.2 s (every row group's sort keys read), and a --limit of 5,000 whole events ran
    DuckDB out of memory. The newest rows by ``ORDER_DESC`` are all at or after that
    time: when ``limit`` rows have one, a row without one, or an earlier one, follows
    them all. Unchanged when fewer have one, or that time is infinite. ``params``: those
    of ``where`` alone (DuckDB refuses one a statement does not use)."""
    found = run_query(con, f"SELECT epoch_us(occurred_at) FROM {relation} WHERE ({where}) "
                           f"AND occurred_at IS NOT NULL ORDER BY occurred_at DESC "
                           f"LIMIT 1 OFFSET {int(limit) - 1}", params).column(0).to_pylist()
    if not found or found[0] is None:
        return where, params
    # the time as microseconds, not text: DuckDB cast every row's time to text before
    # picking the N-th (0.38 s against 0.14 at 10M); infinite times have none
    return (f"({where}) AND occurred_at >= make_timestamptz($newest_from)",
            {**params, "newest_from": found[0]})


def run_query(con, sql: str, params: dict[str, Any]) -> pa.Table:
    """Run SQL and fetch the whole result as Arrow (a DuckDB error becomes ours)."""
    return _ours(con, lambda: con.sql(sql, params=params).to_arrow_table())


def run_statement(con, sql: str, params: dict[str, Any]) -> None:
    """Run SQL for what it does (a table made), a DuckDB error becoming ours."""
    _ours(con, lambda: con.execute(sql, params))


def _ours(con, call: Callable[[], Any]) -> Any:
    import duckdb

    try:
        return call()
    except duckdb.Error as error:
        from .engine import query_error

        raise query_error(error, con) from None


def select(
    con,
    filters: Filters,
    relation: str = "unique_events",
    columns: Sequence[str] | None = None,
    extra: Sequence[str] = (),
    limit: int | None = None,
) -> pa.Table:
    """The rows ``filters`` select from ``relation`` (newest N, oldest first), as Arrow."""
    sql, params = select_sql(filters, relation, columns, limit=limit, extra=extra,
                             con=con)
    return run_query(con, sql, params)


def count(con, filters: Filters, relation: str = "unique_events") -> int:
    """How many rows of ``relation`` match (regardless of the limit)."""
    sql, params = count_sql(filters, relation)
    return run_query(con, sql, params).column(0)[0].as_py()


# --- why nothing matched -----------------------------------------------------------------


#: how a message names a categorical parameter: (one value is a ..., the list's title)
_WORDS = {
    "zones": ("zone", "zones"),
    "event_types": ("type", "event types"),
    "decision": ("decision", "decisions"),
}


@dataclass(frozen=True)
class Unmatched:
    """A categorical filter (zones, event types, decision) whose values no event has:
    the likely typo behind an empty result, with the values that do exist."""

    parameter: str  #: the Filters field: "zones", "event_types" or "decision"
    values: tuple[str, ...]  #: the given values no event has
    present: tuple[str, ...]  #: the values the events have, sorted
    suggestions: tuple[tuple[str, str], ...]  #: (given value, closest present value)

    def message(self, shown: int = 12) -> str:
        """``no events in zone 'zone-gama'; zones present: zone-alpha, zone-beta (did you
        mean 'zone-gamma'?)``; at most ``shown`` present values are listed."""
        word, plural = _WORDS[self.parameter]
        given = ", ".join(repr(value) for value in self.values)
        preposition = {"zones": "in", "event_types": "of"}.get(self.parameter, "with")
        head = f"no events {preposition} {word} {given}"
        listed = ", ".join(self.present[:shown]) or "none"
        if len(self.present) > shown:
            listed += f", ... ({len(self.present)} in all)"
        text = f"{head}; {plural} present: {listed}"
        if self.suggestions:
            text += " (did you mean " + ", ".join(
                repr(close) for _, close in self.suggestions) + "?)"
        return text


def unmatched_values(con, filters: Filters, relation: str = "events") -> list[Unmatched]:
    """The categorical filter values no row of ``relation`` has (empty when every given
    value exists, so that only the combination of filters matched nothing). One query
    (the distinct values of the filtered columns): meant for when a result came back
    empty, not for every call."""
    import difflib

    wanted = [
        (name, expression, given)
        for name, expression, given in (
            ("zones", "zone_id", filters.zones),
            ("event_types", "event_type", filters.event_types),
            ("decision", "lower(decision)",
             (filters.decision,) if filters.decision is not None else ()),
        )
        if given
    ]
    if not wanted:
        return []
    lists = ", ".join(f"list(DISTINCT {expression})" for _, expression, _ in wanted)
    row = run_query(con, f"SELECT {lists} FROM {relation}", {}).to_pylist()[0]
    found = []
    for (name, _, given), values in zip(wanted, row.values(), strict=True):
        present = tuple(sorted(str(value) for value in values or () if value is not None))
        missing = tuple(value for value in given if value not in present)
        if not missing:
            continue
        suggestions = tuple(
            (value, close[0])
            for value in missing
            if (close := difflib.get_close_matches(value, present, n=1, cutoff=0.6))
        )
        found.append(Unmatched(name, missing, present, suggestions))
    return found


def empty_result_hint(con, filters: Filters, relation: str = "events") -> str | None:
    """One line saying which filter values exist nowhere (see :func:`unmatched_values`),
    or None when the values exist and only their combination is empty."""
    unmatched = unmatched_values(con, filters, relation)
    return "; ".join(item.message() for item in unmatched) or None
