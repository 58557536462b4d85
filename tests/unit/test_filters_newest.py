"""filters.newest_only: tail's newest N found on their times first, then read whole. The
rows must be exactly those of the plain statement, whatever the ties, NULL or infinite
times, and however few rows match."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal_forensics.filters import Filters, run_query, select_sql

#: A few times, so that many rows share one (ties at the N-th newest), and the ends.
TIMES = [None, "'-infinity'", "'infinity'", "'2026-05-11 08:00:00+00'",
         "'2026-05-11 08:00:00.000001+00'", "'2026-05-12 00:00:00+00'",
         "'0044-03-15 12:00:00+00'", "'9999-12-31 23:59:59.999999+00'"]

rows = st.lists(st.tuples(st.sampled_from(TIMES), st.sampled_from(["a", "b", None]),
                          st.integers(1, 3), st.sampled_from(["x", "y"]),
                          st.sampled_from(["deny", "allow"])), max_size=40)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(rows=rows, limit=st.integers(1, 45), deny=st.booleans())
def test_the_newest_rows_are_those_of_the_plain_statement(rows, limit, deny):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE unique_events (occurred_at TIMESTAMPTZ, zone_id VARCHAR, "
                "chain_seq BIGINT, id VARCHAR, source_file VARCHAR, source_line BIGINT, "
                "decision VARCHAR)")
    for line, (at, zone, seq, ident, decision) in enumerate(rows, 1):
        zone_sql = "NULL" if zone is None else f"'{zone}'"
        con.execute(f"INSERT INTO unique_events VALUES ({at or 'NULL'}, {zone_sql}, {seq}, "
                    f"'{ident}', 'f', {line}, '{decision}')")
    filters = Filters.build(limit=limit, decision="deny" if deny else None)
    plain = run_query(con, *select_sql(filters))
    narrowed = run_query(con, *select_sql(filters, con=con))
    assert narrowed.equals(plain)
    assert narrowed.num_rows == min(limit, len([r for r in rows if not deny or
                                                r[4] == "deny"]))
