"""``caracal-forensics reconcile``: two exports of the same period, compared event by event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .options import (
    ExcludeOption,
    OnBadLineOption,
    SourcesOption,
    discard_stdout,
    print_verdict,
    resolve_sources,
    warn,
    zone_names_csvs,
)

if TYPE_CHECKING:
    from ..reconcile import Reconciliation

_STYLE = {"agree": "green", "differ": "bold red"}  # as verify's intact and tampered


@zone_names_csvs
def reconcile(
    source: SourcesOption = None,
    against: Annotated[
        list[str] | None,
        typer.Option("--against", "-a", metavar="PATH",
                     help="The other side: export file, directory or glob (repeatable).",
                     show_default=False),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option("--zone", metavar="ZONE",
                     help="Only this zone on both sides (repeatable); a single one is also "
                     "the zone of an Admin API CSV not named audit-ZONE.csv.",
                     show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="occurred_at at or after this ISO 8601 time, both sides.",
                     show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="occurred_at before this time (exclusive), both sides.",
                     show_default=False),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the reconciliation as JSON.")
    ] = False,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Compare two sets of sources by event id: counts per zone and hour, missing events
    and differing fields.

    Exit 0 when both sides agree, 1 when an event is missing or a field differs, 2 usage
    or input error.
    """
    from ..errors import UsageError, check_on_bad_line
    from ..reconcile import reconcile as run
    from .progress import progress

    check_on_bad_line(on_bad_line)
    paths = resolve_sources(source)
    if not against:
        raise UsageError("nothing to compare with: pass --against PATH (the other export)")
    with progress("reconciling"):  # on a terminal's stderr only
        result = run(paths, list(against), zone=zone or None, since=since, until=until,
                     on_bad_line=on_bad_line, exclude=exclude or ())
    if result.skipped_lines:
        warn(f"skipped {result.skipped_lines} malformed line(s) (--on-bad-line skip)")
    print_verdict(result, json_output, print_reconciliation)


def print_reconciliation(result: Reconciliation, console=None) -> None:
    """A verdict line, the counts per zone and hour, then each finding as verify prints
    one (``KIND  zone seq event at file:line``, the detail under it)."""
    from ..render.table import Column, make_console, printable, render_table
    from .verify import print_finding

    if console is None:
        console = make_console()
        console.on_broken_pipe = discard_stdout  # 1 means "they differ", not a closed pipe
    console.print(f"{result.status.upper()}: {result.source_events} event(s) in source, "
                  f"{result.against_events} against, {result.matched} on both; "
                  f"{printable(result.verdict)}", style=_STYLE.get(result.status),
                  soft_wrap=True)
    if result.hours:
        render_table(
            [h.to_dict() for h in result.hours],
            [
                Column("zone", "zone_id", priority=9, max_width=40),
                Column("hour (occurred_at)", lambda h: h["hour"] or "(none)", priority=8,
                       shrink=False),
                Column("source", "source", priority=9, justify="right", shrink=False),
                Column("against", "against", priority=9, justify="right", shrink=False),
                Column("missing", "missing_in_source", priority=7, justify="right",
                       shrink=False),
                Column("differ", "field_mismatch", priority=7, justify="right",
                       shrink=False),
            ],
            console=console,
        )
    for f in result.findings:
        print_finding(console, f)
    for name, text in result.checks.items():
        console.print(f"{name}: {printable(text)}", style="dim", soft_wrap=True)

