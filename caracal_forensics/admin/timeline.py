"""``timeline``: a zone's admin changes and decision events in one order, one line each.

"What changed just before this started?" is answered by reading down one screen:

    10:02:00.250Z  change      alice@example.com: POST .../psv-7/activate -> 200
    10:03:05.000Z  deny   26x  app-12  token_exchange psv-7 (deny-legacy-scopes)
                                       until 10:09:30.003Z

(each line begins with the full date, and is one line however long).

The changes are those of the zone's admin chain, and of the global chain (rows without a
zone) that name the zone (its id as entity_id or as a segment of the path). The decision
events are the zone's events with a decision. So that a spike does not drown the changes,
a run of identical decisions for one principal (same decision, event type, policy set
version and determining policies, one after the other for that principal) is one line
with a count and its time range; a successful change (status below 400) ends every run,
so the decisions after it always start a line of their own. A failed attempt is shown
but ends nothing: it changed nothing.

A busy zone's runs are many (a zone of 2M events whose principals rarely repeat a
decision: 1.9M lines), so they stay in DuckDB (``timeline_stream``): counted there for the
heading and the column widths, then read in order a batch at a time and merged with the
changes as they are written; ``timeline`` holds them all, for a notebook.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..filters import Filters, run_query, run_statement, window_clauses
from ..timetext import utc_times
from .changes import OCCURRED_AT_SQL, OCCURRED_AT_TEXT, change_records, occurred_text
from .model import GLOBAL_CHAIN
from .snapshot import UNIQUE_VIEW

#: The principal of a decision event (FORMAT.md 6): application_id, else principal_id.
PRINCIPAL_SQL = ("coalesce(TRY(json_extract_string(metadata_json, '$.application_id')), "
                 "TRY(json_extract_string(metadata_json, '$.principal_id')))")


@dataclass(frozen=True)
class Change:
    """One admin change: its record (``admin.changes.change_records``)."""

    at: dt.datetime
    record: dict[str, Any]

    @property
    def failed(self) -> bool:
        status = self.record.get("status_code")
        return status is not None and status >= 400

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "change", **self.record}


@dataclass
class Decisions:
    """A run of identical decisions for one principal: how many, first and last."""

    decision: str | None
    principal: str | None
    event_type: str | None
    policy_set_id: str | None
    policy_set_version_id: str | None
    policies: tuple[str, ...]
    first_at: dt.datetime
    last_at: dt.datetime
    first_request_id: str | None
    last_request_id: str | None
    first_event_id: str | None
    count: int = 1

    @property
    def at(self) -> dt.datetime:
        return self.first_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "decisions",
            "decision": self.decision,
            "count": self.count,
            "principal": self.principal,
            "first_at": occurred_text(self.first_at),
            "last_at": occurred_text(self.last_at),
            "event_type": self.event_type,
            "policy_set_id": self.policy_set_id,
            "policy_set_version_id": self.policy_set_version_id,
            "determining_policies": list(self.policies),
            "first_request_id": self.first_request_id,
            "last_request_id": self.last_request_id,
            "first_event_id": self.first_event_id,
        }


@dataclass
class Timeline:
    """A zone's changes and (collapsed) decisions in a window, oldest first."""

    zone: str
    since: dt.datetime | None
    until: dt.datetime | None
    entries: list[Change | Decisions] = field(default_factory=list)
    events: int = 0  #: decision events read
    changes: int = 0  #: admin changes read

    def lines(self) -> list[str]:
        """One line per entry (see the module's example); control characters escaped."""
        return render_lines(self.entries)

    def text(self) -> str:
        head = _heading(self.zone, self.changes, self.events, len(self.entries))
        return "\n".join([head, *self.lines()])

    def to_dicts(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.entries]

    def __str__(self) -> str:
        return self.text()


def _heading(zone: str, changes: int, events: int, lines: int) -> str:
    return (f"Timeline of zone {_show(zone)}: {changes} admin change(s), "
            f"{events} decision event(s) in {lines} line(s)")


def timeline(con, zone: str, since: Any = None, until: Any = None, *,
             collapse: bool = True) -> Timeline:
    """The timeline of ``zone`` between ``since`` (inclusive) and ``until`` (exclusive),
    each ISO 8601 text, a date or a datetime (naive = UTC), or None for no bound.
    ``collapse=False`` gives every decision event its own line."""
    stream = timeline_stream(con, zone, since, until, collapse=collapse)
    return Timeline(zone, stream.since, stream.until, list(stream.entries()),
                    events=stream.events, changes=stream.changes)


def timeline_stream(con, zone: str, since: Any = None, until: Any = None, *,
                    collapse: bool = True) -> TimelineStream:
    """``timeline``'s entries and lines read as they are written (``TimelineStream``):
    the runs stay in a DuckDB table until then, so memory does not grow with them."""
    if not isinstance(zone, str) or not zone:
        raise UsageError("zone needs a zone id (a timeline is of one zone)", "zone")
    window = Filters.build(since=since, until=until)  # checked as audit tail's window
    since_at, until_at = window.since, window.until
    changes = [Change(record["_at"], {k: v for k, v in record.items() if k != "_at"})
               for record in _changes(con, zone, since_at, until_at)]
    # the times of the successful changes: each ends every run
    cuts = sorted(c.at for c in changes if not c.failed)
    table = f"_cf_timeline_{uuid.uuid4().hex[:12]}"
    _store_runs(con, table, zone, since_at, until_at, cuts, collapse)
    try:
        runs, events, longest = run_query(
            con, f"SELECT count(*), coalesce(sum(n), 0), max(n) FILTER (WHERE n > 1) "
                 f"FROM {table}", {}).to_pylist()[0].values()
        principals = run_query(con, f"SELECT DISTINCT principal FROM {table}", {})
        width, count_width = _column_widths(principals.column(0).to_pylist(),
                                            (longest,) if longest else ())
    except BaseException:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    return TimelineStream(zone, since_at, until_at, changes=len(changes), events=events,
                          line_count=len(changes) + runs, principal_width=width,
                          count_width=count_width,
                          _con=con, _table=table, _changes=changes)


@dataclass
class TimelineStream:
    """A timeline read once, in order, as it is written: the heading's counts and the
    column widths known first, then ``entries()`` (or ``lines()``, ``dicts()``) taken
    from DuckDB a batch of runs at a time. Reading it to the end, or ``close()``, drops
    the runs' table."""

    zone: str
    since: dt.datetime | None
    until: dt.datetime | None
    changes: int  #: admin changes read
    events: int  #: decision events read
    line_count: int  #: entries: changes and runs, a line each
    principal_width: int
    count_width: int
    _con: Any = field(repr=False, default=None)
    _table: str | None = field(repr=False, default=None)
    _changes: list[Change] = field(repr=False, default_factory=list)
    _reader: Any = field(repr=False, default=None)

    def entries(self) -> Iterator[Change | Decisions]:
        """Changes and runs in time order; a change before the decisions of the same
        instant (the cause reads first)."""
        def key(entry: Change | Decisions) -> tuple[dt.datetime, int]:
            return entry.at, 0 if isinstance(entry, Change) else 1

        # both oldest first: merging keeps each one's order for equal keys, changes first
        yield from heapq.merge(self._changes, self._runs(), key=key)

    def _runs(self) -> Iterator[Decisions]:
        if self._table is None:
            return
        self._reader = self._con.sql(
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM {self._table} "
            "ORDER BY first_at, first_seq, first_event_id").to_arrow_reader(_BATCH_ROWS)
        try:
            for batch in self._reader:
                columns = [utc_times(batch.column(name)) if name in _RUN_TIMES
                           else batch.column(name).to_pylist() for name in _RUN_COLUMNS]
                for (decision, principal, event_type, set_id, version, policies, first_at,
                     last_at, first_request, last_request, first_event, n) in zip(
                        *columns, strict=True):
                    yield Decisions(decision, principal, event_type, set_id, version,
                                    _policy_names(policies), first_at, last_at,
                                    first_request, last_request, first_event, n)
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading and drop the runs' table (the entries read so far stay valid);
        the connection takes other statements again."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        if self._table is not None:
            table, self._table = self._table, None
            self._con.execute(f"DROP TABLE IF EXISTS {table}")

    def heading(self) -> str:
        return _heading(self.zone, self.changes, self.events, self.line_count)

    def text_lines(self) -> Iterator[str]:
        """The heading, then ``lines()``: what ``Timeline.text`` holds, line by line."""
        yield self.heading()
        yield from self.lines()

    def lines(self) -> Iterator[str]:
        return iter_lines(self.entries(), self.principal_width, self.count_width)

    def dicts(self) -> Iterator[dict[str, Any]]:
        return (entry.to_dict() for entry in self.entries())


def _window(since: dt.datetime | None, until: dt.datetime | None,
            params: dict[str, Any]) -> str:
    return "".join(f" AND {c}" for c in window_clauses(since, until, params))


#: The global chain's rows that name a zone: as their entity, or as a path segment.
NAMES_ZONE_SQL = ("(zone_id IS NULL AND (entity_id = $zone OR "
                  "list_contains(string_split(coalesce(path, ''), '/'), $zone)))")


def _changes(con, zone: str, since, until) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"zone": zone}
    where = f"(zone_id = $zone OR {NAMES_ZONE_SQL})" + _window(since, until, params)
    table = run_query(con, f"SELECT *, {OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT} FROM "
                      f"{UNIQUE_VIEW} WHERE {where} ORDER BY occurred_at, zone_id NULLS "
                      "FIRST, chain_seq, id", params)
    records = change_records(table)
    for record, at in zip(records, table.column("occurred_at").to_pylist(), strict=True):
        record["_at"] = at
    return records


#: The order of a zone's events, as ``audit tail`` orders them.
_EVENT_ORDER = "occurred_at, chain_seq, id, source_file, source_line"
#: What makes two decisions identical (the determining policies as their jsonb text).
_RUN_KEY = ("decision", "event_type", "policy_set_id", "policy_set_version_id", "policies",
            "segment")


#: The columns of a run, in ``Decisions``' order; runs read from DuckDB per batch.
_RUN_COLUMNS = ("decision", "principal", "event_type", "policy_set_id",
                "policy_set_version_id", "policies", "first_at", "last_at",
                "first_request_id", "last_request_id", "first_event_id", "n")
_RUN_TIMES = ("first_at", "last_at")
_BATCH_ROWS = 65536


def _store_runs(con, table: str, zone: str, since, until, cuts: list[dt.datetime],
                collapse: bool) -> None:
    """The zone's decision events as runs, computed by DuckDB into ``table`` (a busy
    zone's window holds millions of events; only the runs come to Python, a batch at a
    time): per principal, in event order, a run starts where a key column differs from
    the previous event's, or a successful change (``cuts``) came between them;
    ``collapse=False``: every event starts one."""
    params: dict[str, Any] = {"zone": zone}
    where = "zone_id = $zone AND decision IS NOT NULL" + _window(since, until, params)
    if cuts:
        segment = "len(list_filter($cuts, lambda c: c <= occurred_at))"
        params["cuts"] = cuts
    else:
        segment = "0"
    same = " AND ".join(f"{name} IS NOT DISTINCT FROM lag({name}) OVER w" for name in _RUN_KEY)
    starts = f"CASE WHEN {same} THEN 0 ELSE 1 END" if collapse else "1"
    run_order = f"PARTITION BY principal ORDER BY {_EVENT_ORDER}"
    run_statement(
        con,
        f"""
        CREATE TEMP TABLE {table} AS
        WITH d AS (
            SELECT occurred_at, chain_seq, id, source_file, source_line, request_id,
                   lower(decision) AS decision, event_type, policy_set_id,
                   policy_set_version_id, determining_policies_json AS policies,
                   {PRINCIPAL_SQL} AS principal, {segment} AS segment
            FROM unique_events WHERE {where}
        ), s AS (
            SELECT *, {starts} AS starts FROM d
            WINDOW w AS ({run_order})
        ), r AS (
            SELECT *, sum(starts) OVER (w ROWS UNBOUNDED PRECEDING) AS run,
                   lead(starts, 1, 1) OVER w AS ends
            FROM s
            WINDOW w AS ({run_order})
        )
        -- a run's first row starts it (the first of a principal always does: a decision
        -- is never NULL) and its last is followed by a start: the values of those rows,
        -- not ordered aggregates (each sorted its run again: 4.2 of 5.3 s at 10M)
        SELECT principal, first(decision) FILTER (WHERE starts = 1) AS decision,
               first(event_type) FILTER (WHERE starts = 1) AS event_type,
               first(policy_set_id) FILTER (WHERE starts = 1) AS policy_set_id,
               first(policy_set_version_id) FILTER (WHERE starts = 1) AS policy_set_version_id,
               first(policies) FILTER (WHERE starts = 1) AS policies, count(*) AS n,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at,
               first(request_id) FILTER (WHERE starts = 1) AS first_request_id,
               first(request_id) FILTER (WHERE ends = 1) AS last_request_id,
               first(id) FILTER (WHERE starts = 1) AS first_event_id,
               first(chain_seq) FILTER (WHERE starts = 1) AS first_seq
        FROM r GROUP BY principal, run
        """,
        params,
    )


@functools.lru_cache(maxsize=4096)
def _policy_names(text: str | None) -> tuple[str, ...]:
    """The determining policies' names (``[{"policy": name}]``), as text otherwise; a
    zone's runs repeat a few texts, parsed once each."""
    from ..render.records import parse_json

    try:
        value = parse_json(text)
    except ValueError:
        return (text,) if text else ()
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        name = item.get("policy") if isinstance(item, dict) else None
        if isinstance(name, str):
            names.append(name)
        else:
            from ..render.jsonl import dumps

            names.append(dumps(item))
    return tuple(names)


# --- the lines -----------------------------------------------------------------------------


def _show(value: Any) -> str:
    if type(value) is str and value.isprintable():
        return value  # the common case, without a call per field
    from ..render.table import printable

    return printable(value)


def _until(first: dt.datetime, last: dt.datetime) -> str:
    text = occurred_text(last) or ""
    return text[11:] if first.date() == last.date() else text


def render_lines(entries: list[Change | Decisions]) -> list[str]:
    """The timeline's lines (``iter_lines``), the widths taken from ``entries``."""
    runs = [e for e in entries if isinstance(e, Decisions)]
    width, counts = _column_widths([r.principal for r in runs], [r.count for r in runs])
    return list(iter_lines(entries, width, counts))


def _column_widths(principals: Iterable[str | None], counts: Iterable[int]) -> tuple[int, int]:
    """The widths of the principal column and of the count column (``Nx``, only for runs
    of more than one), from the runs' principals and counts."""
    width = max((len(_show(p or "-")) for p in principals), default=1)
    longest = max((n for n in counts if n > 1), default=0)
    return width, len(f"{longest}x") if longest else 0


def iter_lines(entries: Iterable[Change | Decisions], width: int,
               counts: int) -> Iterator[str]:
    """The timeline's lines: ``TIME  change  actor: action -> status [kind]`` for a
    change (``failed`` for a status of 400 or more; ``(global)`` when it is the global
    chain's), and ``TIME  decision  Nx  principal  event_type version (policies) until
    TIME`` for a run of decisions (the count and range only when N > 1); principals
    padded to ``width``, counts to ``counts``."""
    for entry in entries:
        stamp = occurred_text(entry.at)
        if isinstance(entry, Change):
            record = entry.record
            who = record.get("actor_name") or record.get("actor_id") or "(no actor)"
            word = "failed" if entry.failed else "change"
            text = (f"{stamp}  {word:<8} {'':>{counts}}  {_show(who)}: "
                    f"{_show(record.get('action') or record.get('path') or '-')}"
                    f" -> {_show(record.get('status_code'))}")
            if record.get("change_kind"):
                text += f" [{_show(record['change_kind'])}]"
            if record.get("zone_id") is None:
                text += f" {GLOBAL_CHAIN}"
            yield text
            continue
        count = f"{entry.count}x" if entry.count > 1 else ""
        what = " ".join(_show(v) for v in (entry.event_type, entry.policy_set_version_id) if v)
        if entry.policies:
            what += f" ({', '.join(_show(p) for p in entry.policies)})"
        text = (f"{stamp}  {_show(entry.decision or '-'):<8} {count:>{counts}}  "
                f"{_show(entry.principal or '-'):<{width}}  {what}")
        if entry.count > 1:
            text += f" until {_until(entry.first_at, entry.last_at)}"
        elif entry.first_request_id:
            text += f" {_show(entry.first_request_id)}"
        yield text.rstrip()
