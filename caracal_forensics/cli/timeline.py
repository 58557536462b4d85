"""``caracal-forensics timeline``: a zone's admin changes and decisions in one order
(library: ``caracal_forensics.admin.timeline``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import ExcludeOption, OnBadLineOption, SourcesOption, open_snapshot, warn


def timeline(
    zone: Annotated[
        str,
        typer.Option("--zone", metavar="ZONE", help="The zone whose changes and decisions "
                     "are shown (its admin chain, and the global chain's changes naming it)."),
    ],
    source: SourcesOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this ISO 8601 time (inclusive; no offset = UTC).",
                     show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Up to this time (exclusive).", show_default=False),
    ] = None,
    every_event: Annotated[
        bool,
        typer.Option("--every-event", help="One line per decision event (no runs "
                     "collapsed)."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: kind 'change' (the "
                           "admin tail record) or 'decisions' (a run, with its count).")
    ] = False,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Admin changes and decision events of one zone in time order, one line each; runs
    of identical decisions for one principal collapse into one line with a count."""
    from ..admin.snapshot import has_admin
    from ..admin.timeline import timeline_stream
    from ..render.jsonl import dumps, write_lines

    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    # written as read: a busy zone's runs stay in DuckDB until their line is written
    result = timeline_stream(snap.duckdb, zone, since=since, until=until,
                             collapse=not every_event)
    if not has_admin(snap.duckdb):
        warn("none of the sources holds admin changes: only decisions are shown "
             "(give a dump of admin_audit_events or the Admin API's admin-audit export)")
    if not result.line_count:
        result.close()
        warn(f"nothing in zone {zone!r} in this window")
        return
    if json_output:
        write_lines(dumps(entry) for entry in result.dicts())
    else:
        write_lines(result.text_lines())
