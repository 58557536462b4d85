"""Engine helpers both verify passes share: streaming a DuckDB query as Arrow batches,
the work database's memory ceiling, and Arrow masks.

Imports neither DuckDB nor the passes at module level, so that ``clean.py`` (which may
run without DuckDB over a snapshot's Parquet files) and ``stages.py`` both depend on it
and it depends on neither.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: DuckDB's memory ceiling while verifying: with Python and Arrow on top, 10,000,000
#: events stay under 1 GiB peak; beyond it DuckDB sorts and tables spill to disk.
MEMORY_LIMIT = "500MB"


def arrow_reader(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None,
                 batch_rows: int, ordered: bool = False) -> pa.RecordBatchReader:
    """Stream ``query`` as Arrow batches; ``ordered`` keeps DuckDB's insertion order (the
    scan order of the files) for this query only."""
    restore = None
    if ordered:
        shown = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
        if not shown:
            restore = "false"
            con.execute("SET preserve_insertion_order = true")
    try:
        return con.sql(query, params=params).to_arrow_reader(batch_rows)
    finally:
        # the reader's plan is fixed; later statements get the caller's setting back
        if restore:  # a global setting; this connection is busy streaming
            other = con.cursor()
            try:
                other.execute(f"SET preserve_insertion_order = {restore}")
            finally:
                other.close()


def all_true(mask: pa.Array) -> bool:
    """Whether a boolean array holds true in every row (no NULL, no false)."""
    import pyarrow.compute as pc

    return mask.null_count == 0 and (len(mask) == 0 or pc.all(mask).as_py() is True)


class MemoryCeiling:
    """Lower the connection's memory_limit to ``MEMORY_LIMIT`` for the run (never raise
    it), and put the caller's back afterwards."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._saved: str | None = None

    def __enter__(self) -> MemoryCeiling:
        shown = self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        current = parse_size(shown)
        if current is None or current > parse_size(MEMORY_LIMIT):
            self._saved = restorable(shown)
            self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved:
            self.con.execute(f"SET memory_limit = '{self._saved}'")


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> float | None:
    """Bytes of a DuckDB size setting such as ``1.8 GiB`` or ``600MB``; None if unlimited."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def restorable(shown: str) -> str:
    """The shown limit, nudged up by half its last digit: DuckDB prints it rounded down,
    so setting the printed text back would shrink the limit a little on every run."""
    match = re.fullmatch(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]+)\s*", shown)
    if not match:
        return shown
    decimals = len(match.group(2) or "")
    value = float(f"{match.group(1)}.{match.group(2) or 0}") + 0.5 * 10**-decimals
    return f"{value:.{decimals + 1}f} {match.group(3)}"
