"""Listing admin changes (``admin tail``): ``admin_audit_events`` filtered like ``audit tail``.

An :class:`AdminFilters` value is checked once (a bad value is a UsageError naming its
parameter) and becomes a WHERE clause of bound parameters over the view
``unique_admin_events`` (each change once, ``admin.snapshot``). ``tail`` shows the newest
N matching changes by occurred_at, printed oldest first; ties are broken by chain,
chain_seq and id, so the output is the same on every run.

A change's record (``--json``, ``--query``) holds the table's columns under their own
names (as the dumps and the Admin API name them), the payload as nested JSON with its
number literals as stored, occurred_at as ``toISOString()`` prints it (milliseconds, the
precision Caracal stores), the chain it belongs to (its zone, or ``(global)``) and where
the row was read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import InputError, UsageError
from ..filters import (
    DEFAULT_LIMIT,
    Filters,
    _strings,  # one check of a repeatable text value, as audit tail's
    run_query,
    window_clauses,
)
from ..timetext import iso_text
from .model import GLOBAL_CHAIN
from .snapshot import UNIQUE_VIEW, VIEW

#: Oldest first; each key with its NULL placement so that the reverse is its mirror.
ORDER_ASC = ("occurred_at ASC NULLS FIRST, zone_id ASC NULLS FIRST, chain_seq ASC NULLS "
             "FIRST, id ASC NULLS FIRST, source_file ASC NULLS FIRST, source_line ASC NULLS "
             "FIRST")
ORDER_DESC = ("occurred_at DESC NULLS LAST, zone_id DESC NULLS LAST, chain_seq DESC NULLS "
              "LAST, id DESC NULLS LAST, source_file DESC NULLS LAST, source_line DESC NULLS "
              "LAST")
#: occurred_at as JavaScript's toISOString() prints it (what the service hashed).
OCCURRED_AT_SQL = "strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ')"
OCCURRED_AT_TEXT = "occurred_at_text"

_STATUS = re.compile(r"^([1-5])(?:xx|XX|\d\d)$")


def _statuses(value: str | int | Iterable[str | int] | None) -> tuple[str, ...]:
    """Status codes (``403``) and classes (``4xx``), as text; ``failed`` is 4xx and 5xx."""
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, int)) else list(value)
    out: list[str] = []
    for item in items:
        text = str(item).strip().lower()
        if text == "failed":
            out += ["4xx", "5xx"]
        elif isinstance(item, bool) or not _STATUS.match(text):
            raise UsageError(
                f"status must be an HTTP status code (403), a class (4xx) or 'failed', "
                f"not {item!r}", "status")
        else:
            out.append(text)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class AdminFilters:
    """What ``admin tail`` selects. Build it with :meth:`build`, which checks every value."""

    zones: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    entity_ids: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def build(
        cls,
        *,
        zone: str | Iterable[str] | None = None,
        actor: str | Iterable[str] | None = None,
        entity_type: str | Iterable[str] | None = None,
        entity_id: str | Iterable[str] | None = None,
        method: str | Iterable[str] | None = None,
        status: str | int | Iterable[str | int] | None = None,
        since: str | dt.datetime | dt.date | None = None,
        until: str | dt.datetime | dt.date | None = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> AdminFilters:
        """Check and normalise the values as the CLI flags and the notebook give them.
        ``zone``: a zone id, or ``(global)`` for the chain of rows without a zone;
        ``actor``: an actor_id or actor_name; ``method``: case-insensitive."""
        # the window and the limit are audit tail's, checked by its own Filters
        common = Filters.build(zone=zone, since=since, until=until, limit=limit)
        return cls(
            zones=common.zones,
            actors=_strings(actor, "actor"),
            entity_types=_strings(entity_type, "entity_type"),
            entity_ids=_strings(entity_id, "entity_id"),
            methods=tuple(m.upper() for m in _strings(method, "method")),
            statuses=_statuses(status),
            since=common.since,
            until=common.until,
            limit=common.limit,
        )

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE condition (``TRUE`` when unfiltered) and its named parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.zones:
            named = [z for z in self.zones if z != GLOBAL_CHAIN]
            parts = ["list_contains($zones, zone_id)"] if named else []
            if named:
                params["zones"] = named
            if GLOBAL_CHAIN in self.zones:
                parts.append("zone_id IS NULL")
            clauses.append("(" + " OR ".join(parts) + ")")
        if self.actors:
            clauses.append("(list_contains($actors, actor_id) OR "
                           "list_contains($actors, actor_name))")
            params["actors"] = list(self.actors)
        for column, values in (("entity_type", self.entity_types),
                               ("entity_id", self.entity_ids)):
            if values:
                clauses.append(f"list_contains(${column}s, {column})")
                params[f"{column}s"] = list(values)
        if self.methods:
            clauses.append("list_contains($methods, upper(method))")
            params["methods"] = list(self.methods)
        if self.statuses:
            codes = [int(s) for s in self.statuses if s.isdigit()]
            classes = [int(s[0]) for s in self.statuses if not s.isdigit()]
            parts = []
            if codes:
                parts.append("list_contains($codes, status_code)")
                params["codes"] = codes
            if classes:
                parts.append("list_contains($classes, status_code // 100)")
                params["classes"] = classes
            clauses.append("(" + " OR ".join(parts) + ")")
        clauses += window_clauses(self.since, self.until, params)
        return (" AND ".join(clauses) or "TRUE"), params


def select_sql(filters: AdminFilters, relation: str = UNIQUE_VIEW,
               limit: int | None = None) -> tuple[str, dict[str, Any]]:
    """SQL for the newest ``limit`` (default ``filters.limit``; 0: all) matching changes
    of ``relation``, oldest first, with occurred_at's text as OCCURRED_AT_TEXT."""
    where, params = filters.where()
    limit = filters.limit if limit is None else limit
    inner = f"SELECT * FROM {relation} WHERE {where}"
    if limit:
        inner += f" ORDER BY {ORDER_DESC} LIMIT {int(limit)}"
    return (f"SELECT *, {OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT} FROM ({inner}) "
            f"ORDER BY {ORDER_ASC}", params)


def select_changes(con, filters: AdminFilters, relation: str = UNIQUE_VIEW,
                   limit: int | None = None) -> pa.Table:
    """The changes ``filters`` select (newest N, oldest first), as Arrow: the admin
    schema's columns plus OCCURRED_AT_TEXT."""
    sql, params = select_sql(filters, relation, limit)
    return run_query(con, sql, params)


def count_changes(con, filters: AdminFilters, relation: str = UNIQUE_VIEW) -> int:
    """How many changes of ``relation`` match (regardless of the limit)."""
    where, params = filters.where()
    return run_query(con, f"SELECT count(*) FROM {relation} WHERE {where}", params
                     ).column(0)[0].as_py()


#: (AdminFilters field, SQL of the value it is compared with, words for a message)
_CATEGORIES = (
    ("zones", f"coalesce(zone_id, '{GLOBAL_CHAIN}')", "zone", "zones"),
    ("actors", "actor_id", "actor", "actors"),
    ("entity_types", "entity_type", "entity type", "entity types"),
    ("methods", "upper(method)", "method", "methods"),
)


def empty_result_hint(con, filters: AdminFilters, relation: str = VIEW) -> str | None:
    """One line naming the zone, actor, entity type or method values no change has, with
    the values present (a typo is the usual cause of an empty listing); None when every
    value exists, or no admin change was read at all (said otherwise)."""
    import difflib

    wanted = [(field, sql, one, many) for field, sql, one, many in _CATEGORIES
              if getattr(filters, field)]
    if not wanted:
        return None
    lists = ", ".join(f"list(DISTINCT {sql})" for _, sql, _, _ in wanted)
    if filters.actors:
        lists += ", list(DISTINCT actor_name)"
    row = list(run_query(con, f"SELECT {lists} FROM {relation}", {}).to_pylist()[0].values())
    names = {str(v) for v in (row.pop() if filters.actors else None) or () if v is not None}
    parts = []
    for (field, _sql, one, many), values in zip(wanted, row, strict=True):
        known = {str(v) for v in values or () if v is not None}
        if field == "actors":  # an actor is given by id or by name
            known |= names
        present = sorted(known)
        missing = [v for v in getattr(filters, field) if v not in known]
        if not missing:
            continue
        text = (f"no admin changes with {one} {', '.join(repr(v) for v in missing)}; "
                f"{many} present: {', '.join(present[:12]) or 'none'}")
        close = [c[0] for v in missing
                 if (c := difflib.get_close_matches(v, sorted(known), n=1, cutoff=0.6))]
        if close:
            text += " (did you mean " + ", ".join(repr(c) for c in close) + "?)"
        parts.append(text)
    return "; ".join(parts) or None


# --- records ---------------------------------------------------------------------------

#: A change's record fields, in output order (``--json``).
RECORD_FIELDS: tuple[str, ...] = (
    "occurred_at", "chain", "chain_seq", "zone_id", "id", "request_id", "actor_id",
    "actor_name", "actor_scope", "action", "method", "path", "entity_type", "entity_id",
    "status_code", "change_kind", "changed_fields", "payload_json", "signed",
    "content_sha256", "prev_content_sha256", "chain_hmac", "source",
)  # fmt: skip


def source_of(row: dict[str, Any]) -> str | None:
    """``file:line`` (or item) where the row was read."""
    if row.get("source_file") is None:
        return None
    line = row.get("source_line")
    return f"{row['source_file']}:{line}" if line is not None else row["source_file"]


def occurred_text(value: dt.datetime | None) -> str | None:
    """``2026-05-12T10:02:00.250Z`` (toISOString: milliseconds, UTC)."""
    if value is None:
        return None
    return iso_text(value, "milliseconds") + "Z"


def change_records(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Each change's record: RECORD_FIELDS, the payload parsed with its number literals
    kept (``render.records.parse_json``), None where the source lacks a field."""
    from ..render.records import NestedTooDeeply, parse_json, rows_without_times

    out = []
    timed = OCCURRED_AT_TEXT in table.schema.names  # then no datetime is needed
    for row in rows_without_times(table) if timed else table.to_pylist():
        record: dict[str, Any] = {}
        for name in RECORD_FIELDS:
            if name == "occurred_at":
                value = row.get(OCCURRED_AT_TEXT) or occurred_text(row.get("occurred_at"))
            elif name == "chain":
                value = GLOBAL_CHAIN if row.get("zone_id") is None else row["zone_id"]
            elif name == "source":
                value = source_of(row)
            elif name == "payload_json":
                try:
                    value = parse_json(row.get("payload_json"))
                except (NestedTooDeeply, ValueError):
                    value = row.get("payload_json")  # shown as stored
            else:
                value = row.get(name)
            record[name] = value
        out.append(record)
    return out


def json_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """One line of JSON per record (``render.jsonl.dumps``: literals kept, non-ASCII raw)."""
    from ..render.jsonl import dumps

    return [dumps(record) for record in records]


def query_lines(query, changes: pa.Table | pa.RecordBatch) -> list[str]:
    """``--query`` over the changes ``select_changes`` chose: per change, its record when
    the expression is true, its value when it is another truthy value, nothing when falsy
    (``render.query``'s rules). A change the expression cannot be evaluated on is an
    InputError naming its file and line."""
    from ..render.jsonl import dumps
    from ..render.query import is_truthy

    lines = []
    for index, record in enumerate(change_records(changes)):
        value = query.search(record, lambda problem, index=index: _change_error(
            changes, index, problem))
        if value is True:
            lines.append(dumps(record))
        elif is_truthy(value):
            lines.append(dumps(value))
    return lines


def _change_error(changes: pa.Table | pa.RecordBatch, index: int,
                  problem: str) -> InputError:
    """An InputError about change ``index`` of ``changes``, naming its file and line (an
    Admin API page's item: ``read.counted_in``); its provenance read only then."""
    from .read import counted_in

    row = changes.slice(index, 1).select(
        ["id", "source_file", "source_line", "source_shape"]).to_pylist()[0]
    path, line = row["source_file"], row["source_line"]
    where = None
    if path is not None and line is not None:
        where = f"{counted_in(path, row['source_shape'])} {line}"
    return InputError(path or "an input", f"change {row['id']!r}: {problem}", where)


# --- the table -------------------------------------------------------------------------


def _status_style(text: str) -> str | None:
    if text[:1] in ("4", "5"):
        return "bold red"
    if text[:1] == "2":
        return "green"
    return None


def table_columns():
    """The ``admin tail`` table's columns (``render.table.Column``), most needed first."""
    from ..render.table import Column

    return (
        Column("OCCURRED AT (UTC)", "occurred_at", priority=100, shrink=False),
        Column("CHAIN", "chain", priority=80, max_width=24, min_width=8),
        Column("SEQ", "chain_seq", priority=40, justify="right", shrink=False),
        Column("ACTOR", lambda r: r.get("actor_name") or r.get("actor_id"), priority=90,
               max_width=28, min_width=8),
        Column("METHOD", "method", priority=85, shrink=False),
        Column("STATUS", "status_code", priority=95, style=_status_style, shrink=False),
        Column("ENTITY", lambda r: " ".join(str(v) for v in (r.get("entity_type"),
                                                              r.get("entity_id")) if v),
               priority=70, max_width=36, min_width=10),
        Column("KIND", "change_kind", priority=50, max_width=16, min_width=6),
        Column("PATH", "path", priority=60, max_width=72, min_width=12),
        Column("REQUEST", "request_id", priority=30, max_width=40, shrink=False),
    )
