"""``caracal-forensics query`` (named queries from queries/*.sql) and ``sql`` (ad-hoc SQL)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from ..queries import QueryResult

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="A query parameter as NAME=VALUE (repeatable); bound, never pasted into SQL.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON object per row (JSON columns nested).")
]


def query(
    name: Annotated[
        str | None, typer.Argument(help="The query to run (see --list).", show_default=False)
    ] = None,
    param: ParamOption = None,
    list_queries: Annotated[
        bool, typer.Option("--list", help="List the named queries and their parameters.")
    ] = False,
    json_output: JsonOption = False,
    source: SourcesOption = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
    engine: EngineOption = "local",
) -> None:
    """Run a named forensic query from queries/*.sql over the sources."""
    from ..errors import UsageError
    from ..queries import (
        bind_params,
        get_query,
        iter_named,
        load_queries,
        parse_param_args,
        run_named,
    )

    queries = load_queries()
    if list_queries:
        if name or param:
            raise UsageError("--list takes no query name and no --param")
        if json_output:
            print(json.dumps([q.to_dict() for q in queries.values()], indent=2, ensure_ascii=False))
        else:
            _print_list(queries)
        return
    if not name:
        raise UsageError("give a query name (see `caracal-forensics query --list`)")
    chosen = get_query(name, queries)
    given = parse_param_args(param or [])
    try:
        params = bind_params(chosen, given)  # before opening any input
    except UsageError as error:
        if error.parameter != "params":
            raise
        # the library names the missing values as keyword arguments; here they are flags
        missing = [p for p in chosen.params if p.name not in given and p.default is None]
        needed = " ".join(f"--param {p.name}={p.example}" for p in missing)
        raise UsageError(f"query {chosen.name!r} needs {needed}") from None
    if check_engine(engine):  # Spark reads the events, DuckDB runs the query (README)
        snap = spark_sources(source, exclude).opened()
    else:
        snap = open_snapshot(source, on_bad_line, exclude=exclude)
    snap.confine()  # query files are text from elsewhere: they read the sources only
    if json_output:  # streamed: the whole result is never held
        _write_json(iter_named(snap.duckdb, chosen.name, params, queries))
        return
    result = run_named(snap.duckdb, chosen.name, params, queries)
    print_result(result, title=f"{chosen.name}: {chosen.description}")


def sql(
    statement: Annotated[
        str,
        typer.Argument(
            help="SQL over the views events, unique_events and alerts.", show_default=False
        ),
    ],
    param: ParamOption = None,
    json_output: JsonOption = False,
    source: SourcesOption = None,
    on_bad_line: OnBadLineOption = "error",
    exclude: ExcludeOption = None,
) -> None:
    """Run ad-hoc SQL (DuckDB dialect) over the sources."""
    from ..queries import iter_sql, parse_param_args, run_sql

    params = parse_param_args(param or [])
    snap = open_snapshot(source, on_bad_line, exclude=exclude)
    snap.confine()  # the SQL reads the sources and nothing else (not a key file beside them)
    if json_output:
        _write_json(iter_sql(snap.duckdb, statement, params))
        return
    print_result(run_sql(snap.duckdb, statement, params))


def _write_json(results: Iterable[QueryResult]) -> None:
    """Each slice of a result as JSON lines, as it comes."""
    for result in results:
        result.write_json_lines(sys.stdout)


def print_result(result: QueryResult, title: str | None = None) -> None:
    """A result as a table fitting the terminal; data is shown as text, never interpreted.

    Columns that do not fit are left out (named in the caption); ``--json`` has them all.
    """
    from ..queries import text_value
    from ..render.table import Column, make_console, render_table

    if not result.columns:
        return
    console = make_console()
    numeric = [dtype.is_numeric() for dtype in result.frame.dtypes]
    columns = [
        Column(
            header=name,
            key=lambda row, i=i: text_value(row[i]),
            priority=-i,
            max_width=60,
            justify="right" if numeric[i] else "left",
            # whole columns or none (a number cut short reads as another number); what
            # does not fit is named in the caption
            shrink=False,
            widest=functools.partial(widest_cell, result.frame, i),
        )
        for i, name in enumerate(result.columns)
    ]
    rows = _FrameRows(result.frame)
    caption = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    render_table(rows, columns, console=console, title=title, caption=caption)


def widest_cell(frame, index: int) -> int:
    """The width of the widest cell column ``index`` of ``frame`` has in the table
    (``text_value``, then ``printable``), from the column at once where its type says
    (printable ASCII text, integers, times of the years 1-9999), else value by value: not
    from the rows, which a long table makes once more to write them."""
    import polars as pl
    from rich.cells import cell_len

    from ..queries import text_value
    from ..render.table import printable

    series = frame.to_series(index)
    if series.null_count() == len(series):
        return 0
    dtype = series.dtype
    if dtype == pl.String and not series.str.contains(r"[^\x20-\x7e]").any():
        return int(series.str.len_bytes().max())  # type: ignore[arg-type]
    if dtype.is_integer():
        return int(series.cast(pl.String).str.len_bytes().max())  # type: ignore[arg-type]
    if isinstance(dtype, pl.Datetime):
        years = series.dt.year()
        if 1 <= years.min() and years.max() <= 9999:  # type: ignore[operator]
            # format_time: YYYY-MM-DDTHH:MM:SS.ffffff, and Z when it has a zone
            return 26 + (dtype.time_zone is not None)
    return max(cell_len(printable(text_value(value))) for value in series.to_list())


class _FrameRows:
    """A frame's rows as tuples, made as they are read (``render_table`` reads a long
    table twice): not a list of them all beside the frame."""

    def __init__(self, frame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.height

    def __iter__(self):
        return self.frame.iter_rows()


def _print_list(queries) -> None:
    """A table on a wide terminal; on a narrow one (where the description would fold into
    a sliver) one ``name  value`` block per query."""
    from rich.table import Table
    from rich.text import Text

    from ..render.table import Column, make_console, render_records

    console = make_console()
    title = "Named queries (queries/*.sql)"
    rows = [
        (q.name, [f"{p.name}={p.example}{_default_note(p)}" for p in q.params], q.description)
        for q in queries.values()
    ]
    name_width = max((len(name) for name, _, _ in rows), default=4)
    params_width = max((len(p) for _, params, _ in rows for p in params), default=0)
    if console.width - name_width - params_width - 10 < 40:
        render_records(rows, [
            Column("name", lambda row: row[0]),
            Column("parameters", lambda row: ", ".join(row[1]) or "none"),
            Column("description", lambda row: row[2]),
        ], console=console, title=title)
        return
    table = Table(title=title, title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("parameters (example)", no_wrap=True)
    table.add_column("description", overflow="fold")
    for name, params, description in rows:
        table.add_row(Text(name), Text("\n".join(params)), Text(description))
    console.print(table)


def _default_note(param) -> str:
    """How ``--list`` says whether a parameter may be left out, and what it then is."""
    if param.default is None:
        return " (required)"
    if param.default == param.example:
        return " (default)"
    return f" (default: {param.default})"
