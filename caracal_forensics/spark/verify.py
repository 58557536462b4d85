"""Verification on Spark: the local engine's stages per piece in executors, the chain
across pieces by joins, and the shared findings over the few rows they name.

1. ``rows`` (executors, ``mapInArrow``): each piece (``units.py``) is read by the
   package's reader and put through the local engine's stages 1-3 (``stages.Run.load``
   and ``recover``: content hash and self-contained HMAC in the C kernel, microsecond
   recovery of OCSF rows) on a small DuckDB in the executor. Same SQL, same results.
2. The chain (Spark): each row's predecessor is the row at ``chain_seq - 1``, found by an
   equi-join on (zone_id, chain_seq), so a zone's rows stay spread over many tasks.
   Only the boundary rows (a zone's first row, and rows on either side of a gap) go
   through a window per zone, to name the seq before a gap. A seq held twice is ranked
   on the driver by the shared SQL (``stages._ranked_sql`` and ``Run._vouch``) over those
   rows and their successors. HMACs chained to the predecessor run in the C kernel.
3. The report (driver): the rows that a finding may name (flagged, a zone's first and
   last, the anchor's heads, copies, replayed ids) are collected into the local work
   tables and ``findings.build_report`` runs its checks over them, with the whole-table
   aggregates (zone statistics, what could not be checked, states) computed by Spark.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..chain.stages import ABSENT, COMPUTED, MISMATCH, NO_HASH, PENDING, SKIPPED
from . import units

if TYPE_CHECKING:
    from ..chain.report import Report
    from ..chain.verifier import Verifier

#: The per-row results of stage 1-3 as Spark gets them from the executors.
ROWS_SCHEMA = pa.schema([
    ("uid", pa.int64()), ("zone_id", pa.string()), ("seq", pa.int64()), ("id", pa.string()),
    ("sf", pa.string()), ("line", pa.int64()), ("digits", pa.int8()),
    ("missing", pa.string()), ("has_prev", pa.bool_()), ("stored_p", pa.string()),
    ("has_h", pa.bool_()), ("stored_h", pa.string()), ("state", pa.int8()),
    ("c", pa.string()), ("calc_c", pa.string()), ("hmac_ok", pa.bool_()),
    ("pend", pa.bool_()), ("full_h", pa.string()),
    # the link inside the piece: is (zone, seq - 1) in it (and its content hash), is
    # (zone, seq + 1); only rows lacking either go through Spark's joins
    ("lp", pa.bool_()), ("lc", pa.string()), ("ls", pa.bool_()),
])

#: The local ``rows`` table's columns (``stages._ROWS_SQL``) that the findings read.
_ROWS_COLUMNS = ("zone_id", "seq", "id", "fid", "line", "digits", "missing", "has_prev",
                 "stored_p", "has_h", "stored_h", "state", "c", "calc_c", "hmac_ok")
#: The local ``chain`` table's columns (``stages._CHAIN_FINAL_SQL``).
_CHAIN_COLUMNS = ("rid", "zone_id", "seq", "rk", "has_prev", "has_h", "c", "pred_seq",
                  "pred_from", "gap", "link_ok", "hmac_ok", "stored_p", "pred_hash")


# --- 1: executors ------------------------------------------------------------------------

def piece_rows(piece: dict, key: bytes | None, zones: Sequence[str] | None,
               recover: bool) -> pa.Table:
    """Stages 1-3 of the local engine over one piece, in ROWS_SCHEMA (runs in executors)."""
    import duckdb

    from ..chain.stages import Run

    events = units.read(piece)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("_piece", events)
        con.execute("CREATE VIEW events AS SELECT * FROM _piece")
        run = Run(con, key, zones, None, 1)
        with run:
            run.load()
            run.sql("ALTER TABLE {rows} ADD COLUMN pend BOOLEAN")
            run.sql("UPDATE {rows} SET pend = state = $p", {"p": PENDING})
            run.recover(recover, None)
            table = con.sql(
                """WITH k AS (SELECT zone_id, seq, any_value(c) AS c FROM {rows}
                               WHERE seq IS NOT NULL GROUP BY zone_id, seq)
                   SELECT r.zone_id, r.seq, r.id, r.fid, r.line,
                          CAST(r.digits AS TINYINT) AS digits, r.missing, r.has_prev,
                          r.stored_p, r.has_h, r.stored_h, r.state, r.c, r.calc_c,
                          r.hmac_ok, r.pend, p.seq IS NOT NULL AS lp, p.c AS lc,
                          s.seq IS NOT NULL AS ls
                     FROM {rows} r
                     LEFT JOIN k p ON p.zone_id = r.zone_id AND p.seq = r.seq - 1
                     LEFT JOIN k s ON s.zone_id = r.zone_id AND s.seq = r.seq + 1
                    ORDER BY r.rowid""".format(**run.t)).to_arrow_table()
            names = [n for (n,) in con.sql("SELECT source_file FROM {files} ORDER BY fid"
                                           .format(**run.t)).fetchall()]
    finally:
        con.close()
    return _finish(table, events, names, int(piece["no"]) << 32)


def _finish(table: pa.Table, events: pa.Table, names: list[str], base: int) -> pa.Table:
    """ROWS_SCHEMA: the row ids, the file names, and each row's stored chain_hmac
    (``rows`` keeps it only where the HMAC waits for the predecessor; a copy's is
    compared), taken from the events by position when the rows are the events in order,
    else by (file, line)."""
    import pyarrow.compute as pc

    n = table.num_rows
    sf = pc.take(pa.array(names, pa.string()),
                 pc.subtract(table.column("fid"), pa.scalar(1, table.column("fid").type)))
    stored = pc.utf8_lower(events.column("chain_hmac"))
    stored = pc.if_else(pc.equal(stored, ""), pa.scalar(None, pa.string()), stored)
    if n == events.num_rows and pc.all(pc.fill_null(
            pc.equal(table.column("id"), events.column("id")), True)).as_py() is not False:
        full_h = stored
    else:  # a zone filter left rows out: by (file, line)
        keys = pa.table({"sf": pc.fill_null(events.column("source_file"), ""),
                         "line": events.column("source_line"), "h": stored})
        found = pa.table({"sf": sf, "line": table.column("line"),
                          "i": pa.array(range(n), pa.int64())}).join(
            keys.group_by(["sf", "line"]).aggregate([("h", "first")]), ["sf", "line"],
            join_type="left outer").sort_by("i")
        full_h = found.column("h_first")
    full_h = pc.if_else(table.column("has_prev"), full_h, table.column("stored_h"))
    columns = {name: table.column(name) for name in table.column_names}
    columns.update(uid=pa.array(range(base, base + n), pa.int64()), sf=sf, full_h=full_h)
    return pa.table({name: columns[name] for name in ROWS_SCHEMA.names}).cast(ROWS_SCHEMA)


def _rows_task(key: bytes | None, zones: Sequence[str] | None, recover: bool):
    """The mapInArrow function of stage 1-3 (pickled to the executors with the key)."""
    env = units.aws_env()

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        units.use_env(env)
        for batch in batches:
            for piece in batch.to_pylist():
                yield from piece_rows(piece, key, zones, recover).to_batches()
    return task


def _hmac_task(key: bytes):
    """The mapInArrow function adding ``hmac_pred``: the HMAC of c chained to pred_hash,
    where a row without a prev column needs it."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        from ..chain import digest, native

        for batch in batches:
            need = pc.and_(pc.and_(pc.invert(batch.column("has_prev")),
                                   pc.is_valid(batch.column("c"))),
                           pc.is_valid(batch.column("pred_hash")))
            content = pc.if_else(need, batch.column("c"), pa.scalar(None, pa.string()))
            if native.AVAILABLE:
                hmac = native.hmac_hex(key, content, batch.column("pred_hash"))
            else:
                hmac = pa.array([None if c is None else digest.chain_hmac(key, c, p)
                                 for c, p in zip(content.to_pylist(),
                                                 batch.column("pred_hash").to_pylist(),
                                                 strict=True)], pa.string())
            yield batch.append_column("hmac_pred", hmac)
    return task


# --- the entry -----------------------------------------------------------------------

def verify_paths(verifier: Verifier, paths: Sequence[str | os.PathLike[str]], *,
                 spark: Any = None, piece_rows: int | None = None) -> Report:
    """``verifier.verify_paths(paths)`` on Spark: the same Report (``spark``: a
    SparkSession, else ``spark.session()``; ``piece_rows``: rows per task, see
    ``units.PIECE_ROWS``)."""
    from ..chain.manifests import SnapshotDigests
    from ..errors import UsageError
    from ..manifest import MANIFEST
    from . import require, session

    require()
    paths = [os.fspath(p) for p in paths]
    zones = verifier._zone_list()
    named = [p for p in paths if os.path.isdir(p) and os.path.lexists(os.path.join(p, MANIFEST))]
    spark = spark or session()
    with SnapshotDigests(named, zones) as outer:
        inputs = units.scan_any(paths, verifier.exclude, spark)
        if not inputs:
            raise UsageError(f"no export files found in {', '.join(paths)}")
        pieces = units.plan(inputs, piece_rows or units.PIECE_ROWS)
        units.count_rows(inputs, pieces)
        started = {os.path.realpath(p) for p in named}
        found = [i.path for i in inputs if i.shape == units.Shape.SNAPSHOT
                 and os.path.realpath(i.path) not in started]
        with SnapshotDigests(found, zones) as inner:
            report = _Verification(spark, verifier, inputs, pieces).report()
        inner.amend(report)
    outer.amend(report)
    return report


class _Verification:
    """One verification on Spark (see the module docstring)."""

    def __init__(self, spark: Any, verifier: Verifier, inputs: list, pieces: list) -> None:
        self.spark = spark
        self.v = verifier
        self.key = verifier.key_bytes
        self.zones = verifier._zone_list()
        self.inputs = inputs
        self.pieces = pieces
        self.cached: list[Any] = []
        #: the (zone, seq) held by more than one row
        self.dup_keys: list[tuple[str, int]] = []

    def report(self) -> Report:
        from . import spark_errors

        try:
            with spark_errors():
                return self._report()
        finally:
            for frame in self.cached:
                frame.unpersist()

    def _cache(self, frame: Any) -> Any:
        frame = frame.persist()
        self.cached.append(frame)
        return frame

    def _report(self) -> Report:
        import duckdb

        from ..chain.findings import build_report
        from ..chain.stages import Run
        from ..chain.wording import recovered_check, recovery_skipped_check

        rows = self._rows()
        heads_run = Run(duckdb.connect(), self.key, self.zones, self.v.anchor_report,
                        self.v.max_findings)
        ranks = self._ranks(rows)
        chain = self._chain(rows, ranks, heads_run.heads)
        aggregates, stats = self._aggregates(rows, chain)
        wrong = {zone for zone, z in stats.items()
                 if z["checked"] >= 2 and z["failed"] == z["checked"]}
        extra = {u[6]["uid"] for u in aggregates["unverifiable"]}
        chain_rows, row_rows = self._notable(rows, chain, stats, wrong, heads_run.heads, extra)
        pending = aggregates.pop("pending")

        run = heads_run
        with run:
            _load(run, row_rows, chain_rows)
            run.repeated_seqs = ranks is not None
            if pending:
                run.checks["microseconds"] = (
                    recovered_check(pending) if self.v.recover_microseconds
                    else recovery_skipped_check(pending))
            uid_rid = dict(run.sql("SELECT uid, rowid FROM {rows}").fetchall())
            aggregates["zones"] = [_zone_row(z, uid_rid) for z in stats.values()]
            fid_of = dict(run.sql("SELECT uid, fid FROM {rows}").fetchall())
            aggregates["unverifiable"] = [
                (*u[:6], {"id": u[6]["id"], "seq": u[6]["seq"], "fid": fid_of[u[6]["uid"]],
                          "line": u[6]["line"]}) for u in aggregates["unverifiable"]]
            return build_report(run, self.inputs, aggregates=aggregates)

    # --- stage 1-3 --------------------------------------------------------------------

    def _rows(self) -> Any:
        from pyspark.sql import functions as F

        spark = self.spark
        pieces = spark.createDataFrame([p.row() for p in self.pieces], units.PIECE_SCHEMA)
        # one task per piece: by range (hashing 19 numbers into 19 partitions left 4 of
        # them with two pieces, and 4 tasks empty)
        pieces = pieces.repartitionByRange(max(1, len(self.pieces)), F.col("no"))
        rows = pieces.mapInArrow(_rows_task(self.key, self.zones, self.v.recover_microseconds),
                                 _spark_schema(ROWS_SCHEMA))
        return self._cache(rows)

    # --- a seq held twice ---------------------------------------------------------------

    def _ranks(self, rows: Any) -> Any:
        """(uid, rk) of the rows sharing a (zone, seq), ranked on the driver by the
        shared SQL; None when no seq is held twice (the usual case)."""
        from pyspark.sql import functions as F

        from ..chain import stages

        keys = [(k["zone_id"], k["seq"]) for k in
                rows.where(F.col("seq").isNotNull()).groupBy("zone_id", "seq").count()
                .where(F.col("count") > 1).select("zone_id", "seq").collect()]
        self.dup_keys = keys
        if not keys:
            return None
        spots = self.spark.createDataFrame(
            sorted({*keys, *((z, s + 1) for z, s in keys)}), "zone_id string, seq long")
        table = _collect(rows.join(F.broadcast(spots), ["zone_id", "seq"], "left_semi"))
        con = __import__("duckdb").connect()
        run = stages.Run(con, self.key, self.zones, None, self.v.max_findings)
        with run:
            _load(run, table, None)
            run.sql(stages._ranked_sql(vouched=False))
            run._vouch()
            run.sql("DROP TABLE {ranked}")
            run.sql(stages._ranked_sql(vouched=True))
            ranked = run.sql("SELECT r.uid, k.rk FROM {ranked} k JOIN {rows} r "
                             "ON r.rowid = k.rid WHERE k.rk > 1").fetchall()
        con.close()
        if not ranked:
            ranked = [(-1, 1)]
        return self.spark.createDataFrame(ranked, "uid long, rk int")

    # --- 4: the chain ---------------------------------------------------------------

    def _chain(self, rows: Any, ranks: Any, heads: dict) -> Any:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        col = F.col
        # only what the chain needs goes through its joins
        r = rows.where(col("seq").isNotNull()).select(
            "uid", "zone_id", "seq", "has_prev", "has_h", "c", "stored_p", "stored_h",
            "hmac_ok", "lp", "lc", "ls")
        if ranks is not None:
            # a seq held twice: every row through the joins (the links found inside a
            # piece do not know which version ranks first)
            r = (r.join(F.broadcast(ranks), "uid", "left")
                 .withColumn("rk", F.coalesce(col("rk"), F.lit(1)))
                 .withColumn("lp", F.lit(False)).withColumn("ls", F.lit(False)))
        else:
            r = r.withColumn("rk", F.lit(1))
        # Rows whose predecessor and successor are in their own piece (most) have their
        # link from the piece; only the others (a piece's edges, gaps) are joined. With
        # no seq held twice, a row's predecessor in another piece lacks its successor in
        # its own piece, so it is among these rows too.
        inner = r.where(col("lp") & col("ls")).select(
            *r.columns, F.lit(True).alias("has_pred"), col("lc").alias("pred_c0"),
            F.lit(True).alias("has_succ"), F.lit(None).cast("long").alias("gap_pred"))
        b = r.where(~col("lp") | ~col("ls"))
        k = b.where(col("rk") == 1)
        before = k.where(~col("ls")).select(
            "zone_id", (col("seq") + 1).alias("seq"), F.lit(True).alias("j_pred"),
            col("c").alias("j_c"))
        after = k.where(~col("lp")).select(
            "zone_id", (col("seq") - 1).alias("seq"), F.lit(True).alias("j_succ"))
        j = (b.join(before, ["zone_id", "seq"], "left")
             .join(after, ["zone_id", "seq"], "left")
             .withColumn("has_pred", F.when(col("lp"), F.lit(True)).otherwise(col("j_pred")))
             .withColumn("pred_c0", F.when(col("lp"), col("lc")).otherwise(col("j_c")))
             .withColumn("has_succ", F.when(col("ls"), F.lit(True)).otherwise(col("j_succ")))
             .drop("j_pred", "j_c", "j_succ"))
        # Boundary rows (no predecessor, or no successor): the seq before each gap, by a
        # window over these rows only.
        ends = F.when(col("has_succ").isNull(), col("seq"))
        edge = (j.where((col("rk") == 1)
                        & (col("has_pred").isNull() | col("has_succ").isNull()))
                .select("zone_id", "seq", "has_pred", ends.alias("end_seq")))
        order = Window.partitionBy("zone_id").orderBy("seq").rowsBetween(
            Window.unboundedPreceding, -1)
        gaps = (edge.withColumn("gap_pred", F.max("end_seq").over(order))
                .where(col("has_pred").isNull()).select("zone_id", "seq", "gap_pred"))
        j = j.join(gaps, ["zone_id", "seq"], "left").select(*inner.columns)
        j = inner.unionByName(j)
        one = col("rk") == 1
        j = (j.withColumn("pred_seq", F.when(one, F.when(col("has_pred"), col("seq") - 1)
                                                .otherwise(col("gap_pred"))))
             .withColumn("pred_c", F.when(one & col("has_pred"), col("pred_c0"))))
        anchor = self.spark.createDataFrame(
            [(h.zone_id, h.last_seq, h.last_content_sha256) for h in heads.values()]
            or [("", -1, None)], "zone_id string, a_seq long, a_c string")
        j = j.join(F.broadcast(anchor), "zone_id", "left")
        at_anchor = col("pred_seq").isNull() & one & (col("a_seq") == col("seq") - 1)
        start = col("pred_seq").isNull() & (col("seq") == 1)
        j = (j.withColumn("pred_from", F.when(col("pred_seq") == col("seq") - 1, "seq")
                          .when(start, "start").when(at_anchor, "anchor"))
             .withColumn("pred_hash", F.when(col("pred_seq") == col("seq") - 1, col("pred_c"))
                         .when(start, F.lit("")).when(at_anchor, col("a_c"))))
        # rows without a prev column (OCSF) chain their HMAC to the predecessor's hash:
        # through the C kernel, and only when there are such rows (not in a snapshot
        # ingested from table dumps)
        chained_rows = self.key is not None and not rows.where(
            ~col("has_prev") & col("c").isNotNull() & col("stored_h").isNotNull()
        ).select("uid").isEmpty()
        if chained_rows:
            j = j.select("uid", "zone_id", "seq", "rk", "has_prev", "has_h", "c", "stored_p",
                         "stored_h", "hmac_ok", "pred_seq", "pred_from", "pred_hash")
            schema = _spark_schema(pa.schema(
                [*_arrow_fields(j.schema), pa.field("hmac_pred", pa.string())]))
            j = j.mapInArrow(_hmac_task(self.key), schema)
            chained = col("hmac_pred") == col("stored_h")
        else:
            chained = F.lit(None).cast("boolean")
        hmac_ok = (F.when(col("has_prev"), col("hmac_ok"))
                   .when(one & col("stored_h").isNotNull() & col("c").isNotNull()
                         & col("pred_hash").isNotNull(), chained))
        link_ok = F.when(one & col("has_prev") & col("pred_hash").isNotNull(),
                         F.coalesce(col("stored_p"), F.lit("")) == col("pred_hash"))
        chain = j.select(
            col("uid").alias("rid"), "zone_id", "seq", col("rk").cast("int").alias("rk"),
            "has_prev", "has_h", "c", "pred_seq", "pred_from",
            (one & F.coalesce(col("pred_seq") < col("seq") - 1, F.lit(False))).alias("gap"),
            link_ok.alias("link_ok"), hmac_ok.alias("hmac_ok"), "stored_p", "pred_hash")
        return self._cache(chain)

    # --- the aggregates over every row ------------------------------------------------

    def _aggregates(self, rows: Any, chain: Any) -> tuple[dict[str, list], dict[str, dict]]:
        from pyspark.sql import functions as F

        col = F.col
        one = col("rk") == 1
        failed = one & (col("hmac_ok") == F.lit(False))

        def count_if(cond):
            return F.sum(F.when(cond, 1).otherwise(0))

        zone_rows = chain.groupBy("zone_id").agg(
            count_if(one).alias("events"), F.min("seq").alias("first"),
            F.max("seq").alias("last"),
            F.max_by("c", F.when(one & col("c").isNotNull(), col("seq"))).alias("last_c"),
            F.min_by(F.struct("rid", "seq", "has_prev", "pred_from"),
                     F.when(one, col("seq"))).alias("head"),
            count_if(one & col("hmac_ok").isNotNull()).alias("checked"),
            count_if(failed).alias("failed"),
            count_if(one & col("has_h") & col("hmac_ok").isNull() & ~col("gap")
                     & col("pred_from").isNotNull()).alias("unchecked"),
            F.min_by(F.struct("rid", "seq"), F.when(failed, col("seq"))).alias("fail1"),
        ).collect()
        stats = {z["zone_id"]: z.asDict(recursive=True) for z in zone_rows}
        # one pass over the rows for the rest: grouped finely here, summed up below
        groups = (rows.groupBy("zone_id", "state", "missing", "has_h",
                               col("seq").isNull().alias("no_seq"))
                  .agg(F.count(F.lit(1)).alias("n"), count_if(col("pend")).alias("pend"),
                       count_if(col("has_prev")).alias("prev"),
                       F.min_by(F.struct(F.coalesce(col("seq"), F.lit(0)).alias("o"), "id",
                                         "seq", "uid", "line"),
                                F.coalesce(col("seq"), F.lit(0))).alias("first"))
                  .collect())
        no_seq: dict[str, int] = {}
        states: dict[int, int] = {}
        pending = 0
        unverifiable: dict[tuple, list] = {}
        listed = (ABSENT, SKIPPED, NO_HASH, COMPUTED)
        for g in groups:
            zone, state, n = g["zone_id"], g["state"], g["n"]
            states[state] = states.get(state, 0) + n
            pending += g["pend"]
            if g["no_seq"]:
                no_seq[zone] = no_seq.get(zone, 0) + n
            if state in listed or not g["has_h"]:
                entry = unverifiable.setdefault((zone, state, g["missing"]),
                                                [0, 0, 0, None])
                entry[0] += n
                entry[1] += 0 if g["has_h"] else n
                entry[2] += 0 if g["has_h"] else g["prev"]  # no HMAC, yet a full row
                first = g["first"].asDict()
                if entry[3] is None or first["o"] < entry[3]["o"]:
                    entry[3] = first
        aggregates: dict[str, Any] = {
            "no_seq": sorted(no_seq.items()),
            "states": sorted(states.items()),
            "pending": pending,
            # the first rows' file numbers are given once the files are numbered
            "unverifiable": [(*k, n, no_h, unsigned, first)
                             for k, (n, no_h, unsigned, first) in sorted(unverifiable.items())],
        }
        return aggregates, stats

    # --- the rows findings may name ---------------------------------------------------

    def _notable(self, rows: Any, chain: Any, stats: dict, wrong: set[str],
                 heads: dict, extra: set[int]) -> tuple[pa.Table, pa.Table]:
        from pyspark.sql import functions as F

        col = F.col
        wanted: set[tuple[str, int]] = set()
        uids: set[int] = set()
        for zone, z in stats.items():
            wanted.add((zone, z["last"]))
            for at in (z["head"], z["fail1"]):
                if at:
                    uids.add(at["rid"])
        for h in heads.values():
            wanted.add((h.zone_id, h.last_seq))
        wanted.update(self.dup_keys)  # every version of a seq held twice
        spots = self.spark.createDataFrame(sorted(wanted) or [("", -1)],
                                           "zone_id string, seq long").withColumn(
                                               "spot", F.lit(True))
        flagged = (col("gap") | (col("link_ok") == F.lit(False)) | (col("rk") > 1)
                   | ((col("hmac_ok") == F.lit(False))
                      & ~col("zone_id").isin(sorted(wrong) or [""]))
                   | col("spot").isNotNull() | col("rid").isin(sorted(uids) or [-1]))
        chain_table = _collect(chain.join(F.broadcast(spots), ["zone_id", "seq"], "left")
                               .where(flagged).drop("spot"))
        # rows: those of the chain rows, content mismatches, and ids seen at several seqs
        # ids at more than one seq: few (each is a finding), so the driver holds them
        replayed = [(r["zone_id"], r["id"]) for r in
                    rows.where(col("seq").isNotNull()).groupBy("zone_id", "id")
                    .agg(F.min("seq").alias("lo"), F.max("seq").alias("hi"))
                    .where(col("lo") != col("hi")).select("zone_id", "id").collect()]
        # the rows named: as many as the chain rows collected above, so broadcast
        uids = sorted({*chain_table.column("rid").to_pylist(), *extra}) or [-1]
        named = self.spark.createDataFrame([(u, True) for u in uids], "uid long, named boolean")
        ids = self.spark.createDataFrame(replayed or [("", "")],
                                         "zone_id string, id string").withColumn(
                                             "replayed", F.lit(bool(replayed)))
        marked = (rows.join(F.broadcast(named), "uid", "left")
                  .join(F.broadcast(ids), ["zone_id", "id"], "left"))
        row_table = _collect(
            marked.where(col("named").isNotNull() | (col("state") == MISMATCH)
                         | (col("replayed") == F.lit(True)))
            .select(*rows.columns))
        return chain_table, row_table


# --- the driver's work tables ------------------------------------------------------------

def _load(run: Any, rows: pa.Table, chain: pa.Table | None) -> None:
    """The local work tables ``files``, ``rows`` (and ``src``, ``chain``, ``anchor``)
    from the rows Spark collected; ``rows.rowid`` follows the rows' order in the input,
    and ``chain.rid`` is mapped to it."""
    import pyarrow.compute as pc

    rows = rows.sort_by("uid")
    names = sorted(set(rows.column("sf").to_pylist()))
    files = pa.table({"fid": pa.array(range(1, len(names) + 1), pa.int32()),
                      "source_file": pa.array(names, pa.string())})
    fid = pc.add(pc.index_in(rows.column("sf"), value_set=files.column("source_file")), 1)
    rows = rows.append_column("fid", fid.cast(pa.int32()))
    con = run.con
    for name, table in (("files", files), ("rows", rows)):
        con.register("_cf_in", table)
        try:
            if name == "rows":
                columns = ", ".join(("uid", *_ROWS_COLUMNS, "full_h"))
                run.sql(f"CREATE TABLE {{rows}} AS SELECT {columns} FROM _cf_in ORDER BY uid")
            else:
                run.sql("CREATE TABLE {files} AS SELECT * FROM _cf_in")
        finally:
            con.unregister("_cf_in")
    # what second_versions reads of the source rows: each row's stored chain_hmac
    run.t["src_rows"] = f"{run.db}.src_rows"
    run.sql("CREATE TABLE {src_rows} AS SELECT fid, line AS source_line, "
            "full_h AS chain_hmac FROM {rows}")
    run.src = run.t["src_rows"]
    if chain is None:
        return
    con.register("_cf_in", chain)
    try:
        columns = ", ".join(f"c.{name}" for name in _CHAIN_COLUMNS if name != "rid")
        run.sql(f"CREATE TABLE {{chain}} AS SELECT r.rowid AS rid, {columns} "
                "FROM _cf_in c JOIN {rows} r ON r.uid = c.rid ORDER BY c.rid")
    finally:
        con.unregister("_cf_in")
    run.sql("CREATE TABLE {anchor} (zone_id VARCHAR, last_seq BIGINT, last_c VARCHAR)")
    if run.heads:
        con.executemany(
            f"INSERT INTO {run.t['anchor']} VALUES (?, ?, ?)",
            [[h.zone_id, h.last_seq, h.last_content_sha256] for h in run.heads.values()])


def _zone_row(z: dict, uid_rid: dict[int, int]) -> tuple:
    """A zone's statistics as ``findings.zone_stats`` reads them from its query."""
    def at(value: dict | None) -> dict | None:
        if not value:
            return None
        return {**value, "rid": uid_rid[value["rid"]]}

    return (z["zone_id"], z["events"], z["first"], z["last"], z["last_c"], at(z["head"]),
            z["checked"], z["failed"], z["unchecked"], at(z["fail1"]))


def _collect(frame: Any) -> pa.Table:
    from . import to_arrow

    return to_arrow(frame)


def _arrow_fields(schema: Any) -> list[pa.Field]:
    """pyarrow fields of a Spark schema (the few types these frames hold)."""
    kinds = {"LongType": pa.int64(), "IntegerType": pa.int32(), "ByteType": pa.int8(),
             "StringType": pa.string(), "BooleanType": pa.bool_()}
    return [pa.field(f.name, kinds[type(f.dataType).__name__]) for f in schema.fields]


def _spark_schema(schema: pa.Schema) -> str:
    """A Spark DDL schema for an Arrow schema of these types."""
    kinds = {pa.int64(): "long", pa.int32(): "int", pa.int8(): "byte", pa.string(): "string",
             pa.bool_(): "boolean"}
    return ", ".join(f"{f.name} {kinds[f.type]}" for f in schema)
