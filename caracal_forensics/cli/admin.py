"""``caracal-forensics admin tail``: the admin changes (``admin_audit_events``) of the sources,
listed like ``audit tail`` lists events (library: ``caracal_forensics.admin.changes``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import ExcludeOption, OnBadLineOption, SourcesOption, open_snapshot, warn


def _many(flag: str, text: str):
    return Annotated[list[str] | None, typer.Option(flag, help=text, show_default=False)]


def tail(
    source: SourcesOption = None,
    zone: _many("--zone", "Only this zone's chain; '(global)' for the changes without a "
                "zone (repeatable: any of them).") = None,
    actor: _many("--actor", "Only changes by this actor (actor_id or actor_name; "
                 "repeatable).") = None,
    entity_type: _many("--entity-type", "Only this entity type, e.g. policy-sets, "
                       "applications, resources (repeatable).") = None,
    entity_id: _many("--entity-id", "Only this entity id (repeatable).") = None,
    method: _many("--method", "Only this HTTP method (repeatable, case-insensitive).") = None,
    status: _many("--status", "Only this status code (403), class (4xx) or 'failed' "
                  "(4xx and 5xx) (repeatable).") = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="occurred_at at or after this ISO 8601 time (no "
                     "offset = UTC).", show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="occurred_at before this time (exclusive).",
                     show_default=False),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", help="The newest N matching changes, oldest first; "
                     "0 = all."),
    ] = 100,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per change.")
    ] = False,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="JMESPath applied to each change's record: true "
                     "prints the change, a falsy result skips it, any other value is "
                     "printed as JSON.", show_default=False),
    ] = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Print the newest matching admin changes (a table, --json lines or --query results)."""
    from ..admin.changes import (
        AdminFilters,
        change_records,
        count_changes,
        json_lines,
        query_lines,
        select_changes,
        table_columns,
    )
    from ..render.jsonl import write_lines

    filters = AdminFilters.build(zone=zone, actor=actor, entity_type=entity_type,
                                 entity_id=entity_id, method=method, status=status,
                                 since=since, until=until, limit=limit)
    compiled = None
    if query is not None:
        from ..render.query import Query

        compiled = Query(query)
    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    changes = select_changes(snap.duckdb, filters)
    if not changes.num_rows:
        _warn_nothing(snap.duckdb, filters, quiet=bool(json_output or compiled))
        return
    if compiled is not None:
        write_lines(query_lines(compiled, changes))
        return
    records = change_records(changes)
    if json_output:
        write_lines(json_lines(records))
        return
    from ..render.table import make_console, render_table

    caption = None
    if filters.limit and len(records) == filters.limit:
        total = count_changes(snap.duckdb, filters)
        if total > len(records):
            caption = f"newest {len(records)} of {total} changes (--limit 0 for all)"
    render_table(records, table_columns(), console=make_console(), caption=caption)


def _warn_nothing(con, filters, quiet: bool) -> None:
    """Say why nothing is listed: no source holds admin changes, or a value exists in
    none (named with the values that do), or (not with --json) only that none matched."""
    from ..admin.changes import empty_result_hint
    from ..admin.snapshot import has_admin

    if not has_admin(con):
        warn("none of the sources holds admin changes (a dump of admin_audit_events, the "
             "Admin API's admin-audit export, or a snapshot that kept them)")
        return
    hint = empty_result_hint(con, filters)
    if hint:
        warn(hint)
    elif not quiet:
        warn("no matching admin changes")
