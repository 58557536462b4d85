"""``query NAME --json`` and ``sql --json`` written in bulk by DuckDB over the result's
Arrow columns: the same bytes as the row-by-row lines (``QueryResult.json_lines``)."""

from __future__ import annotations

import io

import pytest
from support.cli import run_cli
from support.paths import FIXTURE_EXPORT

import caracal_forensics as cf
from caracal_forensics import queries
from caracal_forensics.errors import UsageError

SOURCE = FIXTURE_EXPORT / "db.csv"


@pytest.fixture(scope="module")
def snapshot():
    snap = cf.open(str(SOURCE))
    snap.confine()
    return snap


def _row_by_row(result: queries.QueryResult) -> str:
    return "".join(line + "\n" for line in result.json_lines())


@pytest.mark.parametrize("name", sorted(queries.load_queries()))
def test_every_named_query_prints_the_same_lines_in_bulk(snapshot, name: str) -> None:
    """Each bundled query over the fixture export: the CLI's lines are the row-by-row
    ones, and every result's columns are of types written in bulk (no Python per row)."""
    query = queries.get_query(name)
    result = queries.run_named(snapshot.duckdb, name, query.example_params)
    buffer = io.StringIO()
    assert result.write_json_lines(buffer) == len(result)
    assert buffer.getvalue() == _row_by_row(result)
    assert result._json_line_sql() is not None
    args = [arg for key, value in query.example_params.items()
            for arg in ("--param", f"{key}={value}")]
    cli = run_cli("query", name, "--json", "-s", SOURCE, *args)
    assert (cli.code, cli.err, cli.out) == (0, "", buffer.getvalue())


@pytest.mark.parametrize("sql", [
    "SELECT * FROM unique_events ORDER BY occurred_at, id LIMIT 40",
    "SELECT 0.1 + 0.2 AS f, 'NaN'::DOUBLE AS n, 1e22::DOUBLE AS big, 5e-324::DOUBLE AS tiny, "
    "-0.0::DOUBLE AS z, 'x''\"\\' || chr(1) || chr(27) || 'é\t' AS s, [NULL, 'a\nb'] AS l, "
    "NULL::VARCHAR[] AS nl, true AS b, NULL::BOOLEAN AS nb, 255::UTINYINT AS u, "
    "CAST('2026-05-11 08:00:00.5' AS TIMESTAMP) AS naive, "
    "CAST('2026-05-11 08:00:00+02' AS TIMESTAMPTZ) AS aware, '' AS \"ké\"\"y\"",
    "SELECT CAST('0999-01-01 00:00:00' AS TIMESTAMP) AS old, 1.50::DECIMAL(4, 2) AS d",
])
def test_sql_json_in_bulk_is_the_row_by_row_text(snapshot, sql: str) -> None:
    """Values whose text differs most between Python and DuckDB (escapes, doubles, times,
    lists, NULLs; years before 1000 and decimals, which stay row by row)."""
    result = queries.run_sql(snapshot.duckdb, sql)
    cli = run_cli("sql", sql, "--json", "-s", SOURCE)
    assert (cli.code, cli.err) == (0, "")
    assert cli.out == _row_by_row(result)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM unique_events ORDER BY occurred_at, id LIMIT 40",
    # one slice of years within 1000-9999 (written in bulk), one outside (row by row)
    "SELECT * FROM (VALUES (1, CAST('2026-05-11 08:00:00' AS TIMESTAMP)), "
    "(2, CAST('2026-05-11 09:00:00' AS TIMESTAMP)), (3, CAST('0999-01-01' AS TIMESTAMP)), "
    "(4, NULL)) AS t(n, seen) ORDER BY n",
])
def test_a_result_in_slices_prints_what_the_whole_result_prints(snapshot, sql: str) -> None:
    """``--json`` streams the result (``iter_sql``) instead of holding it: slice by slice,
    in order, the same bytes as the whole result row by row."""
    whole = queries.run_sql(snapshot.duckdb, sql)
    buffer = io.StringIO()
    slices = list(queries.iter_sql(snapshot.duckdb, sql, rows=2))
    assert len(slices) == -(-len(whole) // 2)
    for part in slices:
        part.write_json_lines(buffer)
    assert buffer.getvalue() == _row_by_row(whole)


def test_an_error_while_the_result_streams_is_one_line() -> None:
    """DuckDB may fail only while rows are produced (a cast of a value it meets late): one
    line naming the statement's failure, exit 2, nothing of a traceback."""
    sql = "SELECT CAST(id AS INTEGER) AS n FROM unique_events"
    cli = run_cli("sql", sql, "--json", "-s", SOURCE)
    assert cli.code == 2
    assert len(cli.err.strip().splitlines()) == 1 and "SQL error" in cli.err, cli.err
    with pytest.raises(UsageError, match="^SQL error: "):
        list(queries.iter_sql(cf.open(str(SOURCE)).duckdb, sql))
