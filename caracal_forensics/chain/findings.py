"""The exhaustive pipeline's findings: one check per kind of finding over the work
tables that ``stages.Run`` built, each wording its findings through ``wording.py``.

The checks run in the order of ``CHECKS`` (``every_hmac_failed`` before the checks that
leave out the HMAC results of a zone whose every HMAC fails). Each takes the collector
(``Findings``: the run's tables, the cap per zone and kind, the file names) and the zone
statistics, and adds what it finds. To add a finding kind: name it in ``report.Kind``
with its severity, word it in ``wording.py``, write its check here and list it in
``CHECKS`` (and make the clean pass give up where it could occur: ``clean.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..keys import key_fingerprint
from . import digest, wording
from .report import Finding, Kind, Reason, Report
from .stages import ABSENT, COMPUTED, MISMATCH, NO_HASH, OK, SKIPPED
from .summary import assemble_report, describe_checks

if TYPE_CHECKING:
    from .stages import Run

#: Per zone: events, seq range, head, first row, and how the HMAC checks went.
ZoneStats = dict[str, dict[str, Any]]


class Findings:
    """What the checks add to, over one run's work tables: findings located at a file and
    line, at most ``cap`` per zone and kind and one line counting the rest."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.sql = run.sql
        self.key = run.key
        self.cap = run.cap
        self.heads = run.heads
        self.zones = run.zones
        self.anchor = run.anchor
        self.wrong_key = run.wrong_key
        self.repeated_seqs = run.repeated_seqs
        self.checks = run.checks
        files = run.sql("SELECT fid, source_file FROM {files}").fetchall()
        self.files: dict[int, str] = dict(files)
        self.found: list[Finding] = []
        #: whole-table aggregates computed elsewhere (the Spark engine), by name
        self.aggregates: dict[str, list] | None = None
        #: (path, shape) of the spools and dead-letter entries given (FORMAT.md 7)
        self.wire_files: list[tuple[str, str]] = []
        self._wire: list | None = None

    def source(self, fid: int | None, line: int | None) -> str | None:
        if fid is None:
            return None
        return f"{self.files.get(fid, '?')}:{line}" if line is not None else self.files.get(fid)

    def add(self, kind: str, zone: str | None, event: str | None, seq: int | None,
            fid: int | None, line: int | None, detail: str, reason: str | None = None) -> None:
        self.found.append(Finding(kind, zone, event, seq, self.source(fid, line), detail,
                                  reason=reason))

    def more(self, kind: str, zone: str, total: int) -> None:
        """The line that stands for findings beyond the cap."""
        if total > self.cap:
            self.add(kind, zone, None, None, None, None,
                     wording.more_findings(kind, total - self.cap, self.cap))

    def totals(self, name: str, query: str, params: dict | None = None) -> list:
        """A whole-table aggregate: the query over the run's tables, or the rows another
        engine computed over every row and handed in (``build_report``'s aggregates),
        the work tables then holding only the rows that findings name."""
        if self.aggregates is not None:
            return self.aggregates[name]
        return self.sql(query, params).fetchall()

    def details(self, rids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """(event id, file number, line) of a few rows, by rowid in ``rows``."""
        wanted = sorted({r for r in rids if r is not None})
        if not wanted:
            return {}
        found = self.sql(
            "SELECT rowid, id, fid, line FROM {rows} WHERE rowid IN (SELECT unnest($rids))",
            {"rids": wanted},
        ).fetchall()
        return {rid: (event, fid, line) for rid, event, fid, line in found}


def build_report(run: Run, inputs: Iterable[Any],
                 aggregates: dict[str, list] | None = None) -> Report:
    """Every check over the run's tables, then the Report; ``aggregates`` (see
    ``Findings.totals``) when the tables hold only the rows findings name."""
    f = Findings(run)
    f.aggregates = aggregates
    inputs = list(inputs)
    f.wire_files = wire_files(inputs)
    zones = zone_stats(f)
    for check in CHECKS:
        check(f, zones)
    return assemble_report(f.found, zones, inputs, run.key, describe(f, zones))


def zone_stats(f: Findings) -> ZoneStats:
    """Per zone: events, seq range, head, first row, and how the HMAC checks went."""
    stats: ZoneStats = {}
    rows = f.totals(
        "zones",
        """SELECT zone_id, count(*) FILTER (WHERE rk = 1) AS events,
                   min(seq), max(seq), arg_max(c, seq) FILTER (WHERE rk = 1),
                   arg_min(struct_pack(rid, seq, has_prev, pred_from), seq)
                     FILTER (WHERE rk = 1),
                   count(hmac_ok) FILTER (WHERE rk = 1),
                   count(*) FILTER (WHERE rk = 1 AND NOT hmac_ok),
                   count(*) FILTER (WHERE rk = 1 AND has_h AND hmac_ok IS NULL
                                    AND NOT gap AND pred_from IS NOT NULL),
                   arg_min(struct_pack(rid, seq), seq) FILTER (WHERE rk = 1 AND NOT hmac_ok)
              FROM {chain} GROUP BY zone_id""")
    details = f.details(
        [r[5]["rid"] for r in rows if r[5]] + [r[9]["rid"] for r in rows if r[9]])
    for zone, events, first, last, last_c, head, checked, failed, unchecked, fail1 in rows:
        stats[zone] = {
            "events": events, "first_seq": first, "last_seq": last, "last_c": last_c,
            "first": _located(head, details), "hmac_checked": checked,
            "hmac_failed": failed, "hmac_unchecked": unchecked,
            "first_failure": _located(fail1, details),
        }
    # Events without chain_seq count too, though their order cannot be checked.
    for zone, n in f.totals(
        "no_seq", "SELECT zone_id, count(*) FROM {rows} WHERE seq IS NULL GROUP BY zone_id"):
        entry = stats.setdefault(zone, {
            "events": 0, "first_seq": None, "last_seq": None, "last_c": None,
            "first": None, "hmac_checked": 0, "hmac_failed": 0, "hmac_unchecked": 0,
            "first_failure": None,
        })
        entry["events"] += n
        entry["no_seq"] = n
    return stats

def content_mismatches(f: Findings, zones: ZoneStats) -> None:
    """Rows whose recomputed content hash differs from the stored one."""
    rows = f.sql(
        """SELECT zone_id, id, seq, fid, line, digits, c, calc_c,
                  count(*) OVER (PARTITION BY zone_id) AS total
             FROM {rows} WHERE state = $mismatch
          QUALIFY row_number() OVER (PARTITION BY zone_id ORDER BY seq, fid, line) <= $cap""",
        {"mismatch": MISMATCH, "cap": f.cap},
    ).fetchall()
    totals = {}
    for zone, event, seq, fid, line, digits, stored, calc, total in rows:
        totals[zone] = total
        f.add(Kind.CONTENT_MISMATCH, zone, event, seq, fid, line,
              wording.content_mismatch(digits, stored, calc))
    for zone, total in totals.items():
        f.more(Kind.CONTENT_MISMATCH, zone, total)

def every_hmac_failed(f: Findings, zones: ZoneStats) -> None:
    """Zones where every HMAC checked fails: one finding saying the key is probably wrong.

    Their HMACs say nothing more, but gaps, broken links and differing copies still
    do: the later steps leave out only the HMAC results of these zones."""
    for zone, z in zones.items():
        if z["hmac_checked"] >= 2 and z["hmac_failed"] == z["hmac_checked"]:
            f.wrong_key.add(zone)
            first = z["first_failure"]
            f.add(Kind.HMAC_MISMATCH, zone, first["id"], first["seq"], first["fid"],
                  first["line"],
                  wording.every_hmac_failed(z["hmac_checked"], key_fingerprint(f.key)),
                  reason=Reason.EVERY_HMAC_FAILED)

def chain_breaks(f: Findings, zones: ZoneStats) -> None:
    """Gaps, broken links and failed HMACs of canonical rows, each blamed where it starts.

    A forged or edited event also breaks what follows it: the next event's stored prev
    (or, without a prev column, its HMAC) no longer matches. When the next event's own
    HMAC proves its link authentic, or its HMAC check depends on the failed one, that
    consequence is folded into the one finding at the forged event.
    """
    rows = f.sql(
        f"""WITH c AS (SELECT * REPLACE (CASE WHEN list_contains($wrong, zone_id)
                                          THEN NULL ELSE hmac_ok END AS hmac_ok)
                       FROM {{chain}} WHERE rk = 1),
           failed AS (SELECT zone_id, seq FROM c WHERE hmac_ok = false),
           flagged AS (
             SELECT c.*, f.seq IS NOT NULL AS pred_failed
               FROM c LEFT JOIN failed f ON f.zone_id = c.zone_id AND f.seq = c.seq - 1
              WHERE c.gap OR c.link_ok = false OR c.hmac_ok = false),
           succ AS (
             SELECT zone_id, seq - 1 AS seq, any_value(stored_p) AS chained_to,
                    bool_or(NOT has_prev) AS succ_fails
               FROM flagged
              WHERE pred_failed AND ((link_ok = false AND hmac_ok)
                                      OR (NOT has_prev AND hmac_ok = false))
              GROUP BY ALL),
           out AS (
             SELECT 'sequence_gap' AS kind, rid, zone_id, seq, has_prev, pred_seq,
                    NULL AS a, NULL AS b, NULL AS succ_fails
               FROM flagged WHERE gap
             UNION ALL
             SELECT 'chain_break', rid, zone_id, seq, has_prev, pred_seq, stored_p,
                    pred_hash, pred_from
               FROM flagged WHERE link_ok = false AND NOT (hmac_ok AND pred_failed)
             UNION ALL
             SELECT 'hmac_mismatch', rid, f.zone_id, f.seq, has_prev, pred_seq, NULL,
                    s.chained_to, coalesce(s.succ_fails, false)
               FROM flagged f LEFT JOIN succ s ON s.zone_id = f.zone_id AND s.seq = f.seq
              WHERE hmac_ok = false AND NOT (NOT has_prev AND pred_failed)),
           listed AS (
             SELECT *, count(*) OVER (PARTITION BY zone_id, kind) AS total FROM out
             QUALIFY row_number() OVER (PARTITION BY zone_id, kind ORDER BY seq, rid)
                     <= $cap)
        SELECT l.kind, l.zone_id, r.id, l.seq, r.fid, r.line, l.has_prev, l.pred_seq,
               CASE WHEN l.kind = 'hmac_mismatch' AND r.state = {COMPUTED}
                    THEN 'computed' ELSE l.a END,
               l.b, l.succ_fails, l.total
          FROM listed l JOIN {{rows}} r ON r.rowid = l.rid""",
        {"wrong": sorted(f.wrong_key), "cap": f.cap},
    ).fetchall()
    totals: dict[tuple[str, str], int] = {}
    for (kind, zone, event, seq, fid, line, has_prev, pred_seq, a, b, c, total) in rows:
        totals[(zone, kind)] = total
        if kind == Kind.SEQUENCE_GAP:
            detail = wording.sequence_gap(seq, pred_seq, has_prev)
        elif kind == Kind.CHAIN_BREAK:
            detail = wording.chain_break(seq, a, b, c)
        else:
            detail = wording.hmac_mismatch(seq, has_prev, bool(a), b, bool(c))
        f.add(kind, zone, event, seq, fid, line, detail)
    for (zone, kind), total in totals.items():
        f.more(kind, zone, total)

def duplicates(f: Findings, zones: ZoneStats) -> None:
    """Rows sharing a (zone, seq) with the canonical row, and ids seen at several seqs."""
    if f.repeated_seqs:
        second_versions(f)
    # The same id at more than one seq of a zone (a replayed or re-inserted event).
    # Grouping by a 64-bit hash first is far cheaper than by two strings; the exact
    # grouping then runs on the few candidates only (a collision merely adds one).
    rows = f.sql(
        """WITH maybe AS (
             SELECT hash(zone_id, id) AS h FROM {rows} WHERE seq IS NOT NULL
              GROUP BY h HAVING min(seq) <> max(seq)),
           ids AS (
             SELECT zone_id, id, min(seq) AS first_seq FROM {rows}
              WHERE seq IS NOT NULL AND hash(zone_id, id) IN (SELECT h FROM maybe)
              GROUP BY zone_id, id HAVING min(seq) <> max(seq))
        SELECT r.zone_id, r.id, r.seq, r.fid, r.line, ids.first_seq,
               count(*) OVER (PARTITION BY r.zone_id)
          FROM {rows} r JOIN ids ON r.zone_id = ids.zone_id AND r.id = ids.id
         WHERE r.seq > ids.first_seq
        QUALIFY row_number() OVER (PARTITION BY r.zone_id, r.id, r.seq
                                   ORDER BY r.fid, r.line) = 1"""
    ).fetchall()
    rows.sort(key=lambda r: (r[0], r[2]))
    per_zone: dict[str, int] = defaultdict(int)
    for zone, event, seq, fid, line, first_seq, _ in rows:
        per_zone[zone] += 1
        if per_zone[zone] <= f.cap:
            f.add(Kind.CONFLICTING_DUPLICATE, zone, event, seq, fid, line,
                  wording.replayed_id(event, first_seq))
    for zone, total in per_zone.items():
        f.more(Kind.CONFLICTING_DUPLICATE, zone, total)

def second_versions(f: Findings) -> None:
    """Rows that lost the (zone, seq) to the canonical one: copies or conflicts."""
    key = f.key is not None
    hmac_x = digest.chain_hmac_sql("x.c", "k.pred_hash") + " = xr.full_h" if key else "NULL"
    # rows keeps stored_h only where it is needed later; these few rows read it again
    f.sql(
        f"""CREATE TABLE {{x}} AS
        WITH x AS (SELECT * FROM {{chain}} WHERE rk > 1),
             k AS (SELECT * FROM {{chain}} WHERE rk = 1
                    AND (zone_id, seq) IN (SELECT (zone_id, seq) FROM x)),
             h AS (SELECT fid, source_line AS line,
                          any_value(lower(nullif(chain_hmac, ''))) AS stored_h
                     FROM {{src}}
                    WHERE (fid, source_line) IN (
                          SELECT (r.fid, r.line) FROM {{rows}} r
                           WHERE r.rowid IN (SELECT rid FROM x UNION SELECT rid FROM k))
                    GROUP BY ALL),
             xr AS (SELECT r.rowid AS rid, r.*, h.stored_h AS full_h FROM {{rows}} r
                      LEFT JOIN h ON h.fid = r.fid AND h.line = r.line
                     WHERE r.rowid IN (SELECT rid FROM x UNION SELECT rid FROM k))
        SELECT x.zone_id, x.seq, xr.id, xr.fid, xr.line, kr.id AS k_id, kr.fid AS k_fid,
               kr.line AS k_line, xr.id = kr.id AS same_id,
               x.c IS NOT DISTINCT FROM k.c AS same_c,
               xr.full_h IS NOT DISTINCT FROM kr.full_h AS same_h,
               CASE WHEN list_contains($wrong, x.zone_id) THEN NULL
                    WHEN x.has_prev THEN x.hmac_ok
                    WHEN xr.full_h IS NOT NULL AND x.c IS NOT NULL
                         AND k.pred_hash IS NOT NULL THEN {hmac_x} END AS hmac_ok,
               CASE WHEN x.has_prev AND k.pred_hash IS NOT NULL
                    THEN coalesce(x.stored_p, '') = k.pred_hash END AS link_ok,
               x.stored_p AS stored_p, k.pred_hash AS pred_hash
          FROM x JOIN k ON x.zone_id = k.zone_id AND x.seq = k.seq
          JOIN xr ON xr.rid = x.rid
          JOIN xr kr ON kr.rid = k.rid""",
        {"wrong": sorted(f.wrong_key)},
    )
    f.sql("ALTER TABLE {x} ADD COLUMN exact BOOLEAN")
    f.sql("UPDATE {x} SET exact = same_id AND same_c AND same_h AND hmac_ok IS NOT false "
             "AND link_ok IS NOT false")
    rows = f.sql(
        """WITH out AS (
             SELECT CASE WHEN exact THEN 'duplicate_event' ELSE 'conflicting_duplicate' END
                      AS kind, * FROM {x}
             UNION ALL
             SELECT 'hmac_mismatch', * FROM {x} WHERE NOT exact AND hmac_ok = false
             UNION ALL
             SELECT 'chain_break', * FROM {x} WHERE NOT exact AND link_ok = false)
        SELECT kind, zone_id, seq, id, fid, line, k_id, k_fid, k_line, same_id, same_c,
               same_h, stored_p, pred_hash, count(*) OVER (PARTITION BY zone_id, kind)
          FROM out
        QUALIFY row_number() OVER (PARTITION BY zone_id, kind ORDER BY seq, fid, line)
                <= $cap""",
        {"cap": f.cap},
    ).fetchall()
    totals: dict[tuple[str, str], int] = {}
    for (kind, zone, seq, event, fid, line, k_id, k_fid, k_line, same_id, same_c, same_h,
         stored_p, pred_hash, total) in rows:
        totals[(zone, kind)] = total
        other = f.source(k_fid, k_line)
        if kind == Kind.DUPLICATE_EVENT:
            detail = wording.duplicate_event(other)
        elif kind == Kind.CONFLICTING_DUPLICATE:
            differs = [name for name, same in (("id", same_id), ("content", same_c),
                                               ("chain_hmac", same_h)) if not same]
            if not differs:
                differs = ["prev_content_sha256"]
            detail = wording.conflicting_version(seq, other, k_id, differs)
        elif kind == Kind.HMAC_MISMATCH:
            detail = wording.SECOND_VERSION_HMAC
        else:
            detail = wording.second_version_break(stored_p, pred_hash)
        f.add(kind, zone, event, seq, fid, line, detail)
    for (zone, kind), total in totals.items():
        f.more(kind, zone, total)

def anchor_checks(f: Findings, zones: ZoneStats) -> None:
    """Heads from the anchor must still be there; zones starting late need an anchor."""
    for zone, z in zones.items():
        first = z["first"]
        if first is None or first["seq"] <= 1:
            continue
        head = f.heads.get(zone)
        if head is None:
            f.add(Kind.UNANCHORED_START, zone, first["id"], first["seq"], first["fid"],
                  first["line"], wording.unanchored_start(first["seq"], first["has_prev"]))
        elif first["seq"] > head.last_seq + 1:
            f.add(Kind.SEQUENCE_GAP, zone, first["id"], first["seq"], first["fid"],
                  first["line"], wording.gap_after_anchor(head.last_seq, first["seq"]))
    if not f.heads:
        return
    present = f.sql(
        """SELECT a.zone_id, c.rid, c.seq, c.c
             FROM {anchor} a JOIN {chain} c ON c.zone_id = a.zone_id
              AND c.seq = a.last_seq AND c.rk = 1"""
    ).fetchall()
    details = f.details(row[1] for row in present)
    at_head = {zone: (zone, *details[rid][:1], seq, *details[rid][1:], c)
               for zone, rid, seq, c in present}
    for zone, head in sorted(f.heads.items()):
        z = zones.get(zone)
        if z is None or z["last_seq"] is None:
            f.add(Kind.TRUNCATED, zone, None, head.last_seq, None, None,
                  wording.zone_gone(head.last_seq))
            continue
        if z["last_seq"] < head.last_seq:
            rid = f.sql(
                "SELECT rid FROM {chain} WHERE rk = 1 AND zone_id = $z AND seq = $s",
                {"z": zone, "s": z["last_seq"]},
            ).fetchall()[0][0]
            event, fid, line = f.details([rid])[rid]
            f.add(Kind.TRUNCATED, zone, event, z["last_seq"], fid, line,
                  wording.truncated(z["last_seq"], head.last_seq))
        row = at_head.get(zone)
        if row is not None and head.last_content_sha256 and row[5] != head.last_content_sha256:
            f.add(Kind.ANCHOR_MISMATCH, zone, row[1], row[2], row[3], row[4],
                  wording.anchor_mismatch(row[5], head.last_seq, head.last_content_sha256))

def unverifiable(f: Findings, zones: ZoneStats) -> None:
    """What could not be checked, once per zone and reason (never once per event)."""
    for zone in sorted(set(f.zones or ()) - set(zones)):
        if zone not in f.heads:
            f.add(Kind.UNVERIFIABLE, zone, None, None, None, None, wording.NO_EVENTS_DETAIL)
    counts = f.totals(
        "unverifiable",
        f"""SELECT zone_id, state, missing, count(*),
                   count(*) FILTER (WHERE NOT has_h),
                   count(*) FILTER (WHERE NOT has_h AND has_prev),
                   arg_min(struct_pack(id, seq, fid, line), coalesce(seq, 0))
              FROM {{rows}}
             WHERE state IN ({ABSENT}, {SKIPPED}, {NO_HASH}, {COMPUTED}) OR NOT has_h
             GROUP BY ALL ORDER BY ALL""")
    no_hmac: dict[str, int] = defaultdict(int)
    unsigned: dict[str, int] = defaultdict(int)
    unproven: dict[str, int] = defaultdict(int)
    spec = f.run.spec
    for zone, state, missing, n, n_no_hmac, n_unsigned, first in counts:
        no_hmac[zone] += n_no_hmac
        if spec.unsigned_allowed:  # a NULL chain_hmac in a full row: written without a key
            unsigned[zone] += n_unsigned
            no_hmac[zone] -= n_unsigned
        at = (first["id"], first["seq"], first["fid"], first["line"])
        if state == ABSENT and spec.undecided and spec.undecided in (missing or ""):
            f.add(Kind.UNVERIFIABLE, zone, *at,
                  wording.key_order_not_found(n, spec.budget or 0),
                  reason=Reason.KEY_ORDER)
        elif state == ABSENT:
            f.add(Kind.UNVERIFIABLE, zone, *at, wording.field_absent(n, missing))
        elif state == SKIPPED:
            f.add(Kind.UNVERIFIABLE, zone, *at, wording.recovery_skipped(n))
        elif state == NO_HASH:
            f.add(Kind.UNVERIFIABLE, zone, *at, wording.millis_without_hash(n))
        elif state == COMPUTED:
            unproven[zone] += n
    for zone, z in sorted(zones.items()):
        if f.key is None:
            f.add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                  wording.no_key(unproven.get(zone, 0)))
        else:
            if no_hmac.get(zone):
                f.add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                      wording.no_hmac(no_hmac[zone]))
            if unsigned.get(zone):
                f.add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                      wording.unsigned(unsigned[zone]), reason=Reason.UNSIGNED)
            if z["hmac_unchecked"]:
                f.add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                      wording.hmac_unchecked(z["hmac_unchecked"]))
        if z.get("no_seq"):
            f.add(Kind.UNVERIFIABLE, zone, None, None, None, None, wording.no_seq(z["no_seq"]))

def wire_files(inputs: list[Any]) -> list[tuple[str, str]]:
    """(path, shape) of the inputs that are wire events (spools, dead-letter entries)."""
    from ..model import Shape

    return [(i.path, i.shape) for i in inputs
            if getattr(i, "shape", None) in Shape.WIRE_SHAPES]


def _wire_matches(f: Findings) -> list:
    """The wire events of the run matched to ledger rows, once per run (no query at all
    when no wire file was given: the usual verification pays nothing)."""
    if f._wire is None:
        from .producers import match

        f._wire = list(match(f.run.con, f.wire_files, f.key, f.zones)) if f.wire_files else []
    return f._wire


def _add_capped(f: Findings, counts: dict, kind: str, zone: str | None, event: str | None,
                seq: int | None, source: str | None, detail: str) -> None:
    counts[(zone, kind)] = counts.get((zone, kind), 0) + 1
    if counts[(zone, kind)] <= f.cap:
        f.found.append(Finding(kind, zone, event, seq, source, detail))


def _more_capped(f: Findings, counts: dict) -> None:
    for (zone, kind), total in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        f.more(kind, zone, total)


def producer_signatures(f: Findings, zones: ZoneStats) -> None:
    """Wire events whose stored producer signature is not the HMAC of their bytes
    (FORMAT.md 7); without the key, say once per zone that they were not checked."""
    matches = _wire_matches(f)
    if f.key is None:
        unchecked: dict[str, int] = defaultdict(int)
        for m in matches:
            unchecked[m.event.row["zone_id"]] += 1
        for zone, n in sorted(unchecked.items()):
            f.add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                  wording.producers_unchecked(n))
        return
    counts: dict = {}
    for m in matches:
        if m.forged:
            _add_capped(f, counts, Kind.SIGNATURE_MISMATCH, m.event.row["zone_id"],
                        m.event.row["id"], None, m.where,
                        wording.signature_mismatch(m.event.reason))
    _more_capped(f, counts)


def ledger_against_producers(f: Findings, zones: ZoneStats) -> None:
    """Each validly signed wire event against its ledger row: by signature, a row whose
    content differs from the signed bytes (``producer_mismatch``); by id and occurred_at,
    a second signed version (``conflicting_version``); no row at all: ``not_in_ledger``."""
    from . import producers

    if f.key is None:
        return
    counts: dict = {}
    for m in _wire_matches(f):
        if m.forged or m.event.data is None:
            continue
        wire = m.event.row
        if m.by_sig is not None:
            differs = producers.differing(wire, m.by_sig)
            if differs:
                zone, seq, at = producers.located(m.by_sig)
                _add_capped(f, counts, Kind.PRODUCER_MISMATCH, zone, m.by_sig["id"], seq, at,
                            wording.producer_mismatch(m.where, differs,
                                                      producers.shown(wire, differs),
                                                      producers.shown(m.by_sig, differs)))
            continue
        differs = producers.differing(wire, m.by_id) if m.by_id is not None else []
        if m.by_id is not None and not differs:
            continue  # the same content (a row stored without its signature, say)
        if m.by_id is not None and m.event.sig and producers.same_time(wire, m.by_id):
            # a stored signature that verifies: a second, signed version of the event
            zone, seq, at = producers.located(m.by_id)
            _add_capped(f, counts, Kind.CONFLICTING_VERSION, zone, wire["id"], seq, m.where,
                        wording.wire_conflicting_version(
                            at, differs, producers.shown(wire, differs),
                            producers.shown(m.by_id, differs)))
            continue
        # these bytes never reached the ledger (a row of the same id holds other content)
        other = producers.located(m.by_id)[2] if m.by_id is not None else None
        _add_capped(f, counts, Kind.NOT_IN_LEDGER, wire["zone_id"], wire["id"], None,
                    m.where, wording.not_in_ledger(m.event.reason, other))
    _more_capped(f, counts)


def describe(f: Findings, zones: ZoneStats) -> dict[str, str]:
    """The report's ``checks``: what each check covered."""
    states = dict(f.totals("states", "SELECT state, count(*) FROM {rows} GROUP BY state"))
    checks = describe_checks(
        f.checks,
        proven=states.get(OK, 0) + states.get(MISMATCH, 0),
        total=sum(states.values()),
        key=f.key,
        hmac_checked=sum(z["hmac_checked"] for z in zones.values()),
        heads=len(f.heads),
        anchor=f.anchor,
    )
    if f.wire_files:
        checks["producers"] = wording.producers_check(
            len(_wire_matches(f)), len(f.wire_files), f.key is not None)
    return checks

def _located(head: dict | None, details: dict[int, tuple[str, int, int]]) -> dict | None:
    """A zone's first (or first failing) row with its event id, file and line."""
    if head is None:
        return None
    event, fid, line = details[head["rid"]]
    return {**head, "id": event, "fid": fid, "line": line}


#: The checks, in the order they run.
CHECKS: tuple[Callable[[Findings, ZoneStats], None], ...] = (
    content_mismatches,
    every_hmac_failed,
    chain_breaks,
    duplicates,
    anchor_checks,
    unverifiable,
    producer_signatures,
    ledger_against_producers,
)
