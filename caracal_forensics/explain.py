"""``explain REQUEST_ID``: every event of one request, in time order, and its final decision.

The final decision is ``deny`` if any event of the request denied, else the decision of
its last event. A chain, and so a request's evidence, is per zone: a request seen in
several zones is explained once per zone (:func:`explain_all`), and :func:`explain`
wants ``zone`` to pick one. With an HMAC key, each event also says whether its chain
link verified, from the verify engine run over that zone. When the sources hold admin
changes (``admin_audit_events``), the explanation also names those made to the request's
policy set, policy set version, application and resource in the 24 hours before it
(:func:`admin_changes_before`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import NotFoundError, UsageError
from .filters import Filters, select
from .render.jsonl import dumps
from .render.records import (
    OCCURRED_AT_SQL,
    OCCURRED_AT_TEXT,
    NestedTooDeeply,
    json_lines,
    occurred_at_texts,
    parse_json,
    records,
    rows_without_times,
    too_deep,
)
from .render.table import printable
from .timetext import from_micros

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class ChainLink:
    """Whether one event's chain link verified: True, False, or None (could not be checked)."""

    verified: bool | None
    findings: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"chain_verified": self.verified, "chain_findings": list(self.findings)}


@dataclass
class Explanation:
    """One request explained: its zone, final decision and events (oldest first).

    ``events`` is a polars frame of the event rows; ``chain`` (when a key was given)
    holds one :class:`ChainLink` per event, in the same order. ``admin_changes`` (None
    when no source holds admin changes) lists the admin changes to what the request
    involved in the 24 hours before it, each an ``admin tail`` record with ``involves``.
    """

    request_id: str
    zone_id: str | None
    decision: str | None
    table: pa.Table = field(repr=False)
    chain: list[ChainLink] | None = None
    key_fingerprint: str | None = None
    admin_changes: list[dict[str, Any]] | None = None
    involved: list[tuple[str, str]] = field(default_factory=list)

    @property
    def events(self) -> pl.DataFrame:
        import polars as pl

        return pl.from_arrow(self.table.drop_columns([OCCURRED_AT_TEXT]))  # type: ignore[return-value]

    @property
    def denied_by(self) -> list[str]:
        """Ids of the events that denied."""
        ids = self.table.column("id").to_pylist()
        decisions = self.table.column("decision").to_pylist()
        return [i for i, d in zip(ids, decisions, strict=True) if (d or "").lower() == "deny"]

    def records(self) -> list[dict[str, Any]]:
        """Each event's ``tail --json`` record (plus chain_verified/chain_findings with a key)."""
        out = records(self.table)
        if self.chain is not None:
            for record, link in zip(out, self.chain, strict=True):
                record.update(link.to_dict())
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "request_id": self.request_id,
            "zone_id": self.zone_id,
            "decision": self.decision,
            "events": self.records(),
        }
        if self.admin_changes is not None:
            out["admin_changes"] = self.admin_changes
        return out

    def to_json(self) -> str:
        """One line of JSON; each event is its ``tail --json`` line, spliced verbatim."""
        lines = json_lines(self.table)
        if self.chain is not None:
            lines = [
                line[:-1]
                + ", "
                + ", ".join(f'"{k}" : {dumps(v)}' for k, v in link.to_dict().items())
                + "}"
                for line, link in zip(lines, self.chain, strict=True)
            ]
        return (
            '{"request_id" : '
            + dumps(self.request_id)
            + ', "zone_id" : '
            + dumps(self.zone_id)
            + ', "decision" : '
            + dumps(self.decision)
            + ', "events" : ['
            + ", ".join(lines)
            + "]"
            + ("" if self.admin_changes is None
               else ', "admin_changes" : ' + dumps(self.admin_changes))
            + "}"
        )

    def text(self) -> str:
        """The human layout (see :func:`render_text`)."""
        return render_text(self)

    def __str__(self) -> str:
        return self.text()


def explain(
    con,
    request_id: str,
    zone: str | None = None,
    key: bytes | str | None = None,
) -> Explanation:
    """Explain ``request_id`` from ``con``'s view ``events``; NotFoundError if absent.

    A request seen in several zones is a UsageError naming them: give ``zone``, or call
    :func:`explain_all` for one explanation per zone."""
    results = explain_all(con, request_id, zone=zone, key=key)
    if len(results) > 1:
        zones = ", ".join(r.zone_id for r in results)
        raise UsageError(
            f"request id {request_id!r} occurs in {len(results)} zones ({zones}): "
            "give zone= to choose one, or use explain_all() for each"
        )
    return results[0]


def explain_all(
    con,
    request_id: str,
    zone: str | None = None,
    key: bytes | str | None = None,
) -> list[Explanation]:
    """One Explanation per zone the request occurs in (zones in order; one when ``zone``
    is given); NotFoundError if the request id is absent."""
    if not isinstance(request_id, str) or not request_id:
        raise UsageError("explain needs a request id")
    filters = Filters.build(request_id=request_id, zone=zone, limit=0)
    table = select(con, filters, extra=(f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",))
    if table.num_rows == 0:
        where = f" in zone {zone!r}" if zone else ""
        raise NotFoundError(f"request id {request_id!r} not found{where}")
    zones = sorted({z for z in table.column("zone_id").to_pylist() if z is not None})
    results = []
    for zone_id in zones or [None]:
        part = table
        if len(zones) > 1:
            import pyarrow.compute as pc  # only here: importing it takes 25 ms

            part = table.filter(pc.equal(table.column("zone_id"), zone_id))
        decisions = [(d or "").lower() or None for d in part.column("decision").to_pylist()]
        final = "deny" if "deny" in decisions else decisions[-1]
        result = Explanation(request_id=request_id, zone_id=zone_id, decision=final, table=part)
        if key is not None and zone_id is not None:
            result.chain, result.key_fingerprint = chain_links(con, part, zone_id, key)
        result.involved = involved_ids(part)
        result.admin_changes = admin_changes_before(con, part, zone_id, result.involved)
        results.append(result)
    return results


#: How far back before a request ``explain`` looks for admin changes.
ADMIN_LOOKBACK = dt.timedelta(hours=24)


def involved_ids(table: pa.Table) -> list[tuple[str, str]]:
    """(what, id) of what the request's events involve, each once, in this order: the
    policy set, its version(s), the application (metadata application_id, else
    principal_id) and the resource (resource, else resource_id)."""
    found: dict[tuple[str, str], None] = {}
    rows = table.select(["policy_set_id", "policy_set_version_id", "metadata_json"]
                        ).to_pylist()
    for label, pick in (
        ("policy set", lambda row, meta: row["policy_set_id"]),
        ("policy set version", lambda row, meta: row["policy_set_version_id"]),
        ("application", lambda row, meta: _first(meta, PRINCIPAL_KEYS)),
        ("resource", lambda row, meta: _first(meta, ("resource", "resource_id"))),
    ):
        for row in rows:
            try:
                meta = parse_json(row["metadata_json"])
            except ValueError:  # NestedTooDeeply: what it involves is not readable here
                meta = None
            value = pick(row, meta if isinstance(meta, dict) else {})
            if isinstance(value, str) and value:
                found[(label, value)] = None
    return list(found)


def _first(meta: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((meta[k] for k in keys if meta.get(k) is not None), None)


def admin_changes_before(con, table: pa.Table, zone_id: str | None,
                         involved: list[tuple[str, str]],
                         lookback: dt.timedelta = ADMIN_LOOKBACK) -> list[dict[str, Any]] | None:
    """The admin changes of the request's zone (and of the global chain) from
    ``lookback`` before its first event up to its last, whose entity_id, or a segment of
    whose path, is one of the ``involved`` ids: ``admin tail`` records, oldest first, each
    with ``involves`` (the ids it names, as ``"policy set ps-pay"``). None when no
    source holds admin changes (nothing could be said), [] when none was made."""
    from .admin.changes import OCCURRED_AT_SQL as CHANGE_AT_SQL
    from .admin.changes import change_records
    from .admin.snapshot import UNIQUE_VIEW, has_admin
    from .filters import run_query

    if not has_admin(con):
        return None
    # microseconds since the epoch, not datetimes from pyarrow (which imports pandas)
    times = [micros for chunk in table.column("occurred_at").chunks
             for micros in chunk.view(pa.int64()).to_pylist() if micros is not None]
    ids = sorted({value for _, value in involved})
    if not times or not ids:
        return []
    first, last = from_micros(min(times)), from_micros(max(times))
    params = {"zone": zone_id, "ids": ids, "start": first - lookback, "end": last}
    rows = run_query(
        con,
        f"SELECT *, {CHANGE_AT_SQL} AS occurred_at_text FROM {UNIQUE_VIEW} "
        "WHERE (zone_id = $zone OR zone_id IS NULL) AND occurred_at >= $start "
        "AND occurred_at <= $end AND (list_contains($ids, entity_id) OR "
        "len(list_intersect(string_split(coalesce(path, ''), '/'), $ids)) > 0) "
        "ORDER BY occurred_at, zone_id NULLS FIRST, chain_seq, id",
        params,
    )
    records = change_records(rows)
    for record in records:
        segments = set((record.get("path") or "").split("/")) | {record.get("entity_id")}
        record["involves"] = [f"{label} {value}" for label, value in involved
                              if value in segments]
    return records


def several_zones_note(results: list[Explanation]) -> str:
    """The line said first when a request occurs in several zones."""
    zones = ", ".join(printable(r.zone_id) for r in results)
    return (
        f"Request {printable(results[0].request_id)} occurs in {len(results)} zones "
        f"({zones}): each zone's explanation follows, one after another."
    )


def chain_links(
    con, table: pa.Table, zone: str, key: bytes | str
) -> tuple[list[ChainLink], str | None]:
    """Verify ``zone`` and say, for each event of ``table``, whether its link verified.

    The engine's Report lists findings, not a verdict per event, and it summarises: the
    wrong-key case is one hmac_mismatch at the zone's first event, findings beyond its
    cap are one line without an event, and what it could not check is said once per
    zone and reason. So, per event:

    - False when a failing finding names it, or when every HMAC of the zone failed;
    - None (not established) when the zone has failing findings not listed one by one,
      or anything the engine could not check, or the event starts the zone's segment
      without an anchor (its link and HMAC unchecked; the reasons are given);
    - True otherwise: no failing finding names it and nothing in the zone was unchecked.
    """
    from .chain.verify import verify
    from .keys import coerce_key, key_fingerprint

    decoded = coerce_key(key)
    report = verify(con, key=decoded, zones=[zone])
    named: dict[str, list[Any]] = {}
    every_hmac_failed = []
    unlisted = []
    unverifiable = []
    unanchored: dict[str, list[Any]] = {}
    for finding in report.findings:
        if finding.zone_id not in (zone, None):
            continue
        if finding.fails:
            if finding.every_hmac_failed:
                every_hmac_failed.append(finding)
            elif finding.event_id is None:
                unlisted.append(finding)
            else:
                named.setdefault(finding.event_id, []).append(finding)
        elif finding.severity == "unverifiable":
            unverifiable.append(finding)
        elif finding.kind == "unanchored_start" and finding.event_id is not None:
            unanchored.setdefault(finding.event_id, []).append(finding)
    links = []
    for event_id in table.column("id").to_pylist():
        verified: bool | None
        if event_id in named or every_hmac_failed:
            verified, shown = False, named.get(event_id, []) + every_hmac_failed
        elif event_id in unanchored:
            verified, shown = None, unanchored[event_id]
        elif unlisted or unverifiable:
            verified, shown = None, unlisted + unverifiable
        else:
            verified, shown = True, []
        links.append(
            ChainLink(
                verified=verified,
                findings=tuple({"kind": f.kind, "detail": f.detail} for f in shown),
            )
        )
    return links, key_fingerprint(decoded)


# --- the text layout -------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, str):
        return printable(value)
    return printable(dumps(value))


def render_text(result: Explanation) -> str:
    """The text of ``result`` (``_render_text``); an event whose jsonb nests deeper than
    Python parses or prints (PostgreSQL takes it) is an InputError naming its file and
    line, not a RecursionError."""
    try:
        return _render_text(result)
    except (RecursionError, NestedTooDeeply):
        raise _too_deep_event(result.table) from None


def _too_deep_event(table: pa.Table) -> Exception:
    """The error for the first event of ``table`` whose jsonb cannot be parsed or shown."""
    from .model import JSONB_FIELDS

    for index, row in enumerate(table.select(list(JSONB_FIELDS)).to_pylist()):
        try:
            for text in row.values():
                _value(parse_json(text))
        except (RecursionError, NestedTooDeeply):
            return too_deep(table, index, "its JSON")
    return RecursionError("maximum recursion depth exceeded")  # not the data: a bug


def _render_text(result: Explanation) -> str:
    """The guide's layout first, so a reader (or ``grep '^Event:'``) finds what the guide
    shows: ``Request``, ``Zone``, ``Decision`` (the final one); then per event (oldest
    first) ``Event: <event type>``, ``Determining policies`` as ``  - name
    (policy_set_version_id)``, ``Diagnostics`` as ``  - key: value`` and ``Metadata`` as
    ``key: value`` at column 0, the principal first. The facts the guide does not show
    (event id, time, per-event decision, policy set, status, chain position and link,
    source) follow under ``Details``, indented, then the final decision and which events
    denied. Values are printed as text with control characters escaped; non-string
    values as compact JSON with their stored number literals."""
    table = result.table
    rows = rows_without_times(table)  # the times are shown from their text
    occurred = occurred_at_texts(table)
    out = [
        f"Request: {printable(result.request_id)}",
        f"Zone: {printable(result.zone_id) or '-'}",
        f"Decision: {printable(result.decision) or '-'}",
    ]
    for index, row in enumerate(rows):
        if index:
            out.append("")
        out.append(f"Event: {printable(row['event_type']) or '-'}")
        version = row.get("policy_set_version_id")
        out.extend(_policies(parse_json(row.get("determining_policies_json")), version))
        out.extend(_diagnostics(parse_json(row.get("diagnostics_json"))))
        out.extend(_metadata(parse_json(row.get("metadata_json"))))
    out.append("")
    out.append(f"Details ({len(rows)} event(s), oldest first):")
    if result.key_fingerprint:
        out.append(f"  Key: {result.key_fingerprint}")
    for index, row in enumerate(rows):
        out.append(
            f"  {printable(row['id'])}: {printable(row['event_type']) or '-'}"
            f" at {occurred[index]}"
        )
        out.append(f"    Decision: {printable(row['decision']) or '-'}")
        version = row.get("policy_set_version_id")
        out.append(
            f"    Policy set: {printable(row.get('policy_set_id')) or '-'}"
            f" (version {printable(version) or '-'})"
        )
        if row.get("manifest_sha"):
            out.append(f"    Manifest: {printable(row['manifest_sha'])}")
        absent = set((row.get("absent_fields") or "").split(","))
        if "evaluation_status" not in absent:
            out.append(f"    Evaluation status: {printable(row.get('evaluation_status')) or '-'}")
        out.append(_chain_line(row, absent, result.chain[index] if result.chain else None))
        where = f"{row.get('source_file')}"
        if row.get("source_line") is not None:
            where += f" line {row['source_line']}"
        out.append(f"    Source: {printable(where)}")
    out.append("")
    denied = result.denied_by
    if denied:
        why = f"denied by {', '.join(printable(i) for i in denied)}"
    else:
        why = "no event denied: the last event's decision"
    out.append(f"Final decision: {printable(result.decision) or '-'} ({why})")
    out.extend(_admin_lines(result))
    return "\n".join(out)


def _admin_lines(result: Explanation) -> list[str]:
    """``Admin changes in the 24 hours before ...:`` and one line per change, oldest
    first (nothing when no source holds admin changes)."""
    if result.admin_changes is None:
        return []
    hours = int(ADMIN_LOOKBACK.total_seconds() // 3600)
    what = ", ".join(f"{label} {printable(value)}" for label, value in result.involved)
    head = f"Admin changes in the {hours} hours before ({what or 'nothing named'}):"
    if not result.admin_changes:
        return ["", head, "  none"]
    lines = ["", head]
    for change in result.admin_changes:
        who = change.get("actor_name") or change.get("actor_id") or "(no actor)"
        text = (f"  {change['occurred_at']}  {printable(who)}: "
                f"{printable(change.get('action') or change.get('path') or '-')} -> "
                f"{printable(change.get('status_code'))}")
        if (change.get("status_code") or 0) >= 400:
            text += " FAILED"
        where = f"{printable(change.get('chain'))} seq {change.get('chain_seq')}"
        text += f" ({'; '.join(printable(i) for i in change['involves'])}; {where})"
        lines.append(text)
    return lines


def render_all(results: list[Explanation]) -> str:
    """One explanation, or, for a request seen in several zones, a line saying so and
    then each zone's explanation in turn, separated by a blank line."""
    if len(results) == 1:
        return results[0].text()
    return "\n\n".join([several_zones_note(results), *(r.text() for r in results)])


def _chain_line(row: dict[str, Any], absent: set[str], link: ChainLink | None) -> str:
    seq = row.get("chain_seq")
    known = seq is not None and "chain_seq" not in absent
    text = f"    Chain: seq {seq}" if known else "    Chain: seq -"
    if link is None:
        return text
    if link.verified is True:
        return text + ", link verified"
    reasons = (
        "; ".join(
            printable(f"{f['kind']}: {f['detail']}" if link.verified is False else f["detail"])
            for f in link.findings
        )
        or "no reason given"
    )
    if link.verified is False:
        return text + f", link FAILED ({reasons})"
    return text + f", link not checked ({reasons})"


def _policies(value: Any, version: str | None) -> list[str]:
    if value is None or value == []:
        return ["Determining policies: none"]
    items = value if isinstance(value, list) else [value]
    lines = ["Determining policies:"]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("policy"), str):
            name = printable(item["policy"])
        else:
            name = _value(item)
        lines.append(f"  - {name} ({printable(version) or '-'})")
    return lines


def _diagnostics(value: Any) -> list[str]:
    if value is None or value == [] or value == {}:
        return ["Diagnostics: none"]
    items = value if isinstance(value, list) else [value]
    lines = ["Diagnostics:"]
    for item in items:
        if isinstance(item, dict) and item:
            lines.extend(f"  - {printable(k)}: {_value(v)}" for k, v in item.items())
        else:
            lines.append(f"  - {_value(item)}")
    return lines


#: The principal, as FORMAT.md section 6 names it: application_id when present, else the
#: older guide's principal_id. Printed first among the metadata.
PRINCIPAL_KEYS = ("application_id", "principal_id")


def _metadata(value: Any) -> list[str]:
    if value is None or value == {}:
        return ["Metadata: none"]
    if not isinstance(value, dict):
        return [f"Metadata: {_value(value)}"]
    first = next((k for k in PRINCIPAL_KEYS if k in value), None)
    keys = ([first] if first else []) + [k for k in value if k != first]
    return ["Metadata:", *(f"{printable(k)}: {_value(value[k])}" for k in keys)]
