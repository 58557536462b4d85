"""Reconcile two sets of sources of the same period, event by event (issue 17, "compare
counts for a closed interval" of Caracal's export runbook): a SIEM's or the Admin API's
copy against a dump, the hourly files against a snapshot, ...

Events are matched by (zone_id, id). Per zone and hour of occurred_at each side's count
is given, an event found on one side only is ``missing_in_source`` (naming the side that
lacks it), and a field that differs is ``field_mismatch`` (the field, both values).
A difference is only one the weaker of the two rows could carry: never a field either
side lacks (``absent_fields``: OCSF has no ingested_at, a ``fields=`` projection only
its fields, the CSV export no diagnostics), nor, against the Admin API's exports
(FORMAT.md 6), a ``"[redacted]"`` value, a number's spelling or digits beyond a double,
or metadata the CSV could not write (an object, keys that are not its columns); nor the
microseconds of a time one side has to the millisecond only (OCSF, the Admin API);
never jsonb's key order.

Speed: each side is read into its own DuckDB connection (``open_sources``) and reduced
there to one slim row per event (the key, the hour, the short fields, an MD5 of each
long one); DuckDB joins the two and counts per hour. Python compares only the events
whose raw values differ, in a merge of the two sides' full rows read in key order.
"""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .chain.report import MAX_FINDINGS_PER_KIND, Finding, InputSummary, Kind
from .errors import UsageError
from .model import JSONB_FIELDS, Shape

if TYPE_CHECKING:
    import duckdb

    from .snapshot import Snapshot

__all__ = ["reconcile", "Reconciliation", "HourCount", "ReconcileFinding", "SIDES",
           "COMPARED_FIELDS"]

#: The two sides, as findings, counts and the JSON name them.
SIDES = ("source", "against")
#: Short text fields, compared as text (NULL and "" alike: the content hash and the CSV
#: export cannot tell them apart).
TEXT = ("event_type", "request_id", "decision", "policy_set_id", "policy_set_version_id",
        "manifest_sha", "evaluation_status")
TIMES = ("occurred_at", "ingested_at")
CHAIN = ("content_sha256", "prev_content_sha256", "chain_hmac", "ingest_signature")
#: Every field compared, in the order findings list them.
COMPARED_FIELDS = (*TEXT, *JSONB_FIELDS, *TIMES, *CHAIN, "chain_seq")
#: Shapes written by the Admin API: JavaScript doubles, ``redactSensitive``.
API_SHAPES = (Shape.API_JSON, Shape.API_CSV)
#: Keys whose values the Admin API replaces by ``"[redacted]"`` at any depth (FORMAT.md 6).
SENSITIVE = frozenset({
    "password", "passwd", "secret", "token", "access_token", "refresh_token", "id_token",
    "api_key", "apikey", "authorization", "cookie", "set_cookie", "client_secret",
    "private_key", "session", "session_id", "assertion"})
REDACTED = "[redacted]"
#: Agree (exit 0), or some event is missing or differs (exit 1, as verify's tampered).
AGREE, DIFFER = "agree", "differ"
#: Rows per Arrow batch read from either side.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class HourCount:
    """One zone's hour of occurred_at (``hour``: ISO text, None for events without a
    time): each side's events, and the findings among them."""

    zone_id: str
    hour: str | None
    source: int
    against: int
    missing_in_source: int = 0
    field_mismatch: int = 0

    @property
    def agree(self) -> bool:
        return not (self.missing_in_source or self.field_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReconcileFinding(Finding):
    """A finding of reconcile: ``missing_from`` names the side that lacks the event
    (``source`` or ``against``); a field_mismatch names the ``field`` and both values as
    each side holds them (jsonb text, ISO times). ``source`` (as in verify's findings) is
    where the event was read: the file and line of the side that has it, or of the
    source side's row for a mismatch, with the against side's row in ``against_at``."""

    missing_from: str | None = None
    field: str | None = None
    source_value: str | None = None
    against_value: str | None = None
    against_at: str | None = None


@dataclass
class Reconciliation:
    """What reconcile found: per zone and hour the counts, the findings (at most
    ``MAX_FINDINGS_PER_KIND`` per zone and kind listed, ``totals`` counts them all),
    what each side's inputs were, and what was compared (``checks``)."""

    status: str
    source_events: int
    against_events: int
    matched: int
    hours: list[HourCount] = field(default_factory=list)
    findings: list[ReconcileFinding] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    source_inputs: list[InputSummary] = field(default_factory=list)
    against_inputs: list[InputSummary] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    toolkit_version: str = ""
    generated_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == AGREE

    @property
    def exit_code(self) -> int:
        """0 when both sides agree, 1 when an event is missing or differs (as verify)."""
        return 0 if self.ok else 1

    @property
    def verdict(self) -> str:
        if self.ok:
            return "none missing, no field differs"
        return (f"{self.totals.get(Kind.MISSING_IN_SOURCE, 0)} event(s) missing on one side, "
                f"{self.totals.get(Kind.FIELD_MISMATCH, 0)} field(s) differ")

    def findings_of(self, kind: str) -> list[ReconcileFinding]:
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "verdict": self.verdict,
            "source_events": self.source_events, "against_events": self.against_events,
            "matched": self.matched, "totals": dict(self.totals),
            "hours": [h.to_dict() for h in self.hours],
            "findings": [f.to_dict() for f in self.findings],
            "inputs": {"source": [i.to_dict() for i in self.source_inputs],
                       "against": [i.to_dict() for i in self.against_inputs]},
            "checks": dict(self.checks),
            "toolkit_version": self.toolkit_version, "generated_at": self.generated_at,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def reconcile(source: str | Sequence[str] | Snapshot, against: str | Sequence[str] | Snapshot,
              *, zone: str | Sequence[str] | None = None, since: Any = None,
              until: Any = None, on_bad_line: str = "error", exclude: Sequence[str] = (),
              cap: int = MAX_FINDINGS_PER_KIND) -> Reconciliation:
    """Compare two sets of sources (paths as ``cf.open`` takes them, or opened Snapshots)
    by event id; ``zone``, ``since`` (inclusive), ``until`` (exclusive) narrow both sides
    alike, so that an export of one interval is held to that interval of a dump."""
    from .filters import Filters

    filters = Filters.build(zone=zone, since=since, until=until, limit=0)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise UsageError(f"cap must be a whole number >= 1, not {cap!r}", "cap")
    snaps = [_opened(value, name, on_bad_line, exclude)
             for name, value in (("source", source), ("against", against))]
    return _Run(snaps, filters, cap).result()


def _opened(value: Any, name: str, on_bad_line: str, exclude: Sequence[str]) -> Snapshot:
    from .snapshot import Snapshot, open_sources

    if isinstance(value, Snapshot):
        return value
    paths = [value] if isinstance(value, str) else [str(p) for p in value or ()]
    if not paths:
        raise UsageError(f"{name} needs at least one path", name)
    return open_sources(paths, on_bad_line=on_bad_line, exclude=tuple(exclude))


# --- the SQL: each side reduced in its own connection, then joined --------------------

#: Per event: the key, the hour, the short values, an MD5 of each long one (NULL and ""
#: alike for text), and the fields the row lacks as a list.
_SLIM = """
SELECT zone_id, id, occurred_at, ingested_at, occurred_at_digits AS digits,
       date_trunc('hour', occurred_at) AS hour,
       {text},
       {hashes},
       {chain},
       chain_seq,
       coalesce(list_aggregate(list_transform(string_split(absent_fields, ','),
                                              lambda x: CASE x {bits} ELSE 0 END),
                                              'bit_or'),
                0) AS absent
FROM {relation} WHERE {where}
"""
#: One bit per compared field: ``absent`` holds the bits of the fields a row lacks.
_BITS = {name: 1 << index for index, name in enumerate(COMPARED_FIELDS)}
_SIDE_ALIAS = {"source": "s", "against": "a"}


def _slim_sql(where: str, relation: str = "unique_events") -> str:
    text = ", ".join(f"coalesce({name}, '') AS {name}" for name in TEXT)
    hashes = ", ".join(f"md5_number({name}) AS {name}" for name in JSONB_FIELDS)
    chain = ", ".join(CHAIN)  # short hex: as it is
    bits = " ".join(f"WHEN '{name}' THEN {bit}" for name, bit in _BITS.items())
    return _SLIM.format(text=text, hashes=hashes, chain=chain, relation=relation,
                        where=where, bits=bits)


def _files_relation(snap: Snapshot) -> str | None:
    """``unique_events`` of ``snap`` as SQL over its Parquet files (a snapshot's parts,
    the spool of what was loaded), so that another connection reads them itself, without
    the rows crossing over as Arrow; None when the snapshot was not laid out so (read
    from PostgreSQL, or its view replaced since)."""
    from .engine import sql_list, view_sql
    from .model import EVENT_SCHEMA
    from .queries import _JSONB_NULLS, _PREFERENCE, ensure_views
    from .sources.snapshot_dir import event_files

    layout = snap.layout
    if layout is None or layout.events_sql is None:
        return None
    if view_sql(snap.duckdb, "events") != layout.events_sql:
        return None
    files = [f for source in layout.snapshots for f in event_files(source.path)]
    files += layout.spool.files if layout.spool is not None else []
    if not files:
        return None
    columns = ", ".join(f'"{name}"' for name in EVENT_SCHEMA.names)
    rows = f"SELECT {columns} FROM read_parquet({sql_list(files)}, union_by_name = true)"
    once = ensure_views(snap.duckdb) == "plain"  # no event twice: no window needed
    return (f"(SELECT {_JSONB_NULLS} FROM ({rows})"
            + ("" if once else f" QUALIFY row_number() OVER (PARTITION BY zone_id, id "
                               f"ORDER BY {_PREFERENCE}) = 1") + ")")


def _carried(name: str) -> str:
    return f"((s.absent | a.absent) & {_BITS[name]}) = 0"


def _differs_sql() -> str:
    """Whether any field both rows carry differs in its raw value (times: to the
    millisecond when either has only milliseconds)."""
    parts = [f"({_carried(name)} AND s.{name} IS DISTINCT FROM a.{name})"
             for name in (*TEXT, *JSONB_FIELDS, *CHAIN, "chain_seq")]
    for name in TIMES:
        parts.append(
            f"({_carried(name)} AND s.{name} IS DISTINCT FROM a.{name} AND NOT "
            f"(least(s.digits, a.digits) < 6 AND date_trunc('millisecond', s.{name}) = "
            f"date_trunc('millisecond', a.{name})))")
    return " OR ".join(parts)


class _Run:
    """One reconciliation: the slim tables in a connection of its own, the findings."""

    def __init__(self, snaps: list[Snapshot], filters: Any, cap: int) -> None:
        from .engine import connect

        self.snaps = dict(zip(SIDES, snaps, strict=True))
        self.where, self.params = filters.where()
        self.cap = cap
        self.con = connect()
        for side, snap in self.snaps.items():
            relation = _files_relation(snap)
            if relation is not None:  # read here, from the same files
                self.con.execute(f"CREATE TABLE {side} AS {_slim_sql(self.where, relation)}",
                                 self.params)
                continue
            reader = snap.duckdb.sql(_slim_sql(self.where), params=self.params
                                     ).to_arrow_reader(BATCH_ROWS)
            self.con.register("_side", reader)
            try:
                self.con.execute(f"CREATE TABLE {side} AS SELECT * FROM _side")
            finally:
                self.con.unregister("_side")
        self.con.execute(
            f"CREATE TABLE pairs AS SELECT coalesce(s.zone_id, a.zone_id) AS zone_id, "
            f"coalesce(s.id, a.id) AS id, s.hour AS s_hour, a.hour AS a_hour, "
            f"s.id IS NOT NULL AS in_s, a.id IS NOT NULL AS in_a, "
            f"coalesce(s.occurred_at, a.occurred_at) AS occurred, "
            f"s.id IS NOT NULL AND a.id IS NOT NULL AND ({_differs_sql()}) AS differs "
            f"FROM source s FULL OUTER JOIN against a ON s.zone_id = a.zone_id AND s.id = a.id")

    def result(self) -> Reconciliation:
        from ._version import __version__

        findings: list[ReconcileFinding] = []
        totals: Counter[str] = Counter()
        mismatches: Counter[tuple[str, Any]] = Counter()
        self._missing(findings, totals)
        self._mismatches(findings, totals, mismatches)
        hours = self._hours(mismatches)
        counts = self.con.execute(
            "SELECT count(*) FILTER (in_s), count(*) FILTER (in_a), "
            "count(*) FILTER (in_s AND in_a) FROM pairs").fetchone() or (0, 0, 0)
        findings.sort(key=lambda f: (f.zone_id or "", f.kind, f.event_id is None,
                                     f.event_id or "", f.field or ""))
        return Reconciliation(
            status=DIFFER if totals else AGREE,
            source_events=counts[0], against_events=counts[1], matched=counts[2],
            hours=hours, findings=findings, totals=dict(totals),
            source_inputs=[InputSummary.of(i) for i in self.snaps["source"].inputs],
            against_inputs=[InputSummary.of(i) for i in self.snaps["against"].inputs],
            checks=self._checks(),
            toolkit_version=__version__,
            generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def _hours(self, mismatches: Counter) -> list[HourCount]:
        rows = self.con.execute("""
            WITH s AS (SELECT zone_id, s_hour AS hour, count(*) AS n FROM pairs WHERE in_s
                       GROUP BY ALL),
                 a AS (SELECT zone_id, a_hour AS hour, count(*) AS n FROM pairs WHERE in_a
                       GROUP BY ALL),
                 m AS (SELECT zone_id, coalesce(s_hour, a_hour) AS hour, count(*) AS n
                       FROM pairs WHERE in_s <> in_a GROUP BY ALL)
            SELECT zone_id, hour, coalesce(s.n, 0), coalesce(a.n, 0), coalesce(m.n, 0)
            FROM s FULL OUTER JOIN a USING (zone_id, hour) FULL OUTER JOIN m
                 USING (zone_id, hour)
            ORDER BY zone_id, hour NULLS FIRST""").fetchall()
        return [HourCount(zone, _hour_text(hour), s, a, missing,
                          mismatches.get((zone, hour), 0))
                for zone, hour, s, a, missing in rows]

    def _missing(self, findings: list[ReconcileFinding], totals: Counter) -> None:
        per_zone = self.con.execute(
            "SELECT zone_id, count(*) FROM pairs WHERE in_s <> in_a GROUP BY 1 ORDER BY 1"
        ).fetchall()
        for zone, total in per_zone:
            totals[Kind.MISSING_IN_SOURCE] += total
            if total > self.cap:
                findings.append(_more(Kind.MISSING_IN_SOURCE, zone, total - self.cap,
                                      self.cap))
        listed = self.con.execute(
            "SELECT zone_id, id, in_s FROM pairs WHERE in_s <> in_a "
            "QUALIFY row_number() OVER (PARTITION BY zone_id ORDER BY occurred NULLS LAST, id) "
            "<= $cap", {"cap": self.cap}).fetchall()
        keys = [(zone, event) for zone, event, _ in listed]
        rows = {side: {(r["zone_id"], r["id"]): r for r in self._rows(side, keys)}
                for side in SIDES}
        for zone, event, in_source in listed:
            have, lacks = ("source", "against") if in_source else ("against", "source")
            row = rows[have].get((zone, event), {})
            at = _at(row)
            findings.append(ReconcileFinding(
                Kind.MISSING_IN_SOURCE, zone, event, row.get("chain_seq"), at,
                f"missing from {lacks}, only {have} has it"
                + (f" (occurred_at {_value(row, 'occurred_at')})" if row.get("occurred_at")
                   else ""),
                missing_from=lacks))

    def _mismatches(self, findings: list[ReconcileFinding], totals: Counter,
                    per_hour: Counter) -> None:
        listed: Counter[str] = Counter()
        keys = self.con.execute(
            "SELECT zone_id, id FROM pairs WHERE differs ORDER BY zone_id, id").fetchall()
        rows = zip(self._rows("source", keys, ordered=True),
                   self._rows("against", keys, ordered=True), strict=True)
        for left, right in rows:
            for name, mine, theirs in compare_rows(left, right):
                zone = left["zone_id"]
                totals[Kind.FIELD_MISMATCH] += 1
                per_hour[(zone, _hour_of(left["occurred_at"]))] += 1
                listed[zone] += 1
                if listed[zone] > self.cap:
                    continue
                findings.append(ReconcileFinding(
                    Kind.FIELD_MISMATCH, zone, left["id"], left.get("chain_seq"),
                    _at(left), f"{name}: source {_shown(name, mine)}, against "
                    f"{_shown(name, theirs)} (against at {_at(right)})",
                    field=name, source_value=mine, against_value=theirs,
                    against_at=_at(right)))
        for zone, total in listed.items():
            if total > self.cap:
                findings.append(_more(Kind.FIELD_MISMATCH, zone, total - self.cap, self.cap))

    def _rows(self, side: str, keys: list[tuple], ordered: bool = False) -> Iterator[dict]:
        """The full rows of ``keys`` on one side (in key order when ``ordered``)."""
        if not keys:
            return iter(())
        import pyarrow as pa

        con = self.snaps[side].duckdb
        wanted = pa.table({"zone_id": [k[0] for k in keys], "id": [k[1] for k in keys]})
        con.register("_reconcile_keys", wanted)
        try:
            reader = con.sql(
                f"SELECT u.* FROM unique_events u SEMI JOIN _reconcile_keys k "
                f"ON u.zone_id = k.zone_id AND u.id = k.id WHERE {self.where}"
                + (" ORDER BY u.zone_id, u.id" if ordered else ""), params=self.params
            ).to_arrow_reader(BATCH_ROWS)
            batches = list(reader) if not ordered else None
        finally:
            if not ordered:
                con.unregister("_reconcile_keys")
        if batches is not None:
            return (row for batch in batches for row in batch.to_pylist())
        return _streamed(con, reader)

    def _checks(self) -> dict[str, str]:
        shapes = {side: sorted({i.shape for i in snap.inputs})
                  for side, snap in self.snaps.items()}
        checks = {f"{side} shapes": ", ".join(names) or "none"
                  for side, names in shapes.items()}
        weak = sorted({s for names in shapes.values() for s in names if s in API_SHAPES})
        checks["fields"] = ("compared where both rows carry them (absent_fields); NULL and "
                            "empty text alike; jsonb by value, never by key order")
        if weak:
            checks["admin api"] = (
                f"against {', '.join(weak)}: '[redacted]' values, a number's spelling and "
                "digits beyond a double" + (", and metadata the CSV cannot write (objects, "
                                            "keys that are not its columns)"
                                            if Shape.API_CSV in weak else "")
                + " are not compared")
        checks["times"] = ("to the millisecond where one side has milliseconds only "
                           "(Admin API, OCSF), else to the microsecond")
        if self.where != "TRUE":
            checks["window"] = f"both sides narrowed alike ({_window(self.params)})"
        return checks


def _streamed(con: duckdb.DuckDBPyConnection, reader: Any) -> Iterator[dict]:
    try:
        for batch in reader:
            yield from batch.to_pylist()
    finally:
        con.unregister("_reconcile_keys")


def _more(kind: str, zone: str, hidden: int, cap: int) -> ReconcileFinding:
    from .chain.wording import more_findings

    return ReconcileFinding(kind, zone, None, None, None, more_findings(kind, hidden, cap))


def _window(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v.isoformat() if hasattr(v, 'isoformat') else v}"
                     for k, v in params.items())


def _hour_of(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(minute=0, second=0, microsecond=0)


def _hour_text(hour: datetime | None) -> str | None:
    return None if hour is None else hour.astimezone(timezone.utc).strftime(
        "%Y-%m-%dT%H:00:00Z")


def _at(row: dict) -> str | None:
    path = row.get("source_file")
    if path is None:
        return None
    return f"{path}:{row['source_line']}" if row.get("source_line") is not None else path


def _shown(name: str, value: str | None, limit: int = 200) -> str:
    """A value in a finding's words: jsonb text as it is, other text quoted (so that
    spaces show), a side without it as "none"."""
    if value is None:
        return "none" if "." in name else "NULL"
    text = value if name.startswith(JSONB_FIELDS) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"... ({len(value)} characters)"


def _value(row: dict, name: str) -> str | None:
    """A field as findings show it: times in ISO (to their digits), the rest as held."""
    value = row.get(name)
    if isinstance(value, datetime):
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return (text[:-3] if (row.get("occurred_at_digits") or 6) < 6 else text) + "Z"
    return None if value is None else str(value)


# --- the comparison of two rows of one event (only those whose raw values differ) -----


class _Caps:
    """What one row can carry, from its shape and its absent_fields."""

    def __init__(self, row: dict) -> None:
        shape = row.get("source_shape")
        absent = [n for n in (row.get("absent_fields") or "").split(",") if n]
        self.absent = {n for n in absent if not n.startswith("metadata_json.")}
        if shape == Shape.WIRE_SPOOL:  # the line is what was signed; its HMAC is not in it
            self.absent.add("ingest_signature")
        #: metadata keys the row lacks (a lost object, a CSV column not exported)
        self.absent_keys = {n.split(".", 1)[1] for n in absent if n.startswith("metadata_json.")}
        self.api = shape in API_SHAPES
        self.csv = shape == Shape.API_CSV
        #: a ``fields=`` projection: only the metadata keys it holds were exported
        self.projection = shape == Shape.API_JSON and "diagnostics_json" in self.absent
        self.millis = (row.get("occurred_at_digits") or 6) < 6


def compare_rows(left: dict, right: dict) -> list[tuple[str, str | None, str | None]]:
    """The fields in which two rows of one event differ, as (field, left value, right
    value), ignoring only what the weaker row cannot carry (see the module docstring). A
    jsonb object differs key by key: ``metadata_json.<key>`` and the key's two values
    (jsonb text, or the CSV cell against the CSV export; None where a side has no key)."""
    mine, theirs = _Caps(left), _Caps(right)
    skip = mine.absent | theirs.absent
    found: list[tuple[str, str | None, str | None]] = []
    for name in COMPARED_FIELDS:
        if name in skip:
            continue
        a, b = left.get(name), right.get(name)
        if name in JSONB_FIELDS:
            if a != b:
                found += _json_diffs(name, a, b, mine, theirs)
            continue
        if name in TIMES:
            same = _same_time(a, b, mine.millis or theirs.millis)
        elif name in TEXT:
            same = (a or "") == (b or "")
        else:
            same = a == b
        if not same:
            found.append((name, _value(left, name), _value(right, name)))
    return found


def _same_time(a: datetime | None, b: datetime | None, millis: bool) -> bool:
    if a is None or b is None or not millis:
        return a == b
    return a.replace(microsecond=a.microsecond // 1000 * 1000) == b.replace(
        microsecond=b.microsecond // 1000 * 1000)


def _json_diffs(name: str, a: str | None, b: str | None, mine: _Caps,
                theirs: _Caps) -> list[tuple[str, str | None, str | None]]:
    """How two jsonb texts of one field differ, in what both rows can carry."""
    from .jsonb import dumps, loads

    loose = mine.api or theirs.api
    left = None if a is None else loads(a)
    right = None if b is None else loads(b)
    if name == "determining_policies_json" and (mine.csv or theirs.csv or mine.projection
                                                 or theirs.projection):
        same = _policy_names(left) == _policy_names(right)
        return [] if same else [(name, a, b)]
    if name == "metadata_json" and (mine.csv or theirs.csv):
        keys = _csv_keys(mine, theirs)
        cells = _cells(left, keys), _cells(right, keys)
        return [(f"{name}.{key}", cells[0].get(key), cells[1].get(key))
                for key in sorted(set(cells[0]) | set(cells[1]))
                if cells[0].get(key) != cells[1].get(key)]
    if name == "metadata_json":
        kept = _carried_keys(left, right, mine, theirs)
        if kept is not None:
            left, right = (_only(value, kept) for value in (left, right))
        if mine.projection or theirs.projection:  # a key asked for and absent is null
            left, right = (_only(value, {k for k, v in value.items() if v is not None})
                           if isinstance(value, dict) else value for value in (left, right))
            left, right = (value or None for value in (left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return [(f"{name}.{key}", _text(left, key, dumps), _text(right, key, dumps))
                for key in sorted(set(left) | set(right))
                if _weakened(left.get(key, _NONE), loose, key)
                != _weakened(right.get(key, _NONE), loose, key)]
    same = _weakened(left, loose) == _weakened(right, loose)
    return [] if same else [(name, a, b)]


#: a key one side lacks (not the same as JSON null)
_NONE = object()


def _text(value: dict, key: str, dumps: Any) -> str | None:
    return dumps(value[key]) if key in value else None


def _carried_keys(left: object, right: object, mine: _Caps, theirs: _Caps) -> set | None:
    """The metadata keys both rows carry, or None for all: a ``fields=`` projection holds
    only the keys it was asked for, a lost object (``metadata_json.<key>``) none."""
    keys: set | None = None
    for value, caps in ((left, mine), (right, theirs)):
        if caps.projection:
            held = set(value) if isinstance(value, dict) else set()
            keys = held if keys is None else keys & held
    lost = mine.absent_keys | theirs.absent_keys
    if lost:
        every = set(left or {}) | set(right or {}) if keys is None else keys
        keys = every - lost
    return keys


def _only(value: object, keys: set) -> object:
    return {k: v for k, v in value.items() if k in keys} if isinstance(value, dict) else value


def _policy_names(value: object) -> list[str]:
    """``[{"policy": name}]`` as its names (all the CSV and a projection carry)."""
    if not isinstance(value, list):
        return []
    return [str(item.get("policy")) if isinstance(item, dict) else str(item) for item in value]


def _csv_keys(mine: _Caps, theirs: _Caps) -> set[str]:
    from .sources.api_json import METADATA_FIELDS

    return set(METADATA_FIELDS) - mine.absent_keys - theirs.absent_keys


def _cells(value: object, keys: set[str]) -> dict[str, str]:
    """Metadata as the CSV export writes it: the columns' cells, empty ones left out."""
    from .sources.api_csv import unguard

    if not isinstance(value, dict):
        return {}
    cells = {}
    for key in keys & set(value):
        cell = unguard(_js_cell(value[key]))
        if cell:
            cells[key] = cell
    return cells


def _js_cell(value: object) -> str:
    """A value as the CSV export writes it (arrays joined by one space)."""
    if isinstance(value, list):
        return " ".join(_js_string(item) for item in value)
    return _js_string(value)


def _js_string(value: object) -> str:
    """JavaScript's ``String(value)`` of a parsed JSON value."""
    from .jsonb import JsonbNumber

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonbNumber):
        return js_number(float(value))
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if item is None else _js_string(item) for item in value)
    return str(value)


def js_number(number: float) -> str:
    """A double as JavaScript prints it (Number.prototype.toString)."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign, digits_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple))
    k, n = len(digits), len(digits) + int(exponent)
    minus = "-" if number < 0 else ""
    if k <= n <= 21:
        return minus + digits + "0" * (n - k)
    if 0 < n <= 21:
        return minus + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return minus + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{minus}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def _weakened(value: object, loose: bool, key: str = "") -> object:
    """A parsed JSON value (held under ``key``) with what the weaker side cannot carry
    taken out: with ``loose`` (one side is the Admin API's) numbers as doubles and a
    sensitive key's value as ``"[redacted]"``; else numbers as their exact jsonb literal."""
    from .jsonb import JsonbNumber

    if loose and key.lower() in SENSITIVE and value is not _NONE:
        return REDACTED
    if isinstance(value, dict):
        return {k: _weakened(v, loose, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_weakened(item, loose) for item in value]
    if isinstance(value, JsonbNumber):
        return ("number", float(value) if loose else str(value))
    return value


class _CallableModule(types.ModuleType):
    """Importing this module makes it the package's attribute ``reconcile`` (Python sets a
    submodule on its package), in place of ``cf.reconcile`` the function: so the module
    itself is callable, as that function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Reconciliation:
        return reconcile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
