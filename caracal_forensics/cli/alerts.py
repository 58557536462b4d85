"""``caracal-forensics alerts``: the audit_ingest_alerts rows of the sources."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import ExcludeOption, OnBadLineOption, SourcesOption, app, open_snapshot, warn


@app.command()
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
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not records:
        console.print("no ingest alerts", markup=False)
        return
    table = Table(show_lines=False)
    for title in ("observed_at", "zone", "kind", "event", "id", "detail"):
        table.add_column(title, overflow="fold", no_wrap=title in ("observed_at", "id"))
    for r in records:
        values = (r["observed_at"], r["zone_id"], r["kind"], r["event_id"], r["id"], r["detail"])
        # Text, not str: a value is data, never rich markup; control characters are shown
        # escaped so a crafted detail cannot drive the terminal.
        table.add_row(*(Text(_printable(value)) for value in values))
    console.print(table)
    console.print(f"{len(records)} alert(s)", markup=False)


def _printable(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
