"""``caracal-forensics audit tail``: the seed's ``caracal audit tail`` over exports."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import (
    EngineOption,
    ExcludeOption,
    OnBadLineOption,
    SourcesOption,
    check_engine,
    open_snapshot,
    resolve_sources,
    spark_sources,
    warn,
    zone_names_csvs,
)


@zone_names_csvs
def tail(
    source: SourcesOption = None,
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="allow, deny or partial (case-insensitive).",
                     show_default=False),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--event-type",
            help="Only this event type (repeatable: any of them).",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            "--zone", help="Only this zone (repeatable: any of them).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="occurred_at at or after this ISO 8601 time (2026-05-11T08:00:00Z, an "
            "offset, or a date; no offset = UTC).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="occurred_at before this time (exclusive).", show_default=False
        ),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option("--request-id", help="Only events of this request.", show_default=False),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", help="The newest N matching events, oldest first; 0 = all."),
    ] = 100,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per event (the seed's --json record)."),
    ] = False,
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help="JMESPath applied to each event's record: true prints the event, a falsy "
            "result skips it, any other value is printed as JSON.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep watching the sources for new events."),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between looks when following.")
    ] = 1.0,
    follow_max_seconds: Annotated[
        float | None,
        typer.Option(
            "--follow-max-seconds",
            help="Stop following after this many seconds (for scripts and tests).",
            show_default=False,
        ),
    ] = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
    engine: EngineOption = "local",
) -> None:
    """Print the newest matching audit events (a table, --json lines or --query results)."""
    from ..filters import Filters, count, select
    from ..render.records import EVENT_COLUMNS, OCCURRED_AT_SQL, OCCURRED_AT_TEXT
    from ..render.table import event_table, make_console

    filters = Filters.build(
        decision=decision,
        event_type=event_type,
        zone=zone,
        since=since,
        until=until,
        request_id=request_id,
        limit=limit,
    )
    compiled = None
    if query is not None:
        from ..render.query import Query

        compiled = Query(query)
    if follow_max_seconds is not None and not 0 <= follow_max_seconds < float("inf"):
        from ..errors import UsageError  # NaN fails this too (it compares false)

        raise UsageError(f"--follow-max-seconds must be a number of seconds >= 0, "
                         f"not {follow_max_seconds}")

    on_spark = check_engine(engine)
    if on_spark and follow:
        from ..errors import UsageError

        raise UsageError("--follow watches files on this machine: not with --engine spark")
    console = None if (json_output or compiled) else make_console()
    layout: list = []

    def emit(table, caption: str | None = None) -> None:
        # the table; --json and --query lines, with --follow too, go by write_tail_lines
        layout[:] = [
            event_table(
                table,
                console=console,
                caption=caption,
                show_header=not layout,
                layout=layout[0] if layout else None,
            )
        ]

    if follow:
        from ..follow import Follower

        with Follower(
            resolve_sources(source),
            filters,
            on_bad_line=on_bad_line,
            interval=interval,
            warn=warn,
            exclude=exclude or (),
        ) as follower:
            def write(con, relation: str, polled) -> int:  # --json / --query: in bulk
                from ..render.bulk import write_tail_lines

                return write_tail_lines(con, polled, compiled, relation=relation)

            try:
                follower.run(emit, max_seconds=follow_max_seconds,
                             write=write if (json_output or compiled) else None)
            finally:
                if follower.bad.count:
                    warn(f"skipped {follower.bad.count} malformed line(s) (--on-bad-line skip)")
        return

    total = None
    if on_spark:  # Spark filters and keeps the newest N; the rest as locally
        snap, total = spark_sources(source, exclude).newest(filters)
    else:
        snap = open_snapshot(source, on_bad_line, exclude=exclude)
    extra = (f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",)
    if json_output or compiled:  # in bulk, DuckDB writing the lines when it can
        from ..render.bulk import write_tail_lines

        if not write_tail_lines(snap.duckdb, filters, compiled):
            _warn_nothing_matched(snap.duckdb, filters, quiet=True)
        return
    table = select(snap.duckdb, filters, columns=EVENT_COLUMNS, extra=extra)
    if table.num_rows == 0:
        _warn_nothing_matched(snap.duckdb, filters)
        return
    caption = None
    if filters.limit and table.num_rows == filters.limit:
        total = count(snap.duckdb, filters) if total is None else total
        if total > table.num_rows:
            caption = f"newest {table.num_rows} of {total} matches (--limit 0 for all)"
    emit(table, caption)


def _warn_nothing_matched(con, filters, quiet: bool = False) -> None:
    """Say that nothing matched (unless ``quiet``: JSON output stays silent then) and, when
    a --zone, --event-type or --decision value exists in no event, name the values that do
    (a typo is the usual cause)."""
    from ..filters import empty_result_hint

    hint = empty_result_hint(con, filters)
    if hint:
        warn(hint)
    elif not quiet:
        warn("no matching events")
