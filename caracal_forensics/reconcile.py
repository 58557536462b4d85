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

Speed: both sides are opened as every command opens them; then one DuckDB connection
reads both sides' Parquet files (a snapshot's parts, the spool of what was loaded),
reduces each event to a slim row (key, hour, short fields, an MD5 of each jsonb field,
the bits of the fields it lacks), joins the two and counts per hour, marking per pair
the bits of the fields whose raw values differ. A short field that differs is final
there; a differing jsonb field is settled in SQL when the Admin API's redaction and
doubles explain it, else in Python (``reconcile_fields``), for those rows only.
"""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .chain.report import MAX_FINDINGS_PER_KIND, Finding, InputSummary, Kind
from .errors import UsageError
from .model import JSONB_FIELDS, Shape
from .reconcile_fields import API_SHAPES, REDACTED, SENSITIVE, js_number  # noqa: F401
from .timetext import iso_text

if TYPE_CHECKING:
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
#: Agree (exit 0), or some event is missing or differs (exit 1, as verify's tampered).
AGREE, DIFFER = "agree", "differ"
#: Rows per Arrow batch read from either side.
BATCH_ROWS = 65_536
#: Events (of the larger side) above which the two sides are joined a group of zones at
#: a time (``_Run._zone_groups``).
GROUP_EVENTS = 5_000_000


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
    #: malformed lines left out of either side (``on_bad_line="skip"``); about the run,
    #: not the evidence, so not in the JSON
    skipped_lines: int = field(default=0, compare=False, repr=False)

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
    from .loading import path_texts

    paths = path_texts(value if value is not None else (), name)
    return open_sources(paths, on_bad_line=on_bad_line, exclude=tuple(exclude))


# --- the SQL: both sides in one connection, reduced, then joined -----------------------

#: Per event: the key, the hour, the short values, an MD5 of each jsonb text (NULL and ""
#: alike for text), the bits of the fields the row lacks.
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
#: One bit per compared field: ``absent`` holds the bits of the fields a row lacks, a
#: pair's ``differ`` those whose raw values differ where both rows carry them.
_BITS = {name: 1 << index for index, name in enumerate(COMPARED_FIELDS)}
_JSON_BITS = sum(_BITS[name] for name in JSONB_FIELDS)
#: What a pair keeps of each side (``s_hour``, ``a_digits``...): its counts' hour and
#: its time's digits. Where each side's row was read, and what its shape could carry
#: (``_PROVENANCE``), is read back only for the pairs that become findings: carried in
#: every pair, it went through the join for all of them (10M events: 33 -> 29 s).
_KEPT = ("hour", "digits")
#: Per side (``s_file``, ``a_shape``...): the relation's column of each.
_PROVENANCE = {"file": "source_file", "line": "source_line", "shape": "source_shape",
               "absent_fields": "absent_fields"}


def _slim_sql(where: str, relation: str) -> str:
    text = ", ".join(f"coalesce({name}, '') AS {name}" for name in TEXT)
    hashes = ", ".join(f"md5_number({name}) AS {name}" for name in JSONB_FIELDS)
    bits = " ".join(f"WHEN '{name}' THEN {bit}" for name, bit in _BITS.items())
    return _SLIM.format(text=text, hashes=hashes, chain=", ".join(CHAIN), bits=bits,
                        relation=relation, where=where)


def _files_relation(snap: Snapshot) -> str | None:
    """``unique_events`` of ``snap`` as SQL over its Parquet files (a snapshot's parts,
    the spool of what was loaded), so that the reconciling connection reads them itself,
    without the rows crossing over as Arrow; None when the snapshot was not laid out so
    (read from PostgreSQL, or its view replaced since)."""
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


def _differ_sql() -> str:
    """The bits of the fields both rows carry whose raw values differ (times: to the
    millisecond when either has only milliseconds)."""
    parts = []
    for name in COMPARED_FIELDS:
        differs = f"s.{name} IS DISTINCT FROM a.{name}"
        if name in TIMES:
            differs += (f" AND NOT (least(s.digits, a.digits) < 6 AND date_trunc("
                        f"'millisecond', s.{name}) = date_trunc('millisecond', a.{name}))")
        parts.append(f"CASE WHEN ((s.absent | a.absent) & {_BITS[name]}) = 0 AND {differs} "
                     f"THEN {_BITS[name]} ELSE 0 END")
    return " | ".join(parts)


class _Run:
    """One reconciliation: both sides reduced to slim tables in a connection of its own
    and joined into ``pairs``; then the findings."""

    def __init__(self, snaps: list[Snapshot], filters: Any, cap: int) -> None:
        from .engine import connect

        self.snaps = dict(zip(SIDES, snaps, strict=True))
        self.filters = filters
        self.where, self.params = filters.where()
        self.cap = cap
        self.con = connect()
        self.relations: dict[str, str] = {}
        for side, snap in self.snaps.items():
            relation = _files_relation(snap)
            if relation is None:  # its rows brought over once, as Arrow
                relation = f"{side}_rows"
                reader = snap.duckdb.sql(f"SELECT * FROM unique_events WHERE {self.where}",
                                         params=self.params).to_arrow_reader(BATCH_ROWS)
                self.con.register("_side", reader)
                try:
                    self.con.execute(f"CREATE TABLE {relation} AS SELECT * FROM _side")
                finally:
                    self.con.unregister("_side")
            self.relations[side] = relation
        kept = ", ".join(f"{x}.{name} AS {x}_{name}" for x in "sa" for name in _KEPT)
        for index, (where, params) in enumerate(self._zone_groups()):
            # each side's slim rows go straight into the join (held as tables first, two
            # sides of 10M events went to disk twice)
            slim = ", ".join(f"{side} AS ({_slim_sql(where, relation)})"
                             for side, relation in self.relations.items())
            self.con.execute(
                f"{'INSERT INTO pairs' if index else 'CREATE TABLE pairs AS'} WITH {slim} "
                f"SELECT coalesce(s.zone_id, a.zone_id) AS zone_id, "
                f"coalesce(s.id, a.id) AS id, s.id IS NOT NULL AS in_s, a.id IS NOT NULL AS in_a, "
                f"coalesce(s.occurred_at, a.occurred_at) AS occurred, "
                f"coalesce(s.chain_seq, a.chain_seq) AS seq, {kept}, "
                f"CASE WHEN s.id IS NOT NULL AND a.id IS NOT NULL THEN {_differ_sql()} ELSE 0 "
                f"END AS differ "
                f"FROM source s FULL OUTER JOIN against a ON s.zone_id = a.zone_id "
                f"AND s.id = a.id", params)

    def _zone_groups(self) -> list[tuple[str, dict[str, Any]]]:
        """The WHERE clauses (and parameters) the pairs are joined by, a part at a time:
        the whole window at once unless a zone's events on either side add up to more
        than GROUP_EVENTS; then zones packed in groups of about that many, a larger zone
        cut in parts by a hash of the event id (both sides alike, so a pair stays in one
        part), events without a zone last. At once, the 10M snapshot against the 1M one
        ran out of memory writing the pairs; its 10M against itself went 30.5 -> 27 s
        and 9.8 -> 4.7 GB of temporary files at the peak, in three groups."""
        sizes: Counter[str | None] = Counter()
        for snap in self.snaps.values():
            for zone, events in snap.duckdb.execute(
                    f"SELECT zone_id, count(*) FROM events WHERE {self.where} GROUP BY 1",
                    self.params).fetchall():
                sizes[zone] = max(sizes[zone], events)  # the larger side is the join's
        if sum(sizes.values()) <= GROUP_EVENTS:
            return [(self.where, self.params)]
        groups: list[list[str]] = []
        held = 0
        for zone in sorted(z for z in sizes if z is not None):
            if not groups or held + sizes[zone] > GROUP_EVENTS:
                groups.append([])
                held = 0
            groups[-1].append(zone)
            held += sizes[zone]
        clauses = []
        for group in groups:
            params = dict(self.params)
            params.update({f"_zone_{i}": zone for i, zone in enumerate(group)})
            listed = ", ".join(f"$_zone_{i}" for i in range(len(group)))
            parts = -(-sizes[group[0]] // GROUP_EVENTS) if len(group) == 1 else 1
            for part in range(parts):
                cut = f" AND hash(id) % {parts} = {part}" if parts > 1 else ""
                clauses.append((f"({self.where}) AND zone_id IN ({listed}){cut}", params))
        if None in sizes:
            clauses.append((f"({self.where}) AND zone_id IS NULL", self.params))
        return clauses

    def result(self) -> Reconciliation:
        from ._version import __version__

        findings: list[ReconcileFinding] = []
        totals: Counter[str] = Counter()
        per_hour: Counter[tuple[str, Any]] = Counter()
        self._missing(findings, totals)
        listed: Counter[str] = Counter()
        for pair, diffs in self._differences():
            zone = pair["zone_id"]
            for name, mine, theirs in diffs:
                totals[Kind.FIELD_MISMATCH] += 1
                per_hour[(zone, pair["s_hour"])] += 1
                listed[zone] += 1
                if listed[zone] <= self.cap:
                    findings.append(_mismatch(pair, name, mine, theirs))
        for zone, total in listed.items():
            if total > self.cap:
                findings.append(_more(Kind.FIELD_MISMATCH, zone, total - self.cap, self.cap))
        counts = self.con.execute(
            "SELECT count(*) FILTER (in_s), count(*) FILTER (in_a), "
            "count(*) FILTER (in_s AND in_a) FROM pairs").fetchone() or (0, 0, 0)
        findings.sort(key=lambda f: (f.zone_id or "", f.kind, f.event_id is None,
                                     f.event_id or "", f.field or ""))
        return Reconciliation(
            status=DIFFER if totals else AGREE,
            source_events=counts[0], against_events=counts[1], matched=counts[2],
            hours=self._hours(per_hour), findings=findings, totals=dict(totals),
            source_inputs=[InputSummary.of(i) for i in self.snaps["source"].inputs],
            against_inputs=[InputSummary.of(i) for i in self.snaps["against"].inputs],
            checks=self._checks(),
            skipped_lines=sum(snap.skipped_lines for snap in self.snaps.values()),
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
        if not per_zone:
            return  # else both sides are read for their rows' provenance: for nothing
        # each zone's first by (occurred_at NULLS LAST, id): a bounded heap per zone (a
        # window sorted every missing event: 2.6 s for 9M, this 0.2 s)
        cursor = self.con.execute(
            "WITH listed AS (SELECT zone_id, unnest(arg_min(id, (occurred IS NULL, "
            "occurred, id), $cap)) AS id FROM pairs WHERE in_s <> in_a GROUP BY zone_id) "
            f"SELECT p.*, {_provenance_sql()} FROM (SELECT * FROM pairs SEMI JOIN listed "
            f"USING (zone_id, id) WHERE in_s <> in_a) p {self._beside('LEFT JOIN')}",
            {"cap": self.cap})
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            pair = dict(zip(names, values, strict=True))
            have, lacks = ("source", "against") if pair["in_s"] else ("against", "source")
            x = have[0]
            at = _at(pair[f"{x}_file"], pair[f"{x}_line"])
            stamp = _stamp(pair["occurred"], pair[f"{x}_digits"])
            findings.append(ReconcileFinding(
                Kind.MISSING_IN_SOURCE, pair["zone_id"], pair["id"], pair["seq"], at,
                f"missing from {lacks}, only {have} has it"
                + (f" (occurred_at {stamp})" if stamp else ""), missing_from=lacks))

    def _differences(self) -> Iterator[tuple[dict, list[tuple[str, str | None, str | None]]]]:
        """Each pair whose raw values differ, with its differences: a short field's are
        final in SQL; a jsonb field's are decided by ``reconcile_fields`` (what the
        weaker row can carry), in Python, for the rows that SQL could not settle (against
        the Admin API's JSON: equal once both are redacted alike and read as doubles)."""
        import heapq

        short = [n for n in COMPARED_FIELDS if n not in JSONB_FIELDS]
        # in time order per zone, as the missing events are listed: the findings listed
        # under the cap are the first ones, the same in every run
        yield from heapq.merge(self._short_differences(short), self._json_differences(),
                               key=_in_order)

    def _json_differences(self) -> Iterator[tuple[dict, list]]:
        """Pairs whose jsonb texts differ, with the differences the weaker row can carry."""
        from .reconcile_fields import caps, json_diffs

        texts = ", ".join(f"CASE WHEN p.differ & {_BITS[n]} <> 0 THEN {x}.{n} END AS {x}_{n}"
                          for n in JSONB_FIELDS for x in "sa")
        weak = ", ".join(f"{_weakly_equal(n)} AS same_{n}" for n in JSONB_FIELDS)
        for pair in self._joined(f"{texts}, {weak}", f"p.differ & {_JSON_BITS} <> 0"):
            mine = caps(pair["s_shape"], pair["s_absent_fields"], pair["s_digits"])
            theirs = caps(pair["a_shape"], pair["a_absent_fields"], pair["a_digits"])
            diffs = []
            for name in JSONB_FIELDS:
                if pair["differ"] & _BITS[name] and not pair[f"same_{name}"]:
                    try:
                        diffs += json_diffs(name, pair[f"s_{name}"], pair[f"a_{name}"],
                                            mine, theirs)
                    except (ValueError, RecursionError):  # nested deeper than Python
                        # parses (or not JSON): the texts, which differ
                        diffs.append((name, pair[f"s_{name}"], pair[f"a_{name}"]))
            if diffs:
                yield pair, diffs

    def _short_differences(self, short: list[str]) -> Iterator[tuple[dict, list]]:
        bits = sum(_BITS[n] for n in short)
        values = ", ".join(f"{x}.{n} AS {x}_{n}" for x in "sa" for n in short)
        for pair in self._joined(values, f"p.differ & {bits} <> 0"):
            spool = Shape.WIRE_SPOOL in (pair["s_shape"], pair["a_shape"])
            diffs = [(n, _value(pair, "s", n), _value(pair, "a", n)) for n in short
                     if pair["differ"] & _BITS[n]
                     # a spool line is what was signed: its HMAC is not in it
                     and not (spool and n == "ingest_signature")]
            if diffs:
                yield pair, diffs

    def _beside(self, join: str) -> str:
        """SQL: ``pairs p`` joined (``join``) to both sides' rows, ``s`` and ``a``."""
        return " ".join(f"{join} {self.relations[side]} {side[0]} ON {side[0]}.zone_id = "
                        f"p.zone_id AND {side[0]}.id = p.id" for side in SIDES)

    def _joined(self, columns: str, where: str) -> Iterator[dict]:
        """Rows of ``pairs`` matching ``where``, with their provenance and ``columns`` of
        both sides' rows (``s``, ``a``)."""
        # pairs holds only the rows of the window already
        query = (f"SELECT p.*, {_provenance_sql()}, {columns} FROM pairs p "
                 f"{self._beside('JOIN')} WHERE {where} "
                 f"ORDER BY p.zone_id, p.occurred NULLS LAST, p.id")
        # a cursor of its own: two such streams are read side by side
        for batch in self.con.cursor().sql(query).to_arrow_reader(BATCH_ROWS):
            columns_ = batch.to_pydict()
            names = list(columns_)
            for row in zip(*columns_.values(), strict=True):
                yield dict(zip(names, row, strict=True))

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
            checks["window"] = f"both sides narrowed alike ({_window(self.filters)})"
        return checks


#: A sensitive key's scalar value, at any depth of jsonb text (a value in a string has
#: its quotes escaped, so it never matches); objects and arrays are left to Python.
_SENSITIVE_VALUE = (r'"((?i:' + "|".join(sorted(SENSITIVE)) + r'))": '
                    r'("(?:[^"\\]|\\.)*"|[-0-9.eE+]+|true|false|null)')


def _weakly_equal(name: str) -> str:
    """SQL: against the Admin API's JSON (not a projection), whether two jsonb texts are
    the same once sensitive values are redacted alike and numbers read as doubles
    (DuckDB's ``json()`` prints each the same); false means "ask Python", never "differ".
    A text that is no JSON (a dump's cell cut short) is never handed to ``json()``, which
    would fail the whole comparison: Python says it differs (CASE: DuckDB evaluates every
    operand of an AND)."""
    def redacted(x: str) -> str:
        return (f"regexp_replace({x}.{name}, '{_SENSITIVE_VALUE}', "
                f"'\"\\1\": \"{REDACTED}\"', 'g')")

    plain = " AND ".join(
        f"{x}.source_shape IS DISTINCT FROM '{Shape.API_CSV}' AND NOT ({x}.source_shape = "
        f"'{Shape.API_JSON}' AND coalesce({x}.absent_fields, '') LIKE '%diagnostics_json%')"
        f" AND coalesce({x}.absent_fields, '') NOT LIKE '%metadata_json.%'" for x in "sa")
    valid = " AND ".join(f"json_valid({redacted(x)})" for x in "sa")
    return (f"coalesce(CASE WHEN '{Shape.API_JSON}' IN (s.source_shape, a.source_shape) "
            f"AND {plain} "
            f"AND {valid} THEN json({redacted('s')})::VARCHAR = json({redacted('a')})::VARCHAR"
            f" END, false)")


def _in_order(found: tuple[dict, list]) -> tuple:
    """A pair's place in ``_joined``'s order: zone, then occurred_at (NULL last), id."""
    pair = found[0]
    return (pair["zone_id"], pair["occurred"] is None, pair["occurred"] or _NEVER, pair["id"])


_NEVER = datetime.min.replace(tzinfo=timezone.utc)  # stands in for a NULL occurred_at


def _provenance_sql() -> str:
    """SQL: where each side's row was read and its shape (``s_file``, ``a_shape``...)."""
    return ", ".join(f"{x}.{column} AS {x}_{name}" for x in "sa"
                     for name, column in _PROVENANCE.items())


def _mismatch(pair: dict, name: str, mine: str | None, theirs: str | None
              ) -> ReconcileFinding:
    here, there = _at(pair["s_file"], pair["s_line"]), _at(pair["a_file"], pair["a_line"])
    return ReconcileFinding(
        Kind.FIELD_MISMATCH, pair["zone_id"], pair["id"], pair["seq"], here,
        f"{name}: source {_shown(name, mine)}, against {_shown(name, theirs)} "
        f"(against at {there})",
        field=name, source_value=mine, against_value=theirs, against_at=there)


def _more(kind: str, zone: str, hidden: int, cap: int) -> ReconcileFinding:
    from .chain.wording import more_findings

    return ReconcileFinding(kind, zone, None, None, None, more_findings(kind, hidden, cap))


def _window(filters: Any) -> str:
    """The zones and the occurred_at window both sides were narrowed to, in words."""
    parts = [f"zone {', '.join(filters.zones)}"] if filters.zones else []
    parts += [f"{name} {moment.isoformat().replace('+00:00', 'Z')}"
              for name, moment in (("since", filters.since), ("until", filters.until))
              if moment is not None]
    return "; ".join(parts)


def _hour_text(hour: datetime | None) -> str | None:
    return None if hour is None else iso_text(hour, "hours") + ":00:00Z"


def _at(path: str | None, line: int | None) -> str | None:
    if path is None:
        return None
    return f"{path}:{line}" if line is not None else path


def _shown(name: str, value: str | None, limit: int = 200) -> str:
    """A value in a finding's words: jsonb text as it is, other text quoted (so that
    spaces show), a side without it as "none"."""
    if value is None:
        return "none" if "." in name else "NULL"
    text = value if name.startswith(JSONB_FIELDS) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"... ({len(value)} characters)"


def _stamp(moment: datetime | None, digits: int | None) -> str | None:
    """A time as findings show it: ISO, to the digits its side has."""
    if moment is None:
        return None
    return iso_text(moment, "milliseconds" if (digits or 6) < 6 else "microseconds") + "Z"


def _value(pair: dict, x: str, name: str) -> str | None:
    """A short field of side ``x`` as findings show it."""
    value = pair.get(f"{x}_{name}")
    if isinstance(value, datetime):
        return _stamp(value, pair[f"{x}_digits"])
    return None if value is None else str(value)


class _CallableModule(types.ModuleType):
    """Importing this module makes it the package's attribute ``reconcile`` (Python sets a
    submodule on its package), in place of ``cf.reconcile`` the function: so the module
    itself is callable, as that function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Reconciliation:
        return reconcile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
