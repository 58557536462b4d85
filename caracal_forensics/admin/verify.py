"""Verify the admin chain (FORMAT.md 8) with the event chain's own stages and findings
(``chain.stages.Run`` over ``admin.chain.ADMIN_CHAIN``): content hashes (with the key
order search), HMAC, links, sequence gaps, duplicates, anchors, the same report.

The rows are held in DuckDB as the view ``admin_events``: zone_id NULL (the global chain)
becomes ``model.GLOBAL_CHAIN``, the name findings, reports and ``zones`` use for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from ..chain.report import Report
from .model import GLOBAL_CHAIN

#: The report section name of the admin chain (``Report.chain``).
CHAIN_NAME = "admin"


def admin_view(con: Any, table: pa.Table, name: str = "admin_events") -> None:
    """Make ``table`` (ADMIN_SCHEMA) the view the admin chain is verified over."""
    arrow = f"_cf_{name}_arrow"
    con.register(arrow, table)
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {name} AS
            SELECT * REPLACE (coalesce(zone_id, '{GLOBAL_CHAIN}') AS zone_id),
                   CAST(6 AS TINYINT) AS occurred_at_digits
              FROM {arrow}""")


def verify_admin_table(table: pa.Table, *, key: bytes | None,
                       zones: Sequence[str] | None = None, anchor: Report | None = None,
                       inputs: Iterable[Any] = (), max_findings: int | None = None) -> Report:
    """Verify admin rows (``admin.read_admin``'s table); ``anchor``: an earlier report whose
    admin section (or which, itself an admin report) holds the trusted heads."""
    from ..chain.findings import build_report
    from ..chain.report import MAX_FINDINGS_PER_KIND
    from ..chain.stages import Run
    from ..engine import connect
    from .chain import ADMIN_CHAIN
    from .copies import hold_copies

    zone_list = list(zones) if zones is not None else None
    table, copies = hold_copies(table, zone_list)
    con = connect()
    try:
        admin_view(con, table)
        run = Run(con, key, zones, admin_anchor(anchor), max_findings or MAX_FINDINGS_PER_KIND,
                  spec=ADMIN_CHAIN)
        with run:
            run.load()
            run.link()
            report = build_report(run, inputs)
    finally:
        con.close()
    report.chain = CHAIN_NAME
    report.checks.pop("microseconds", None)  # the stored time holds what was hashed
    _in_admin_words(report)
    if copies:
        _add_findings(report, copies)
    return report


def _in_admin_words(report: Report) -> None:
    """The shared wording counts "event(s)"; here they are admin changes."""
    from dataclasses import replace

    def words(text: str) -> str:
        return text.replace("event(s)", "admin change(s)")

    report.findings = [replace(f, detail=words(f.detail)) for f in report.findings]
    report.checks = {name: words(text) for name, text in report.checks.items()}


def _add_findings(report: Report, extra: list) -> None:
    """Findings made outside the run, merged as ``assemble_report`` would have."""
    from dataclasses import replace

    from ..chain.report import Finding, status_of

    report.findings = sorted(report.findings + extra, key=Finding.sort_key)
    report.zones = [replace(z, status=status_of([f for f in report.findings
                                                 if f.zone_id == z.zone_id]))
                    for z in report.zones]
    report.status = status_of(report.findings)


def admin_anchor(anchor: Report | None) -> Report | None:
    """The admin heads of an anchor: its admin section, or the anchor itself when it is an
    admin report; None when it has none (the admin chain is then unanchored)."""
    if anchor is None:
        return None
    if anchor.chain == CHAIN_NAME:
        return anchor
    return anchor.admin
