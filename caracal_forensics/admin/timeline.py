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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..filters import Filters, run_query, window_clauses
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
        head = (f"Timeline of zone {_show(self.zone)}: {self.changes} admin change(s), "
                f"{self.events} decision event(s) in {len(self.entries)} line(s)")
        return "\n".join([head, *self.lines()])

    def to_dicts(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.entries]

    def __str__(self) -> str:
        return self.text()


def timeline(con, zone: str, since: Any = None, until: Any = None, *,
             collapse: bool = True) -> Timeline:
    """The timeline of ``zone`` between ``since`` (inclusive) and ``until`` (exclusive),
    each ISO 8601 text, a date or a datetime (naive = UTC), or None for no bound.
    ``collapse=False`` gives every decision event its own line."""
    if not isinstance(zone, str) or not zone:
        raise UsageError("zone needs a zone id (a timeline is of one zone)", "zone")
    window = Filters.build(since=since, until=until)  # checked as audit tail's window
    since_at, until_at = window.since, window.until
    changes = [Change(record["_at"], {k: v for k, v in record.items() if k != "_at"})
               for record in _changes(con, zone, since_at, until_at)]
    # the times of the successful changes: each ends every run
    cuts = sorted(c.at for c in changes if not c.failed)
    runs = [
        Decisions(row["decision"], row["principal"], row["event_type"], row["policy_set_id"],
                  row["policy_set_version_id"], _policy_names(row["policies"]),
                  row["first_at"], row["last_at"], row["first_request_id"],
                  row["last_request_id"], row["first_event_id"], row["n"])
        for row in _runs(con, zone, since_at, until_at, cuts, collapse)
    ]
    entries: list[Change | Decisions] = [*changes, *runs]
    # a change before the decisions of the same instant: the cause reads first
    entries.sort(key=lambda e: (e.at, 0 if isinstance(e, Change) else 1))
    return Timeline(zone, since_at, until_at, entries, events=sum(r.count for r in runs),
                    changes=len(changes))


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


def _runs(con, zone: str, since, until, cuts: list[dt.datetime],
          collapse: bool) -> list[dict[str, Any]]:
    """The zone's decision events as runs, computed by DuckDB (a busy zone's window holds
    millions of events; only the runs come to Python): per principal, in event order, a
    run starts where a key column differs from the previous event's, or a successful
    change (``cuts``) came between them; ``collapse=False``: every event starts one."""
    params: dict[str, Any] = {"zone": zone}
    where = "zone_id = $zone AND decision IS NOT NULL" + _window(since, until, params)
    if cuts:
        segment = "len(list_filter($cuts, lambda c: c <= occurred_at))"
        params["cuts"] = cuts
    else:
        segment = "0"
    same = " AND ".join(f"{name} IS NOT DISTINCT FROM lag({name}) OVER w" for name in _RUN_KEY)
    starts = f"CASE WHEN {same} THEN 0 ELSE 1 END" if collapse else "1"
    first = f"ORDER BY {_EVENT_ORDER}"
    return run_query(
        con,
        f"""
        WITH d AS (
            SELECT occurred_at, chain_seq, id, source_file, source_line, request_id,
                   lower(decision) AS decision, event_type, policy_set_id,
                   policy_set_version_id, determining_policies_json AS policies,
                   {PRINCIPAL_SQL} AS principal, {segment} AS segment
            FROM unique_events WHERE {where}
        ), s AS (
            SELECT *, {starts} AS starts FROM d
            WINDOW w AS (PARTITION BY principal ORDER BY {_EVENT_ORDER})
        ), r AS (
            SELECT *, sum(starts) OVER (PARTITION BY principal ORDER BY {_EVENT_ORDER}
                                        ROWS UNBOUNDED PRECEDING) AS run
            FROM s
        )
        SELECT principal, first(decision {first}) AS decision,
               first(event_type {first}) AS event_type,
               first(policy_set_id {first}) AS policy_set_id,
               first(policy_set_version_id {first}) AS policy_set_version_id,
               first(policies {first}) AS policies, count(*) AS n,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at,
               first(request_id {first}) AS first_request_id,
               last(request_id {first}) AS last_request_id,
               first(id {first}) AS first_event_id,
               first(chain_seq {first}) AS first_seq
        FROM r GROUP BY principal, run
        ORDER BY first_at, first_seq, first_event_id
        """,
        params,
    ).to_pylist()


def _policy_names(text: str | None) -> tuple[str, ...]:
    """The determining policies' names (``[{"policy": name}]``), as text otherwise."""
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
    from ..render.table import printable

    return printable(value)


def _until(first: dt.datetime, last: dt.datetime) -> str:
    text = occurred_text(last) or ""
    return text[11:] if first.date() == last.date() else text


def render_lines(entries: list[Change | Decisions]) -> list[str]:
    """The timeline's lines: ``TIME  change  actor: action -> status [kind]`` for a
    change (``failed`` for a status of 400 or more; ``(global)`` when it is the global
    chain's), and ``TIME  decision  Nx  principal  event_type version (policies) until
    TIME`` for a run of decisions (the count and range only when N > 1)."""
    runs = [e for e in entries if isinstance(e, Decisions)]
    width = max((len(_show(r.principal or "-")) for r in runs), default=1)
    counts = max((len(f"{r.count}x") for r in runs if r.count > 1), default=0)
    lines = []
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
            lines.append(text)
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
        lines.append(text.rstrip())
    return lines
