"""``tail``, ``stats`` and the named queries with the Spark engine.

Spark reads the events in its executors (``units.py``: the package's readers, so the
rows are the local engine's) and does the part that grows with the data: ``stats``
aggregates there entirely; ``tail`` filters and keeps the newest N there and counts the
matches. What reaches the driver is opened as an ordinary ``Snapshot`` (DuckDB), so the
output is made by the same code as with the local engine. The named queries are DuckDB
SQL: Spark reads the events and the driver's DuckDB runs the query over them, so they
need the matching events to fit the driver (narrow with the query's own parameters, or
``ingest`` a snapshot first for very large sets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..model import EVENT_SCHEMA, Shape
from . import units

#: EVENT_SCHEMA as Spark DDL.
_KINDS = {pa.string(): "string", pa.int64(): "long", pa.int8(): "byte"}
EVENT_DDL = ", ".join(f"{f.name} {'timestamp' if pa.types.is_timestamp(f.type) else _KINDS[f.type]}"
                      for f in EVENT_SCHEMA)


def _read_task(env: dict[str, str]):
    """mapInArrow: each piece's events (runs in the executors)."""
    return lambda batches: _read(env, batches)


def _read(env, batches):
    units.use_env(env)
    for batch in batches:
        for piece in batch.to_pylist():
            yield from units.read(piece).to_batches()


class SparkSources:
    """The sources at ``paths`` as a Spark DataFrame of events (EVENT_SCHEMA)."""

    def __init__(self, paths: Sequence[str], exclude: Sequence[str] = (), spark: Any = None,
                 piece_rows: int | None = None) -> None:
        from ..errors import UsageError
        from . import require, session

        require()
        paths = [os.fspath(p) for p in paths]
        self.spark = spark or session()
        self.inputs = units.scan_any(paths, exclude, self.spark)
        if not self.inputs:
            raise UsageError(f"no export files found in {', '.join(paths)}")
        self.pieces = units.plan(self.inputs, piece_rows or units.PIECE_ROWS)
        units.count_rows(self.inputs, self.pieces)
        from pyspark.sql import functions as F

        frame = self.spark.createDataFrame(
            [p.row() for p in self.pieces],
            units.PIECE_SCHEMA).repartition(max(1, len(self.pieces)), F.col("no"))
        self.events = frame.mapInArrow(_read_task(units.aws_env()), EVENT_DDL)

    # --- what reaches the driver, opened locally ---------------------------------------

    def opened(self, events: pa.Table | None = None) -> Any:
        """A ``Snapshot`` over ``events`` (default: every event) and the snapshots' alerts."""
        from ..engine import connect, create_views
        from ..model import ALERT_SCHEMA
        from ..queries import ensure_views
        from ..snapshot import Snapshot
        from ..sources import BadLines
        from ..sources.snapshot_dir import alerts_file
        from . import spark_errors, to_arrow

        if events is None:
            with spark_errors():
                events = to_arrow(self.events)
        events = _as_events(events)
        alerts = [pa.parquet.read_table(f).select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA)
                  for i in self.inputs if i.shape == Shape.SNAPSHOT
                  for f in [alerts_file(i.path)] if f]
        con = connect()
        for name, table in (("loaded_alerts", pa.concat_tables(alerts) if alerts
                             else ALERT_SCHEMA.empty_table()),):
            con.register("_cf_in", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _cf_in")
            con.unregister("_cf_in")
        create_views(con, [])
        con.register("_cf_in", events)
        con.execute("INSERT INTO loaded_events SELECT * FROM _cf_in")
        con.unregister("_cf_in")
        ensure_views(con)
        return Snapshot(con, self.inputs, BadLines())

    # --- tail -----------------------------------------------------------------------

    def newest(self, filters: Any) -> tuple[Any, int | None]:
        """(a Snapshot of the matching events the newest ``filters.limit`` of which are
        the answer, how many events match) with the filtering and the top N in Spark."""
        from ..filters import ORDER_DESC
        from . import spark_errors, to_arrow

        where, params = filters.where()
        where = re.sub(r"\$(\w+)", r":\1", where)  # DuckDB's $name is Spark's :name
        with spark_errors():
            unique = self._unique()
            matched = self.spark.sql(f"SELECT * FROM {{events}} WHERE {where}", args=params,
                                     events=unique)
            total = None  # counted below only when the caption needs it
            if filters.limit:
                matched = matched.orderBy(*_order(ORDER_DESC)).limit(filters.limit)
            table = to_arrow(matched)
            if filters.limit and table.num_rows == filters.limit:
                total = self.spark.sql(f"SELECT count(*) AS n FROM {{events}} WHERE {where}",
                                       args=params, events=unique).collect()[0]["n"]
        return self.opened(table), total

    # --- stats ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``Snapshot.stats()``, aggregated in Spark (``stats._GROUPED`` and
        ``_DISTINCT_SEQ`` in Spark SQL)."""
        from ..stats import _DISTINCT_SEQ, _GROUPED, assemble
        from . import spark_errors

        # times leave Spark as epoch microseconds: its datetimes are in the driver's zone
        sql = (_GROUPED.replace("GROUPING(zone_id, decision, event_type)",
                                "grouping_id(zone_id, decision, event_type)")
               .replace("FROM unique_events", "FROM {events}"))
        for name in ("min", "max"):
            sql = sql.replace(f"{name}(occurred_at) AS", f"unix_micros({name}(occurred_at)) AS")
        with spark_errors():
            rows = [tuple(_time(v) if i in (5, 6) else v for i, v in enumerate(r))
                    for r in self.spark.sql(sql, events=self._unique()).collect()]
            distinct_seqs = {zone: n for zone, n in self.spark.sql(
                _DISTINCT_SEQ.replace("FROM unique_events", "FROM {events}"),
                events=self._unique()).collect()}
            input_rows = self.events.count()
        from ..alerts import count_alerts

        alerts = count_alerts(self.opened(EVENT_SCHEMA.empty_table()).duckdb)
        return assemble(rows, distinct_seqs, input_rows, alerts)

    def _unique(self) -> Any:
        """One row per event (zone_id, id): the copy ``queries.unique_events`` keeps."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from ..queries import _PREFERENCE

        order = Window.partitionBy("zone_id", "id").orderBy(
            *(F.expr(part).asc_nulls_last() for part in _split(_PREFERENCE)))
        return (self.events.withColumn("_k", F.row_number().over(order))
                .where(F.col("_k") == 1).drop("_k"))


def _order(text: str) -> list[Any]:
    """Spark sort columns from an SQL ORDER BY list of ``column [ASC|DESC] [NULLS ...]``."""
    from pyspark.sql import functions as F

    columns = []
    for part in text.split(","):
        words = part.split()
        expr = F.col(words[0])
        desc = "DESC" in (w.upper() for w in words[1:])
        last = "LAST" in (w.upper() for w in words[1:])
        if desc:
            columns.append(expr.desc_nulls_last() if last else expr.desc_nulls_first())
        else:
            columns.append(expr.asc_nulls_last() if last else expr.asc_nulls_first())
    return columns


def _time(micros: int | None) -> Any:
    """An aware UTC datetime from epoch microseconds."""
    from ..timetext import from_micros

    return None if micros is None else from_micros(micros)


def _split(text: str) -> list[str]:
    """The comma-separated parts of an SQL list, commas inside parentheses kept."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()]


def _as_events(table: pa.Table) -> pa.Table:
    """A collected table in EVENT_SCHEMA exactly (types and time zone)."""
    columns = [table.column(f.name).cast(f.type) for f in EVENT_SCHEMA]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
