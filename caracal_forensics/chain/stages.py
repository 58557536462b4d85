"""The exhaustive pipeline's stages over work tables: load, hash, recover microseconds,
link, vouch (FORMAT.md sections 2 and 5). What the tables then say is turned into
findings by ``findings.py``; ``verify.py`` runs the stages in order.

The work is done by DuckDB so that it runs on every core and spills to disk instead of
growing in memory: one pass recomputes every content hash (and the HMAC of rows that
carry their prev link), one sort per zone and chain_seq finds each row's predecessor,
and only the rows that are wrong (capped per zone and kind) ever reach Python. Hashing
runs in the optional C kernel (``native``) when it was built, else in DuckDB SQL; both
feed the same SQL, so the findings cannot differ. Microsecond recovery for OCSF rows
streams through Python (and the kernel) in batches.

The tables, in a private in-memory database attached for the run:

1. ``files``: source_file -> small integer (rows carry 4 bytes instead of a path).
2. ``rows``: per row the content check (``state``), the content hash the chain uses
   (``c``: the stored one, else the recomputed one) and, for rows whose shape carries
   prev_content_sha256, the HMAC (it needs nothing else).
3. microsecond recovery settles ``state`` of rows whose occurred_at lost precision.
4. ``chain``: per zone in chain_seq order, each row's predecessor (LAG), the gap and link
   checks, and the HMAC of rows without a prev column (chained to the predecessor's
   content hash). When a seq occurs twice, one canonical row per seq is chosen (``rk``);
   ``vouch`` holds the versions the next event links to.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..model import ABSENT_FIELD, PRECISION_FIELD
from . import digest, native
from .description import EVENT_CHAIN, ChainSpec
from .digest import Progress
from .engine import MemoryCeiling, all_true, arrow_reader
from .recovery import RECOVERY_BATCH, recover_batch
from .report import Report
from .summary import anchor_heads, in_order
from .wording import recovered_check, recovery_skipped_check

#: Rows per batch streamed through the C kernel.
STREAM_BATCH = 32768
#: Transformed rows inserted into a work table at once.
FLUSH_ROWS = 122880

#: The content check of one row (``rows.state``).
OK, COMPUTED, MISMATCH, ABSENT, SKIPPED, PENDING, NO_HASH = range(7)
#: Fields whose absence makes the content hash impossible to recompute (events).
HASHED = EVENT_CHAIN.hashed


#: Stage 2 over stage 1 (``{stage1}``: the rows with ``calc``, ``c`` and ``hmac_self``):
#: the content check of each row and the HMAC of rows carrying their prev link. The same
#: SQL runs over the DuckDB-hashed relation or over the stream hashed by the C kernel.
#: Kept narrow (it may hold 10,000,000 rows): the stored hash is ``c`` unless the content
#: check failed, and stored_h is only needed where the HMAC waits for the predecessor.
_ROWS_SQL = f"""
SELECT zone_id, seq, @pred id, fid, line, digits, missing, has_prev, stored_p,
       stored_h IS NOT NULL AS has_h, CASE WHEN NOT has_prev THEN stored_h END AS stored_h,
       state, c, CASE WHEN state = {MISMATCH} THEN calc END AS calc_c,
       CASE WHEN has_prev AND stored_h IS NOT NULL AND c IS NOT NULL
            THEN hmac_self = stored_h END AS hmac_ok
  FROM (SELECT *, CAST(CASE
                WHEN missing <> '' AND NOT coalesce(stored_c = calc, false) THEN {ABSENT}
                WHEN digits < 6 AND stored_c IS NULL THEN {NO_HASH}
                WHEN digits < 6 THEN {PENDING}
                WHEN stored_c IS NULL THEN {COMPUTED}
                WHEN stored_c = calc THEN {OK}
                ELSE {MISMATCH} END AS TINYINT) AS state
          FROM {{stage1}})"""

def _preference(vouched: bool = False, alias: str = "") -> str:
    """Which of several rows sharing a (zone, seq) the chain goes through: one whose
    content and HMAC verify (then, when rebuilding, one the next event vouches for), then
    the most complete shape, then the first in file order."""
    a = alias
    vouch = "v.c IS NULL, " if vouched else ""
    return (f"{a}state = {MISMATCH}, {a}hmac_ok DESC NULLS LAST, {vouch}{a}digits DESC, "
            f"{a}has_prev DESC, {a}fid, {a}line")


#: What the chain pass carries per row: only what the checks need (the sort moves it
#: all), with ``rid`` (the row's rowid in ``rows``) to fetch details for flagged rows.
_CHAIN_INPUT = "rowid AS rid, zone_id, seq, c, has_prev, stored_p, has_h, stored_h, hmac_ok"

#: The common case: one sort per zone; the previous row is the predecessor. Exact as long
#: as no seq occurs twice in a zone (checked afterwards).
_FAST_CHAIN_SQL = f"""
SELECT *, 1 AS rk, lag(seq) OVER z AS pred_seq, lag(c) OVER z AS pred_c
  FROM (SELECT {_CHAIN_INPUT} FROM {{rows}} WHERE seq IS NOT NULL)
WINDOW z AS (PARTITION BY zone_id ORDER BY seq)"""


#: The same rows as ``_FAST_CHAIN_SQL`` when the rows arrived in (zone, seq) order and
#: ``Follow`` took each one's predecessor on the way: no sort.
_ORDERED_CHAIN_SQL = f"""
SELECT {_CHAIN_INPUT}, 1 AS rk, pred_seq,
       CASE WHEN pred_same THEN stored_p ELSE pred_cx END AS pred_c
  FROM {{rows}} WHERE seq IS NOT NULL"""


def _ranked_sql(vouched: bool) -> str:
    """Rows ranked within their (zone, seq): the rare path when a seq occurs twice."""
    join = ("LEFT JOIN {vouch} v ON v.zone_id = x.zone_id AND v.seq = x.seq AND v.c = x.c"
            if vouched else "")
    return f"""CREATE TABLE {{ranked}} AS
SELECT x.rowid AS rid, x.zone_id, x.seq, x.c, x.has_prev, x.stored_p, x.has_h, x.stored_h,
       x.hmac_ok,
       row_number() OVER (PARTITION BY x.zone_id, x.seq
                          ORDER BY {_preference(vouched, "x.")}) AS rk
  FROM {{rows}} x {join} WHERE x.seq IS NOT NULL"""


_EXACT_CHAIN_SQL = """
SELECT *, lag(seq) OVER z AS pred_seq, lag(c) OVER z AS pred_c FROM {ranked} WHERE rk = 1
WINDOW z AS (PARTITION BY zone_id ORDER BY seq)
UNION ALL BY NAME
SELECT * FROM {ranked} WHERE rk > 1"""

#: Each row's predecessor hash: the previous seq's, "" at the zone's start, or the
#: anchor's head when the export starts right after it.
_PRED_SQL = """
SELECT w.*,
       CASE WHEN pred_seq = seq - 1 THEN 'seq'
            WHEN pred_seq IS NULL AND seq = 1 THEN 'start'
            WHEN pred_seq IS NULL AND a.last_seq = seq - 1 THEN 'anchor'
       END AS pred_from,
       CASE WHEN pred_seq = seq - 1 THEN pred_c
            WHEN pred_seq IS NULL AND seq = 1 THEN ''
            WHEN pred_seq IS NULL AND a.last_seq = seq - 1 THEN a.last_c
       END AS pred_hash
  FROM ({body}) w LEFT JOIN {anchor} a ON a.zone_id = w.zone_id AND w.rk = 1"""

#: The gap, the prev link and, for rows without a prev column, the HMAC.
#: The hashes compared are kept only where a finding needs them (or on the rare path).
_CHAIN_FINAL_SQL = """
SELECT rid, zone_id, seq, rk, has_prev, has_h, c, pred_seq, pred_from, gap, link_ok, hmac_ok,
       CASE WHEN {keep} OR link_ok = false THEN stored_p END AS stored_p,
       CASE WHEN {keep} OR link_ok = false THEN pred_hash END AS pred_hash
  FROM (SELECT * EXCLUDE (hmac_ok), rk = 1 AND coalesce(pred_seq < seq - 1, false) AS gap,
               CASE WHEN rk = 1 AND has_prev AND pred_hash IS NOT NULL
                    THEN coalesce(stored_p, '') = pred_hash END AS link_ok,
               CASE WHEN has_prev THEN hmac_ok
                    WHEN rk = 1 AND stored_h IS NOT NULL AND c IS NOT NULL
                         AND pred_hash IS NOT NULL
                    THEN {hmac_pred} END AS hmac_ok
          FROM {stage1})"""


class Run:
    """One verification: temporary tables on the caller's connection, dropped afterwards."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        key: bytes | None,
        zones: Sequence[str] | None,
        anchor: Report | None,
        max_findings: int,
        spec: ChainSpec = EVENT_CHAIN,
    ) -> None:
        self.con = con
        #: which chain: its rows' view and how its content hash is computed
        self.spec = spec
        self.key = key
        self.zones = list(dict.fromkeys(zones)) if zones else None
        self.anchor = anchor
        self.cap = max(1, max_findings)
        self.params: dict[str, Any] = {}
        if key is not None:
            self.params["ipad"], self.params["opad"] = digest.hmac_pads(key)
        # Work tables live in a private in-memory database attached for the run: visible
        # to a second cursor (recovery reads and writes at once), gone on DETACH, and
        # never written into the caller's database.
        self.db = f"_cf_verify_{uuid.uuid4().hex[:8]}"
        self.t = {name: f"{self.db}.{name}" for name in ("zones", "files", "rows", "rec",
                                                           "chain", "x", "anchor", "vouch",
                                                           "ranked")}
        self.heads = anchor_heads(anchor, self.zones)
        self.src = "(SELECT NULL)"
        self.repeated_seqs = False
        self.wrong_key: set[str] = set()  # zones where every HMAC fails (a wrong key?)
        self.checks: dict[str, str] = {}
        self._ceiling = MemoryCeiling(con)
        #: predecessors taken while streaming (the C kernel's path), and the file names
        self.follow: Follow | None = None
        self.file_names = pa.array([], pa.string())

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> Run:
        self._ceiling.__enter__()
        self.con.execute(f"ATTACH ':memory:' AS {self.db}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.execute(f"DETACH DATABASE IF EXISTS {self.db}")
        self._ceiling.__exit__(*exc)

    def sql(self, query: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run a query with the run's table names filled in (``{rows}`` etc.)."""
        text = query.format(**self.t, src=self.src)
        used = {k: v for k, v in {**self.params, **(params or {})}.items() if f"${k}" in text}
        return self.con.execute(text, used) if used else self.con.execute(text)

    # --- 1-2: rows ----------------------------------------------------------------------

    def load(self) -> None:
        """Number the source files, then recompute every row's content hash in one pass."""
        t = self.t
        spec = self.spec
        view = spec.view
        zone_filter = ""
        if self.zones is not None:
            self.sql("CREATE TABLE {zones} (zone_id VARCHAR)")
            self.con.executemany(f"INSERT INTO {t['zones']} VALUES (?)", [[z] for z in self.zones])
            zone_filter = f"WHERE zone_id IN (SELECT zone_id FROM {t['zones']})"
        self.sql(
            "CREATE TABLE {files} AS SELECT CAST(row_number() OVER (ORDER BY source_file)"
            " AS INTEGER) AS fid, source_file FROM (SELECT DISTINCT coalesce(source_file, '')"
            f" AS source_file FROM {view} {zone_filter})"
        )
        hashed = "[" + ", ".join(f"'{name}'" for name in spec.hashed) + "]"
        jsonb = "[" + ", ".join(f"'{name}'" for name in spec.optional) + "]"
        # The events with their file number, what the shape lacks (``missing``: hashed
        # fields only) and whether the content hash can be recomputed (``hashable``). A
        # shape may omit a NULL jsonb field (the search API's omitempty): such a row is
        # hashed with NULL there, and only a match with the stored hash counts.
        shaped = f"""(
            SELECT *, (missing = '' OR list_has_all({jsonb}, string_split(missing, ',')))
                      AND digits >= 6 AS hashable
              FROM (SELECT e.*, @fid,
                           coalesce(e.{PRECISION_FIELD}, 6) AS digits,
                           NOT list_contains(string_split(coalesce(e.{ABSENT_FIELD}, ''), ','),
                                             'prev_content_sha256') AS has_prev,
                           coalesce(nullif(array_to_string(list_filter(
                               string_split(coalesce(e.{ABSENT_FIELD}, ''), ','),
                               lambda name: list_contains({hashed}, name)), ','), ''),
                               CASE WHEN e.occurred_at IS NULL THEN 'occurred_at' END, '')
                             AS missing
                      FROM (SELECT * FROM {view} {zone_filter}) e @join))"""
        self.src = shaped.replace("@fid", "f.fid").replace(
            "@join", f"JOIN {t['files']} f ON coalesce(e.source_file, '') = f.source_file")
        meta = """zone_id, chain_seq AS seq, id, fid, source_line AS line, digits, missing,
                  has_prev, lower(nullif(content_sha256, '')) AS stored_c,
                  lower(nullif(prev_content_sha256, '')) AS stored_p,
                  lower(nullif(chain_hmac, '')) AS stored_h"""
        if native.AVAILABLE or spec.content is not None:
            # meta already has zone_id and id, which are hashed fields too
            fields = ", ".join(f for f in spec.hashed
                               if f not in ("zone_id", "id", "occurred_at"))
            # No join here: the file number comes from a lookup in Arrow, so a scan of a
            # snapshot stored in (zone_id, chain_seq) order arrives in that order, and the
            # predecessors are taken on the way (``Follow``) instead of sorting later.
            files = self.sql("SELECT source_file FROM {files} ORDER BY fid").fetchall()
            self.file_names = pa.array([name for (name,) in files], pa.string())
            plain = shaped.replace("@fid", "coalesce(e.source_file, '') AS sf").replace(
                "@join", "")
            self.follow = Follow()
            self._stream_into(
                "rows", f"SELECT {meta.replace('fid,', 'sf,', 1)}, hashable, {fields},"
                        f" occurred_at FROM {plain}",
                self._hash_batch, _ROWS_SQL.replace("@pred", "pred_seq, pred_same, pred_cx, "),
                follow=self.follow, ordered=True,
            )
            return
        hmac = digest.chain_hmac_sql("c", "stored_p") if self.key else "NULL"
        stage1 = f"""(SELECT *, CASE WHEN has_prev THEN {hmac} END AS hmac_self
                        FROM (SELECT *, coalesce(stored_c, CASE WHEN missing = '' THEN calc END)
                                          AS c
                                FROM (SELECT {meta}, CASE WHEN hashable
                                             THEN {digest.content_sha256_sql()} END AS calc
                                        FROM {self.src})))"""
        self.sql("CREATE TABLE {rows} AS "
                 + _ROWS_SQL.replace("@pred", "").format(stage1=stage1))

    def _hash_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Stage 1 streamed: calc (the C kernel's, or the chain's own hasher, which may
        also say why a row's hash was not found in ``missing``), c and the self-contained
        HMAC of one batch. The masks are skipped (no copy) when they keep every row, the
        common case."""
        missing = None
        if self.spec.content is not None:
            calc, missing = self.spec.content(batch)
        else:
            calc = native.content_hex(batch)
        if missing is not None:
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            columns["missing"] = missing
            batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
        if not all_true(batch.column("hashable")):
            calc = pc.if_else(batch.column("hashable"), calc, pa.scalar(None, pa.string()))
        stored_c = batch.column("stored_c")
        if stored_c.null_count == 0:
            c = stored_c
        else:
            c = pc.coalesce(stored_c, pc.if_else(pc.equal(batch.column("missing"), ""), calc,
                                                 pa.scalar(None, pa.string())))
        if self.key is not None:
            hmac = hmac_hex(self.key, c, batch.column("stored_p"))
            if not all_true(batch.column("has_prev")):
                hmac = pc.if_else(batch.column("has_prev"), hmac, pa.scalar(None, pa.string()))
        else:
            hmac = pa.nulls(len(c), pa.string())
        keep = ["zone_id", "seq", "id", "fid", "line", "digits", "missing", "has_prev",
                "stored_c", "stored_p", "stored_h"]
        columns = dict(zip(batch.schema.names, batch.columns, strict=True))
        if "fid" not in columns:  # the file numbers of ``files`` (1-based, by name)
            columns["fid"] = pc.add(pc.index_in(columns["sf"], value_set=self.file_names),
                                    pa.scalar(1, pa.int32())).cast(pa.int32())
        return pa.RecordBatch.from_arrays(
            [columns[name] for name in keep] + [calc, c, hmac],
            names=[*keep, "calc", "c", "hmac_self"],
        )

    def _stream_into(self, table: str, query: str, transform, select_sql: str,
                     follow: Follow | None = None, ordered: bool = False) -> None:
        """Create work table ``table`` from ``query`` with each Arrow batch passed through
        ``transform`` on two threads (the C kernel releases the GIL): this thread reads
        the query, and every ``FLUSH_ROWS`` transformed rows go into the table at once
        (``select_sql`` with ``{stage1}`` standing for them), so DuckDB inserts a whole
        Arrow table in parallel instead of pulling a Python stream batch by batch.
        ``follow`` sees every transformed batch in order on this thread; ``ordered`` reads
        the query with DuckDB's insertion order kept (the scan order of the files)."""
        from concurrent.futures import ThreadPoolExecutor

        text = query.format(**self.t)
        source = arrow_reader(self.con, text, self._used(text) or None, STREAM_BATCH, ordered)
        empty = transform(pa.RecordBatch.from_pylist([], schema=source.schema))
        schema = (follow.extend(empty, track=False) if follow else empty).schema
        select = select_sql.format(stage1="_cf_stream", **self.t)
        params = self._used(select) or None
        writer = self.con.cursor()  # this connection is busy streaming the query
        created = False

        def flush(batches: list[pa.RecordBatch]) -> None:
            nonlocal created
            writer.register("_cf_stream", pa.Table.from_batches(batches, schema))
            try:
                if created:
                    writer.execute(f"INSERT INTO {self.t[table]} {select}", params)
                else:
                    writer.execute(f"CREATE TABLE {self.t[table]} AS {select}", params)
                    created = True
            finally:
                writer.unregister("_cf_stream")

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                held: list[pa.RecordBatch] = []
                rows = 0
                for out in in_order(pool, transform, source):
                    if follow is not None:
                        out = follow.extend(out)
                    held.append(out)
                    rows += out.num_rows
                    if rows >= FLUSH_ROWS:
                        flush(held)
                        held, rows = [], 0
                if held or not created:
                    flush(held)
        finally:
            writer.close()
            source.close()

    def _used(self, text: str) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if f"${k}" in text}

    # --- 3: microsecond recovery -------------------------------------------------------

    def recover(self, enabled: bool, progress: Progress | None) -> None:
        """Find the occurred_at microseconds of millisecond rows (OCSF), or mark them skipped."""
        pending = self.sql(
            "SELECT count(*) FROM {rows} WHERE state = $pending", {"pending": PENDING}
        ).fetchall()[0][0]
        if not pending:
            return
        if not enabled:
            self.sql("UPDATE {rows} SET state = $skipped WHERE state = $pending",
                     {"skipped": SKIPPED, "pending": PENDING})
            self.checks["microseconds"] = recovery_skipped_check(pending)
            return
        self.sql("CREATE TABLE {rec} (fid INTEGER, line BIGINT, micros BIGINT)")
        query = f"""SELECT fid, source_line AS line, {digest.preimage_head_sql()} AS head,
                           epoch_us(occurred_at) AS micros, digits,
                           lower(content_sha256) AS target
                      FROM {self.src}
                     WHERE missing = '' AND digits < 6
                       AND nullif(content_sha256, '') IS NOT NULL"""
        done = 0
        if progress:
            progress(0, pending)
        # Read here (this connection sees whatever ``events`` is built on) and write on a
        # second cursor: writing on this one would end the streaming query.
        from concurrent.futures import ThreadPoolExecutor

        writer = self.con.cursor()
        workers = 2 if native.AVAILABLE else 1  # pure Python holds the GIL anyway
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                reader = self.con.sql(query).to_arrow_reader(RECOVERY_BATCH)
                for result in in_order(pool, recover_batch, reader):
                    writer.register("_cf_recovered", result)
                    writer.execute(f"INSERT INTO {self.t['rec']} SELECT * FROM _cf_recovered")
                    writer.unregister("_cf_recovered")
                    done += result.num_rows
                    if progress:
                        progress(done, pending)
        finally:
            writer.close()
        self.sql(
            """UPDATE {rows} SET state = CASE WHEN r.micros IS NULL THEN $mismatch ELSE $ok END
                 FROM {rec} r
                WHERE {rows}.fid = r.fid AND {rows}.line = r.line AND {rows}.state = $pending""",
            {"mismatch": MISMATCH, "ok": OK, "pending": PENDING},
        )
        self.checks["microseconds"] = recovered_check(pending)

    # --- 4: the chain ------------------------------------------------------------------

    def link(self) -> None:
        """One row per (zone, seq), each one's predecessor, and the link and HMAC checks.

        The fast path sorts once (zone, seq, preference) and takes the previous row as the
        predecessor; that is exact when no seq occurs twice. When one does (rare: copies
        or conflicting versions), the chain is rebuilt choosing one canonical row per seq,
        preferring the version the next event vouches for.
        """
        self.sql("CREATE TABLE {anchor} (zone_id VARCHAR, last_seq BIGINT, last_c VARCHAR)")
        if self.heads:
            self.con.executemany(
                f"INSERT INTO {self.t['anchor']} VALUES (?, ?, ?)",
                [[h.zone_id, h.last_seq, h.last_content_sha256] for h in self.heads.values()],
            )
        ordered = self.follow is not None and self.follow.ordered
        self._build_chain(_ORDERED_CHAIN_SQL if ordered else _FAST_CHAIN_SQL)
        self.repeated_seqs = bool(
            self.sql("SELECT count(*) FROM {chain} WHERE pred_seq = seq").fetchall()[0][0])
        if self.repeated_seqs:
            self.sql("DROP TABLE {chain}")
            self.sql(_ranked_sql(vouched=False))
            self._vouch()
            self.sql("DROP TABLE {ranked}")
            self.sql(_ranked_sql(vouched=True))
            self._build_chain(_EXACT_CHAIN_SQL, keep=True)

    def _build_chain(self, body: str, keep: bool = False) -> None:
        """Materialise ``chain`` from a query giving rows with pred_seq/pred_c and rk."""
        key = self.key is not None
        final = _CHAIN_FINAL_SQL.replace("{keep}", "true" if keep else "false")
        with_pred = _PRED_SQL.format(body=body.format(**self.t), anchor=self.t["anchor"])
        no_prev = self.sql(
            "SELECT count(*) FROM {rows} WHERE NOT has_prev AND seq IS NOT NULL"
        ).fetchall()[0][0]
        if native.AVAILABLE and key and no_prev:
            self._stream_into("chain", with_pred, self._chain_hmac_batch,
                              final.replace("{hmac_pred}", "hmac_pred = stored_h"))
            return
        hmac_pred = digest.chain_hmac_sql("c", "pred_hash") + " = stored_h" if key else "NULL"
        query = final.replace("{hmac_pred}", hmac_pred).format(
            stage1=f"({with_pred})")
        self.sql("CREATE TABLE {chain} AS " + query.replace("{", "{{").replace("}", "}}"))

    def _chain_hmac_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        hmac = hmac_hex(self.key, batch.column("c"), batch.column("pred_hash"))
        return batch.append_column("hmac_pred", hmac)

    def _vouch(self) -> None:
        """Versions of a duplicated seq that the next event links to (by prev or by HMAC)."""
        hmac_succ = (
            digest.chain_hmac_sql("s.c", "k.c") + " = s.stored_h" if self.key else "false"
        )
        self.sql(
            f"""CREATE TABLE {{vouch}} AS
            WITH g AS (SELECT DISTINCT zone_id, seq FROM {{ranked}} WHERE rk > 1),
                 k AS (SELECT DISTINCT c.zone_id, c.seq, c.c FROM {{ranked}} c
                         JOIN g ON c.zone_id = g.zone_id AND c.seq = g.seq
                        WHERE c.c IS NOT NULL),
                 s AS (SELECT r.* FROM {{rows}} r
                         JOIN g ON r.zone_id = g.zone_id AND r.seq = g.seq + 1)
            SELECT DISTINCT k.zone_id, k.seq, k.c
              FROM k JOIN s ON s.zone_id = k.zone_id AND s.seq = k.seq + 1
             WHERE (s.has_prev AND s.stored_p = k.c AND s.hmac_ok IS NOT false)
                OR (NOT s.has_prev AND s.c IS NOT NULL AND s.stored_h IS NOT NULL
                    AND {hmac_succ})"""
        )


def hmac_hex(key: bytes, content: pa.Array, prev: pa.Array) -> pa.Array:
    """The HMAC of each row (``native.hmac_hex``; in Python when the C kernel is not
    built, which only a chain with its own content hasher streams through)."""
    if native.AVAILABLE:
        return native.hmac_hex(key, content, prev)
    prevs = prev.to_pylist()
    return pa.array([None if c is None else digest.chain_hmac(key, c, p)
                     for c, p in zip(content.to_pylist(), prevs, strict=True)], pa.string())


class Follow:
    """Each row's predecessor (the previous row of its zone with a chain_seq) taken from
    the stream, while the rows arrive with every zone in one run and chain_seq strictly
    increasing in it (a canonical snapshot, read in file order). Then ``lag`` over
    (zone, seq) gives the same rows, so the chain needs no sort. Adds ``pred_seq``,
    ``pred_same`` (the predecessor's content hash equals stored_p) and ``pred_cx`` (that
    hash where it differs). Once the order breaks, ``ordered`` turns False for good and
    the chain is built by sorting, as without it."""

    def __init__(self) -> None:
        self.ordered = True
        self.zone: str | None = None
        self.seq: int | None = None
        self.c: str | None = None
        self.seen: set[str] = set()

    def extend(self, batch: pa.RecordBatch, track: bool = True) -> pa.RecordBatch:
        n = batch.num_rows
        pred_seq = pa.nulls(n, pa.int64())
        pred_c = pa.nulls(n, pa.string())
        if track and self.ordered and n:
            try:
                found = self._preds(batch)
            except (pa.ArrowException, TypeError, ValueError):
                found = None
            if found is None:
                self.ordered = False
            else:
                pred_seq, pred_c = found
        same = pc.fill_null(pc.equal(pred_c, batch.column("stored_p")), False)
        return pa.RecordBatch.from_arrays(
            [*batch.columns, pred_seq, same,
             pc.if_else(same, pa.scalar(None, pa.string()), pred_c)],
            names=[*batch.schema.names, "pred_seq", "pred_same", "pred_cx"],
        )

    def _preds(self, batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array] | None:
        seq = batch.column("seq")
        mask = None
        zone, c = batch.column("zone_id"), batch.column("c")
        if seq.null_count:
            mask = pc.is_valid(seq)
            zone, seq, c = (pc.filter(a, mask) for a in (zone, seq, c))
        m = len(seq)
        if m == 0:
            return pa.nulls(batch.num_rows, pa.int64()), pa.nulls(batch.num_rows, pa.string())
        if zone.null_count or not pa.types.is_string(zone.type) \
                or not pa.types.is_string(c.type) or not pa.types.is_int64(seq.type):
            return None
        prev_zone = pa.concat_arrays([pa.array([self.zone], pa.string()), zone.slice(0, m - 1)])
        prev_seq = pa.concat_arrays([pa.array([self.seq], pa.int64()), seq.slice(0, m - 1)])
        prev_c = pa.concat_arrays([pa.array([self.c], pa.string()), c.slice(0, m - 1)])
        same = pc.fill_null(pc.equal(zone, prev_zone), False)
        if pc.any(pc.and_(same, pc.less_equal(seq, prev_seq))).as_py():
            return None  # a seq repeats or goes back: sort instead
        starts = pc.filter(zone, pc.invert(same)).to_pylist()
        for z in starts:  # every zone in one run
            if z in self.seen:
                return None
            self.seen.add(z)
        self.zone, self.seq, self.c = zone[m - 1].as_py(), seq[m - 1].as_py(), c[m - 1].as_py()
        pred_seq = pc.if_else(same, prev_seq, pa.scalar(None, pa.int64()))
        pred_c = pc.if_else(same, prev_c, pa.scalar(None, pa.string()))
        if mask is not None:
            pred_seq = pc.replace_with_mask(pa.nulls(batch.num_rows, pa.int64()), mask, pred_seq)
            pred_c = pc.replace_with_mask(pa.nulls(batch.num_rows, pa.string()), mask, pred_c)
        return pred_seq, pred_c
