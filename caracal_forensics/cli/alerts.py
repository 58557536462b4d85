"""``caracal-forensics alerts``: the audit_ingest_alerts rows of the sources."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .options import ExcludeOption, OnBadLineOption, SourcesOption, open_snapshot, warn


def alerts(
    source: SourcesOption = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone", "-z", metavar="ZONE", help="Only this zone (repeatable).", show_default=False
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            metavar="KIND",
            help="Only this kind, e.g. content_mismatch_on_replay (repeatable).",
            show_default=False,
        ),
    ] = None,
    on_bad_line: OnBadLineOption = "error",
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of a table.")
    ] = False,
    exclude: ExcludeOption = None,
) -> None:
    """Show the ingest alerts (audit_ingest_alerts) from a snapshot or a CSV/JSON lines dump."""
    from ..alerts import alert_records, has_alert_source, query_alerts

    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    if not has_alert_source(snap):
        warn(
            "none of the sources holds audit_ingest_alerts (a snapshot directory, or a CSV "
            "or JSON lines dump of the table)"
        )
    records = alert_records(query_alerts(snap, zones=zone, kinds=kind))
    if json_output:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return
    _print_table(list(records))


def _print_table(records: list[dict]) -> None:
    """A table when every field fits the terminal whole; else one block of ``name  value``
    lines per alert, so a long kind or detail is never cut or wrapped into slivers."""
    from ..render.table import Column, fits, make_console, render_records, render_table

    console = make_console()
    if not records:
        console.print("no ingest alerts")
        return
    columns = [
        Column("observed_at", "observed_at", shrink=False),
        Column("zone", "zone_id", shrink=False),
        Column("kind", "kind", shrink=False),
        Column("event", "event_id", shrink=False),
        Column("id", "id", shrink=False),
        Column("detail", "detail", shrink=False),
    ]
    if fits(columns, records, console.width):
        render_table(records, columns, console=console)
    else:
        render_records(records, columns, console=console)
        console.print()
    console.print(f"{len(records)} alert(s)")
