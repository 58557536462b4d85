"""``caracal-forensics stats``: what the sources hold, at a glance."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .options import (
    EngineOption,
    ExcludeOption,
    OnBadLineOption,
    SourcesOption,
    check_engine,
    open_snapshot,
    spark_sources,
)


def stats(
    source: SourcesOption = None,
    on_bad_line: OnBadLineOption = "error",
    json_output: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
    exclude: ExcludeOption = None,
    engine: EngineOption = "local",
) -> None:
    """Counts by decision, zone and event type, the time span, and each zone's chain_seq range."""
    if check_engine(engine):
        numbers = spark_sources(source, exclude).stats()
    else:
        numbers = open_snapshot(source, on_bad_line, exclude=exclude).stats()
    if json_output:
        print(json.dumps(numbers, indent=2, ensure_ascii=False))
        return
    print_stats(numbers)


def print_stats(numbers: dict[str, Any]) -> None:
    """The numbers as four small tables (summary, zones, decisions, event types)."""
    from ..render.table import Column, make_console, render_table

    console = make_console()
    summary = [
        ("events (distinct zone_id, id)", numbers["events"]),
        ("input rows", numbers["rows"]),
        ("further copies of an event", numbers["duplicate_rows"]),
        ("ingest alerts", numbers["alerts"]),
        ("first occurred_at", numbers["first_occurred_at"]),
        ("last occurred_at", numbers["last_occurred_at"]),
    ]
    render_table(
        summary,
        [
            Column("", lambda item: item[0], priority=2, min_width=8),
            Column("", lambda item: item[1], priority=1, justify="right", shrink=False),
        ],
        console=console,
        show_header=False,
    )
    console.print()

    def seq(zone: dict[str, Any]) -> str:
        if zone["first_seq"] is None:
            return "-"
        return f"{zone['first_seq']}..{zone['last_seq']}"

    render_table(
        numbers["zones"],
        [
            # ids, numbers and times are never cut short: when the terminal is too
            # narrow, the lowest priority ones are left out (named under the table)
            Column("zone", "zone_id", priority=9, shrink=False),
            Column("events", "events", priority=8, justify="right", shrink=False),
            Column("chain_seq", seq, priority=7, justify="right", shrink=False),
            Column("missing", "missing_seq", priority=6, justify="right", shrink=False),
            Column("allow", "allows", priority=5, justify="right", shrink=False),
            Column("deny", "denies", priority=5, justify="right", shrink=False),
            # current releases' third decision: a column only when some zone has one
            *([Column("partial", "partials", priority=5, justify="right", shrink=False)]
              if any(zone.get("partials") for zone in numbers["zones"]) else []),
            Column("first occurred_at", "first_occurred_at", priority=3, shrink=False),
            Column("last occurred_at", "last_occurred_at", priority=3, shrink=False),
        ],
        console=console,
    )
    total = numbers["events"] or 1
    for header, counts in (
        ("decision", numbers["by_decision"]),
        ("event type", numbers["by_event_type"]),
    ):
        console.print()
        render_table(
            list(counts.items()),
            [
                Column(header, lambda item: item[0], priority=3, min_width=12),
                Column("events", lambda item: item[1], priority=2, justify="right",
                       shrink=False),
                Column("share", lambda item: f"{item[1] / total:.1%}", priority=1,
                       justify="right", shrink=False),
            ],
            console=console,
        )
