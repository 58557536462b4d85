"""What both verify passes share: the trusted heads of an anchor, the findings' words,
the report's checks and summaries, and running a transform over batches on two threads.

Kept free of DuckDB so that the clean pass over a snapshot imports none of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from ..keys import key_fingerprint
from .report import Finding, InputSummary, Report, ZoneSummary, status_of


@dataclass(frozen=True)
class Head:
    """A trusted zone head from the anchor."""

    zone_id: str
    last_seq: int
    last_content_sha256: str | None


def anchor_heads(anchor: Report | None, zones: Sequence[str] | None) -> dict[str, Head]:
    """The trusted zone heads of an anchor report (of the zones verified)."""
    heads: dict[str, Head] = {}
    if anchor is not None:
        for z in anchor.zones:
            if z.last_seq is not None and (zones is None or z.zone_id in zones):
                heads[z.zone_id] = Head(z.zone_id, z.last_seq, z.last_content_sha256)
    return heads


NO_EVENTS_DETAIL = "no events of this zone in the export"


def unanchored_detail(first_seq: int, has_prev: bool) -> str:
    unchecked = "its link to the previous event" + (
        "" if has_prev else " and its HMAC") + " are unchecked"
    return f"the zone starts at seq {first_seq} here and no anchor covers it: {unchecked}"


def no_key_detail(unproven: int = 0) -> str:
    extra = ""
    if unproven:
        extra = (f"; {unproven} event(s) carry no content_sha256, so their content is "
                 "unproven too")
    return ("chain_hmac not checked: no key given (--key-file, AUDIT_HMAC_KEY or "
            f"AUDIT_HMAC_KEY_FILE){extra}")


def describe_checks(checks: dict[str, str], *, proven: int, total: int, key: bytes | None,
                    hmac_checked: int, heads: int, anchor: Report | None) -> dict[str, str]:
    """The report's ``checks``: what was checked, how often, in a fixed order."""
    checks = dict(checks)
    checks["content"] = f"recomputed and compared for {proven} of {total} row(s)"
    if key is None:
        checks["hmac"] = "not run: no key"
    else:
        checks["hmac"] = f"checked for {hmac_checked} event(s) with key {key_fingerprint(key)}"
    checks["links"] = "prev_content_sha256 against the predecessor, per zone in chain_seq order"
    checks["sequence"] = "gaps and duplicates of chain_seq and id, per zone"
    checks["anchor"] = (
        f"{heads} zone head(s) from "
        + (getattr(anchor, "anchor_origin", None) or f"a report of {anchor.generated_at}")
        if anchor is not None else "none: a cut-off tail cannot be detected"
    )
    checks.setdefault("microseconds", "not needed")
    order = ("content", "microseconds", "hmac", "links", "sequence", "anchor")
    return {name: checks[name] for name in order if name in checks}


def assemble_report(findings: list[Finding], zones: dict[str, dict[str, Any]],
                    inputs: Iterable[Any], key: bytes | None,
                    checks: dict[str, str]) -> Report:
    """The Report from findings and per-zone stats (events, first_seq, last_seq, last_c)."""
    findings = sorted(findings, key=Finding.sort_key)
    by_zone: dict[str | None, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_zone[finding.zone_id].append(finding)
    summaries = [
        ZoneSummary(zone_id=zone_id, events=z["events"], first_seq=z["first_seq"],
                    last_seq=z["last_seq"], last_content_sha256=z["last_c"],
                    status=status_of(by_zone.get(zone_id, [])))
        for zone_id, z in sorted(zones.items())
    ]
    for zone_id in sorted(set(by_zone) - set(zones) - {None}):
        summaries.append(ZoneSummary(zone_id, 0, None, None, None, status_of(by_zone[zone_id])))
    return Report(
        status=status_of(findings),
        events_checked=sum(z["events"] for z in zones.values()),
        zones=summaries,
        findings=findings,
        inputs=[InputSummary.of(i) for i in inputs],
        key_fingerprint=key_fingerprint(key),
        toolkit_version=__version__,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        checks=checks,
    )


def in_order(pool, transform, batches, in_flight: int = 2):
    """``transform`` over ``batches`` on the pool, results in input order, ``in_flight``
    at a time (so memory stays bounded while both cores work)."""
    pending = []
    for batch in batches:
        pending.append(pool.submit(transform, batch))
        if len(pending) > in_flight:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()
