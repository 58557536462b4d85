"""Named forensic queries (``queries/*.sql``) and ad-hoc SQL over a snapshot's views.

A named query is one ``.sql`` file whose leading ``--`` comment block declares its name,
a one-line description and its parameters with an example each (format in
``queries/README.md``). Parameters are DuckDB named parameters (``$name``), bound at
execution and never pasted into the SQL text.

Every query runs on a connection that has the snapshot's views ``events`` and ``alerts``;
:func:`ensure_views` adds ``unique_events`` (one row per event, however many shapes of it
were given). Results come back as a :class:`QueryResult`: a polars frame plus the names
of its JSON-typed columns, which :meth:`QueryResult.json_lines` prints verbatim (so jsonb
number literals stay exactly as stored).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import InputError, UsageError
from .settings import QUERIES_ENV, settings
from .timetext import iso_text

if TYPE_CHECKING:
    import duckdb
    import polars as pl

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The bundled queries as a wheel (or an install from the sdist) carries them: setup.py
#: maps the repository's top-level ``queries/`` into the package under this name.
PACKAGED_DIR = _PACKAGE_DIR / "queries_sql"
#: The bundled queries in a source checkout (an editable install, or none): ``queries/``
#: at the repository root, recognised by the ``pyproject.toml`` beside it, so that an
#: unrelated ``queries`` directory next to an installed package is never taken.
CHECKOUT_DIR = _PACKAGE_DIR.parent / "queries"


def _builtin_dir() -> Path:
    """The bundled queries' directory: the installed copy, else the checkout's."""
    if PACKAGED_DIR.is_dir():
        return PACKAGED_DIR
    if CHECKOUT_DIR.is_dir() and (CHECKOUT_DIR.parent / "pyproject.toml").is_file():
        return CHECKOUT_DIR
    return PACKAGED_DIR  # missing: load_queries says so


#: The bundled queries: ``queries/`` at the repository root, or its installed copy.
BUILTIN_DIR = _builtin_dir()
#: Why the bundled queries can be missing, and the way out.
_BROKEN_INSTALL = (
    "the bundled named queries are missing (a broken install?): reinstall caracal-forensics"
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^--\s*(name|description|param)\s*:\s*(.*?)\s*$")
_MARKER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_STRIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)

#: jsonb columns as ``unique_events`` gives them: "" (OCSF's NULL) is NULL.
_JSONB_NULLS = """* REPLACE (
    nullif(determining_policies_json, '') AS determining_policies_json,
    nullif(diagnostics_json, '') AS diagnostics_json,
    nullif(metadata_json, '') AS metadata_json
)"""

#: Which copy of an event ``unique_events`` keeps: microsecond time first, then one with
#: ingested_at, then one carrying every field, then the first by file and line.
_PREFERENCE = (
    "coalesce(-occurred_at_digits, 0), ingested_at IS NULL, absent_fields IS NOT NULL, "
    "coalesce(source_file, ''), coalesce(source_line, -1)"
)

# Does any event appear twice? A hash collision only errs towards "yes", which picks the
# slower plan, still correct.
_PLAN_SQL = """
SELECT count(*) FROM (SELECT 1 FROM events GROUP BY hash(zone_id, id) HAVING count(*) > 1)
"""

#: No event appears twice: the view is the events themselves.
_PLAIN_VIEW = f"SELECT {_JSONB_NULLS} FROM events"

#: Some event appears more than once: keep one copy per (zone_id, id).
_DEDUPE_VIEW = f"""
SELECT {_JSONB_NULLS}
FROM events
QUALIFY row_number() OVER (PARTITION BY zone_id, id ORDER BY {_PREFERENCE}) = 1
"""


#: ``EXAMPLE (default)`` or ``EXAMPLE (default: VALUE)`` at the end of a ``-- param:`` line
_DEFAULT = re.compile(r"^(.*?)\s*\(\s*default\s*(?::\s*(.*?)\s*)?\)$")


@dataclass(frozen=True)
class Param:
    """A declared parameter, the example value the header gives for it, and the value
    used when none is given (None: the parameter is required)."""

    name: str
    example: str
    default: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "example": self.example, "default": self.default}


@dataclass(frozen=True)
class NamedQuery:
    """One ``queries/*.sql`` file: its header and its SQL (header included, it is comments)."""

    name: str
    description: str
    params: tuple[Param, ...]
    sql: str
    path: str
    notes: tuple[str, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def example_params(self) -> dict[str, str]:
        return {p.name: p.example for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        """The ``query --list --json`` element: name, description,
        params [{name, example, default}]."""
        return {
            "name": self.name,
            "description": self.description,
            "params": [p.to_dict() for p in self.params],
        }


# --- loading ------------------------------------------------------------------------


def parse_query(text: str, path: str = "<query>") -> NamedQuery:
    """Parse one query file; a malformed header is an InputError naming file and line."""
    name = description = None
    params: list[Param] = []
    notes: list[str] = []
    body_start = None
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            body_start = number
            break
        match = _HEADER.match(stripped)
        if not match:
            notes.append(stripped[2:].strip())
            continue
        key, value = match.groups()
        where = f"line {number}"
        if key == "name":
            if name is not None:
                raise InputError(path, "a second '-- name:' line", where)
            if not _NAME.match(value):
                raise InputError(
                    path, f"query name {value!r} must be lowercase letters, digits and _", where
                )
            name = value
        elif key == "description":
            if description is not None:
                raise InputError(path, "a second '-- description:' line", where)
            if not value:
                raise InputError(path, "empty description", where)
            description = value
        else:
            pname, eq, example = value.partition("=")
            pname, example = pname.strip(), example.strip()
            default = None
            marked = _DEFAULT.match(example)
            if marked:
                example = marked.group(1)
                default = example if marked.group(2) is None else marked.group(2)
            if not eq or not _PARAM_NAME.match(pname) or not example or default == "":
                raise InputError(
                    path, "'-- param:' must read 'NAME = EXAMPLE', 'NAME = EXAMPLE (default)' "
                    f"or 'NAME = EXAMPLE (default: VALUE)', not {value!r}", where
                )
            if pname in {p.name for p in params}:
                raise InputError(path, f"parameter {pname!r} declared twice", where)
            params.append(Param(pname, example, default))
    if name is None:
        raise InputError(path, "no '-- name:' line in the header")
    if description is None:
        raise InputError(path, "no '-- description:' line in the header")
    if body_start is None:
        raise InputError(path, "no SQL after the header")
    used = sql_parameters(text)
    declared = {p.name for p in params}
    if used != declared:
        problems = []
        if used - declared:
            problems.append("used but not declared: " + ", ".join(sorted(used - declared)))
        if declared - used:
            problems.append("declared but not used: " + ", ".join(sorted(declared - used)))
        raise InputError(path, "parameters " + "; ".join(problems))
    return NamedQuery(name, description, tuple(params), text, path, tuple(notes))


def sql_parameters(sql: str) -> set[str]:
    """The ``$name`` parameters an SQL text uses (outside comments and quoted text)."""
    return set(_MARKER.findall(_STRIP.sub(" ", sql)))


def query_dirs() -> list[Path]:
    """Where named queries are looked for: the bundled ``queries/``, then $QUERIES_ENV's."""
    dirs = [BUILTIN_DIR]
    dirs += [Path(part) for part in settings().queries_dirs]
    return dirs


def load_queries(dirs: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, NamedQuery]:
    """Every named query, by name (sorted). Two files with one name is an InputError."""
    found: dict[str, NamedQuery] = {}
    for directory in query_dirs() if dirs is None else [Path(d) for d in dirs]:
        if not directory.is_dir():
            if directory == BUILTIN_DIR:
                raise InputError(str(directory), _BROKEN_INSTALL)
            raise UsageError(f"${QUERIES_ENV}: {directory} is not a directory")
        paths = sorted(directory.glob("*.sql"))
        if not paths and directory == BUILTIN_DIR:
            raise InputError(str(directory), "no *.sql file: " + _BROKEN_INSTALL)
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(str(path), f"cannot read query: {error}") from None
            query = parse_query(text, str(path))
            if query.name != path.stem:
                raise InputError(
                    str(path), f"the query is named {query.name!r}: name the file {query.name}.sql"
                )
            if query.name in found:
                raise InputError(
                    str(path), f"query {query.name!r} is also defined in {found[query.name].path}"
                )
            found[query.name] = query
    return dict(sorted(found.items()))


def get_query(name: str, queries: Mapping[str, NamedQuery] | None = None) -> NamedQuery:
    """The named query; an unknown name is a UsageError suggesting close names."""
    import difflib

    queries = load_queries() if queries is None else queries
    if name in queries:
        return queries[name]
    close = difflib.get_close_matches(name, list(queries), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UsageError(f"unknown query {name!r}{hint} (see load_queries())", "load_queries()")


def bind_params(query: NamedQuery, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check the given parameters against the declared ones: none unknown, none missing
    (a parameter with a default takes it when not given)."""
    unknown = sorted(set(params) - set(query.param_names))
    params = {p.name: p.default for p in query.params if p.default is not None} | dict(params)
    missing = [p for p in query.params if p.name not in params]
    if unknown:
        expected = ", ".join(query.param_names) or "none"
        raise UsageError(
            f"query {query.name!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {expected})"
        )
    if missing:
        needed = " ".join(f"{p.name}={p.example}" for p in missing)
        raise UsageError(f"query {query.name!r} needs {needed}", "params")
    return {name: params[name] for name in query.param_names}


def parse_param_args(values: Iterable[str]) -> dict[str, str]:
    """``--param k=v`` values as a dict; a malformed or repeated one is a UsageError."""
    params: dict[str, str] = {}
    for value in values:
        key, eq, text = value.partition("=")
        key = key.strip()
        if not eq or not _PARAM_NAME.match(key):
            raise UsageError(f"param must look like NAME=VALUE, not {value!r}", "param")
        if key in params:
            raise UsageError(f"param {key} given twice", "param")
        params[key] = text
    return params


# --- running ------------------------------------------------------------------------


#: Rows of a result written in bulk at a time (:meth:`QueryResult.write_json_lines`).
_SLICE_ROWS = 65_536


@dataclass
class QueryResult:
    """A result as a polars frame; ``json_columns`` hold JSON text to print as nested JSON."""

    frame: pl.DataFrame
    json_columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def __len__(self) -> int:
        return self.frame.height

    def records(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts of plain Python values (JSON columns still as text)."""
        return self.frame.iter_rows(named=True)

    def json_lines(self) -> Iterator[str]:
        """One JSON object per row; times as ``...T08:00:03.212365Z``, JSON columns nested."""
        names = self.columns
        raw = set(self.json_columns)
        for row in self.frame.iter_rows():
            parts = []
            for name, value in zip(names, row, strict=True):
                text = _raw_json(value) if name in raw else json_value(value)
                parts.append(json.dumps(name, ensure_ascii=False) + ": " + text)
            yield "{" + ", ".join(parts) + "}"

    def write_json_lines(self, out: IO[str] | None = None) -> int:
        """Write :meth:`json_lines` (each with a newline) to ``out`` (stdout); returns how
        many. DuckDB builds the lines in bulk over the frame's Arrow columns when every
        column is of a type it writes byte for byte as :func:`json_value` does; a result
        with another type (decimals, structs, years outside 1000-9999 ...) goes row by
        row in Python as before."""
        from .render.jsonl import write_arrow_lines, write_lines

        sql = self._json_line_sql()
        if sql is None:
            return write_lines(self.json_lines(), out)
        import duckdb

        from .render.bulk import FETCH_ROWS

        con = duckdb.connect()  # in memory, reads the frame only
        written = 0
        try:
            con.execute("SET TimeZone = 'UTC'")
            # a slice at a time: polars hands its strings over as a copy
            for part in self.frame.iter_slices(_SLICE_ROWS):
                con.register("result_frame", part.to_arrow())
                reader = con.sql(f"SELECT {sql} AS line FROM result_frame").to_arrow_reader(
                    FETCH_ROWS)
                written += write_arrow_lines(reader, out, flush=False)
                con.unregister("result_frame")
        finally:
            con.close()
        (out or sys.stdout).flush()
        return written

    def _json_line_sql(self) -> str | None:
        """SQL for a row's :meth:`json_lines` line plus newline over the frame's Arrow
        columns (each by position, ``#1``), or None when a column's type is not one done
        here byte for byte."""
        import polars as pl

        from .render.records import json_string_sql

        if not self.columns:
            return None
        raw = set(self.json_columns)
        parts = []
        for name, dtype in self.frame.schema.items():
            column = _quote(name)
            if name in raw and dtype == pl.String:
                value = (f"CASE WHEN {column} IS NULL OR {column} = '' THEN 'null' "
                         f"ELSE {column} END")
            elif dtype == pl.String:
                value = json_string_sql(column)
            elif dtype == pl.Boolean:
                value = (f"CASE WHEN {column} IS NULL THEN 'null' WHEN {column} THEN 'true' "
                         f"ELSE 'false' END")
            elif dtype.is_integer():
                value = f"coalesce(CAST({column} AS VARCHAR), 'null')"
            elif dtype in (pl.Float64, pl.Float32):
                # DuckDB prints a double as Python's repr does (shortest round trip)
                value = (f"CASE WHEN {column} IS NULL OR isnan({column}) OR isinf({column}) "
                         f"THEN 'null' ELSE CAST(CAST({column} AS DOUBLE) AS VARCHAR) END")
            elif isinstance(dtype, pl.Datetime) and dtype.time_unit == "us" and \
                    dtype.time_zone in (None, "UTC") and self._plain_years(name):
                zone = "Z" if dtype.time_zone else ""
                value = (f"coalesce('\"' || strftime({column}, '%Y-%m-%dT%H:%M:%S.%f{zone}') "
                         f"|| '\"', 'null')")
            elif isinstance(dtype, pl.List) and dtype.inner == pl.String:
                items = f"list_transform({column}, lambda item: {json_string_sql('item')})"
                value = (f"CASE WHEN {column} IS NULL THEN 'null' ELSE "
                         f"'[' || array_to_string({items}, ', ') || ']' END")
            else:
                return None
            key = json.dumps(name, ensure_ascii=False) + ": "
            parts.append(f"{_sql_text(key)} || {value}")
        return "'{' || " + " || ', ' || ".join(parts) + " || '}\n'"

    def _plain_years(self, name: str) -> bool:
        """Whether every time of column ``name`` is in the years 1000-9999, which Python's
        and DuckDB's strftime write alike (four digits)."""
        years = self.frame.get_column(name).dt.year()
        low, high = years.min(), years.max()
        return low is None or (1000 <= low and high <= 9999)  # type: ignore[operator]


def ensure_views(
    con: duckdb.DuckDBPyConnection, refresh: bool = False, known_unique: bool = False
) -> str:
    """Create the temporary view ``unique_events`` over ``events`` once per connection.

    ``known_unique`` skips the check when the caller knows no event appears twice.

    One row per event (zone_id, id), keeping the most complete copy when the sources hold
    several (the same export in several shapes, duplicated lines). The plan is chosen
    once from the data: no duplicates costs nothing per query; otherwise the copy to keep
    costs a partitioned pass per query (open one shape, or a snapshot, when speed
    matters). Returns the plan's name: ``plain`` or ``dedupe``.
    """
    exists = con.sql(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'unique_events' AND temporary"
    ).fetchall()
    if exists and not refresh:
        return str(exists[0][0] or "")
    # A canonical snapshot's manifest already counted them: no pass over the data.
    duplicates = 0 if known_unique else count_duplicate_events(con)
    plan, body = ("dedupe", _DEDUPE_VIEW) if duplicates else ("plain", _PLAIN_VIEW)
    con.sql(f"CREATE OR REPLACE TEMP VIEW unique_events AS {body}")
    con.sql(f"COMMENT ON VIEW unique_events IS '{plan}'")
    return plan


def count_duplicate_events(con: duckdb.DuckDBPyConnection) -> int:
    """How many events (zone_id, id) appear more than once in ``events``."""
    return con.sql(_PLAN_SQL).fetchall()[0][0]


def run_named(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, Any] | None = None,
    queries: Mapping[str, NamedQuery] | None = None,
) -> QueryResult:
    """Run the named query with its parameters checked and bound.

    A query from outside the toolkit's own directory is text from elsewhere: it runs only
    on a confined connection (``Snapshot.confine()``, ``Snapshot.confined_duckdb()``),
    where it can read the sources and no other file (a key file beside them, say)."""
    query, bound = _checked_named(con, name, params, queries)
    return run_sql(con, query.sql, bound, label=f"query {query.name}")


def _checked_named(con: duckdb.DuckDBPyConnection, name: str,
                   params: Mapping[str, Any] | None,
                   queries: Mapping[str, NamedQuery] | None) -> tuple[NamedQuery, dict[str, Any]]:
    """The named query and its bound parameters, refused when it is not the toolkit's own
    and ``con`` is not confined."""
    query = get_query(name, queries)
    bound = bind_params(query, params or {})
    if not is_bundled(query) and not is_confined(con):
        raise UsageError(
            f"query {query.name} ({query.path}) is not one of the toolkit's own: it runs "
            "only on a confined connection (Snapshot.query, or Snapshot.confine() first)"
        )
    return query, bound


def is_bundled(query: NamedQuery) -> bool:
    """Whether ``query`` is one of the toolkit's own (its bundled query directory)."""
    try:
        return Path(query.path).resolve().parent == BUILTIN_DIR.resolve()
    except (OSError, RuntimeError):
        return False


def is_confined(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` may read only the files it was confined to (``Snapshot.confine``)."""
    setting = con.execute("SELECT current_setting('enable_external_access')").fetchall()
    return setting[0][0] is False


def run_sql(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    label: str = "SQL error",
) -> QueryResult:
    """Run SQL over ``events``, ``unique_events`` and ``alerts``; errors are one clear line."""
    import duckdb
    import polars as pl

    relation, json_columns = _relation(con, sql, params, label)
    if relation is None:  # a statement without a result (SET, CREATE ...)
        return QueryResult(pl.DataFrame())
    try:
        frame = relation.pl()
    except duckdb.Error as error:
        raise _failed(con, error, label) from None
    return QueryResult(frame, json_columns)


def iter_sql(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    label: str = "SQL error",
    rows: int = _SLICE_ROWS,
) -> Iterator[QueryResult]:
    """:func:`run_sql`'s result in slices of at most ``rows`` rows, in order, as DuckDB
    computes them: what ``--json`` writes without holding the whole result (a
    ``SELECT *`` of 1M events held 1.9 GB). A statement without a result yields none."""
    import duckdb
    import polars as pl

    relation, json_columns = _relation(con, sql, params, label)
    if relation is None:
        return
    try:
        for batch in relation.to_arrow_reader(rows):
            if batch.num_rows:
                yield QueryResult(pl.from_arrow(batch), json_columns)
    except duckdb.Error as error:
        raise _failed(con, error, label) from None


def _failed(con: duckdb.DuckDBPyConnection, error: duckdb.Error, label: str
            ) -> UsageError | InputError:
    """A statement failing as it runs: a UsageError (the SQL), or the snapshot file
    changed in place that DuckDB failed to read (``engine.query_error``)."""
    from .engine import query_error

    found = query_error(error, con, label)
    return found if isinstance(found, InputError) else UsageError(
        f"{label}: {_first_line(error)}")


def iter_named(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, Any] | None = None,
    queries: Mapping[str, NamedQuery] | None = None,
) -> Iterator[QueryResult]:
    """:func:`run_named`'s result in slices, as :func:`iter_sql` gives them."""
    query, bound = _checked_named(con, name, params, queries)
    return iter_sql(con, query.sql, bound, label=f"query {query.name}")


def _relation(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None,
              label: str) -> tuple[duckdb.DuckDBPyRelation | None, tuple[str, ...]]:
    """The relation of ``sql`` (None for a statement without a result) with the columns
    polars cannot take cast to text, and the names of its JSON columns."""
    import duckdb

    ensure_views(con)
    bound = dict(params or {})
    try:
        refused = refused_statement(con, sql)
        if refused:
            raise UsageError(f"{label}: {refused}")
        relation = con.sql(sql, params=bound or None)
        if relation is None:
            return None, ()
        names = list(relation.columns)
        types = [str(t) for t in relation.types]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UsageError(
                f"{label}: the result has several columns named {', '.join(duplicates)}; "
                "give each its own alias"
            )
        json_columns = tuple(n for n, t in zip(names, types, strict=True) if t == "JSON")
        casts = [
            f"CAST({_quote(n)} AS VARCHAR) AS {_quote(n)}" if _needs_text(t) else _quote(n)
            for n, t in zip(names, types, strict=True)
        ]
        if any(_needs_text(t) for t in types):
            relation = relation.project(", ".join(casts))
    except duckdb.Error as error:
        raise UsageError(f"{label}: {_first_line(error)}") from None
    return relation, json_columns


#: Statements that read, or change only this in-memory session. The rest (COPY, EXPORT,
#: ATTACH, INSTALL/LOAD, PRAGMA, CALL, PREPARE ...) can write files, inputs included.
SESSION_STATEMENTS = frozenset({
    "SELECT", "EXPLAIN", "SET", "VARIABLE_SET", "CREATE", "CREATE_FUNC", "DROP", "ALTER",
    "INSERT", "UPDATE", "DELETE", "ANALYZE", "TRANSACTION",
})


def refused_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why ``sql`` may not run over the sources (a statement that can write files), or
    None. Inputs are opened read-only and never changed, whatever SQL a user types:
    ``COPY (SELECT 1) TO 'the-input.csv'`` would overwrite an export. Raises
    duckdb.Error for SQL that does not parse. Text without a statement (empty, only
    comments) is refused too: it has no result to show, and ran as nothing."""
    statements = con.extract_statements(sql)
    if not statements:
        return "there is no statement to run (the text is empty or only comments)"
    for statement in statements:
        kind = statement.type.name
        if kind not in SESSION_STATEMENTS:
            kind = {"LOAD": "INSTALL/LOAD", "COPY_DATABASE": "COPY"}.get(kind, kind)
            return (f"{kind} statements are not run here: they can write files, and the "
                    "inputs are never changed (queries, SET and in-memory tables are fine)")
    return None


def _needs_text(duckdb_type: str) -> bool:
    """Types polars cannot take from Arrow as they are: shown as their DuckDB text."""
    return duckdb_type.startswith(("INTERVAL", "UUID", "BIT", "UNION", "TIME WITH"))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    """A SQL string literal of ``text``."""
    return "'" + text.replace("'", "''") + "'"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# --- values as JSON and as text ----------------------------------------------------------


def format_time(value: datetime) -> str:
    """An aware time as UTC ``2026-05-11T08:00:03.212365Z``; a naive one without the Z."""
    return iso_text(value) + ("" if value.tzinfo is None else "Z")


def json_value(value: Any) -> str:
    """A result value as JSON text; decimals keep their digits, NaN and infinities are null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "null" if math.isnan(value) or math.isinf(value) else repr(value)
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"
    if isinstance(value, datetime):
        return json.dumps(format_time(value))
    if isinstance(value, (date, time)):
        return json.dumps(value.isoformat())
    if isinstance(value, timedelta):
        return repr(value.total_seconds())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return json.dumps(bytes(value).hex())
    if isinstance(value, Mapping):
        items = (
            json.dumps(str(k), ensure_ascii=False) + ": " + json_value(v) for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json_value(v) for v in value) + "]"
    if hasattr(value, "to_list"):  # a polars Series inside a list column
        return json_value(value.to_list())
    return json.dumps(str(value), ensure_ascii=False)


def _raw_json(value: Any) -> str:
    """A JSON column's text as is (it is valid JSON); empty or NULL is null."""
    if value is None or value == "":
        return "null"
    return str(value)


def text_value(value: Any) -> str:
    """A result value for a table cell."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "to_list"):
        value = value.to_list()
    if isinstance(value, (list, tuple)):
        return ", ".join(text_value(v) for v in value)
    if isinstance(value, Mapping):
        return json_value(value)
    return str(value)


__all__ = [
    "NamedQuery",
    "Param",
    "QueryResult",
    "bind_params",
    "ensure_views",
    "get_query",
    "is_bundled",
    "is_confined",
    "load_queries",
    "parse_param_args",
    "parse_query",
    "refused_statement",
    "run_named",
    "run_sql",
    "sql_parameters",
]
