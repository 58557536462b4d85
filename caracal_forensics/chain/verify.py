"""Verify the audit chain of an opened export, zone by zone (FORMAT.md sections 2 and 5).

The work is done by DuckDB so that it runs on every core and spills to disk instead of
growing in memory: one pass recomputes every content hash (and the HMAC of rows that
carry their prev link), one sort per zone and chain_seq finds each row's predecessor,
and only the rows that are wrong (capped per zone and kind) ever reach Python. Hashing
runs in the optional C kernel (``native``) when it was built, else in DuckDB SQL; both
feed the same SQL, so the findings cannot differ. Microsecond recovery for OCSF rows
streams through Python (and the kernel) in batches.

The pipeline, over work tables in a private in-memory database attached for the run:

1. ``files``: source_file -> small integer (rows carry 4 bytes instead of a path).
2. ``rows``: per row the content check (``state``), the content hash the chain uses
   (``c``: the stored one, else the recomputed one) and, for rows whose shape carries
   prev_content_sha256, the HMAC (it needs nothing else).
3. microsecond recovery settles ``state`` of rows whose occurred_at lost precision.
4. ``chain``: per zone in chain_seq order, each row's predecessor (LAG), the gap and link
   checks, and the HMAC of rows without a prev column (chained to the predecessor's
   content hash). When a seq occurs twice, one canonical row per seq is chosen (``rk``).
5. queries over ``rows`` and ``chain`` give findings and zone summaries.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError
from ..keys import coerce_key, key_fingerprint
from ..model import ABSENT_FIELD, HASH_FIELDS, JSONB_FIELDS, PRECISION_FIELD
from . import digest, native
from .digest import Progress
from .report import Finding, Kind, Report
from .summary import (
    NO_EVENTS_DETAIL,
    anchor_heads,
    assemble_report,
    describe_checks,
    in_order,
    no_key_detail,
    unanchored_detail,
)

#: Per zone and kind, at most this many findings are listed; the rest are counted.
MAX_FINDINGS_PER_KIND = 1000
#: DuckDB's memory ceiling while verifying: with Python and Arrow on top, 10,000,000
#: events stay under 1 GiB peak; beyond it DuckDB sorts and tables spill to disk.
MEMORY_LIMIT = "500MB"
#: Rows per batch handed to Python for microsecond recovery.
RECOVERY_BATCH = 4096
#: Rows per batch streamed through the C kernel.
STREAM_BATCH = 32768
#: Transformed rows inserted into a work table at once.
FLUSH_ROWS = 122880


#: The content check of one row (``rows.state``).
OK, COMPUTED, MISMATCH, ABSENT, SKIPPED, PENDING, NO_HASH = range(7)
#: Fields whose absence makes the content hash impossible to recompute.
HASHED = (*HASH_FIELDS, "occurred_at")


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
#: ``_Follow`` took each one's predecessor on the way: no sort.
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


def verify(
    con: duckdb.DuckDBPyConnection,
    *,
    key: bytes | str | None,
    zones: Sequence[str] | None = None,
    anchor: Report | None = None,
    recover_microseconds: bool = True,
    inputs: Iterable[Any] = (),
    progress: Progress | None = None,
    max_findings: int = MAX_FINDINGS_PER_KIND,
) -> Report:
    """Verify the events of ``con``'s view ``events``; never prints, never exits.

    ``key`` is the decoded HMAC key (bytes) or its hex text (str); None checks content
    and links only and reports the HMAC as unverifiable. ``zones`` narrows the work.
    ``anchor`` is an earlier Report whose zone heads must still be there. ``progress``
    is called with (done, total) during microsecond recovery.
    """
    run = _Run(con, coerce_key(key), zones, anchor, max_findings)
    from . import clean

    if clean.ENABLED and native.AVAILABLE:
        from .clean import clean_pass

        report = clean_pass(con, run.key, run.zones, anchor, inputs,
                            recover_microseconds)
        if report is not None:
            return report
    with run:
        run.load()
        run.recover(recover_microseconds, progress)
        run.link()
        return run.report(inputs)


class _Run:
    """One verification: temporary tables on the caller's connection, dropped afterwards."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        key: bytes | None,
        zones: Sequence[str] | None,
        anchor: Report | None,
        max_findings: int,
    ) -> None:
        self.con = con
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
        self.findings: list[Finding] = []
        self.wrong_key: set[str] = set()  # zones where every HMAC fails (a wrong key?)
        self.checks: dict[str, str] = {}
        self._saved_limit: str | None = None
        #: predecessors taken while streaming (the C kernel's path), and the file names
        self.follow: _Follow | None = None
        self.file_names = pa.array([], pa.string())

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> _Run:
        shown = self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        current = _parse_size(shown)
        if current is None or current > _parse_size(MEMORY_LIMIT):
            self._saved_limit = _restorable(shown)
            self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        self.con.execute(f"ATTACH ':memory:' AS {self.db}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.execute(f"DETACH DATABASE IF EXISTS {self.db}")
        if self._saved_limit:
            self.con.execute(f"SET memory_limit = '{self._saved_limit}'")

    def sql(self, query: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run a query with the run's table names filled in (``{rows}`` etc.)."""
        text = query.format(**self.t, src=self.src)
        used = {k: v for k, v in {**self.params, **(params or {})}.items() if f"${k}" in text}
        return self.con.execute(text, used) if used else self.con.execute(text)

    # --- 1-2: rows ----------------------------------------------------------------------

    def load(self) -> None:
        """Number the source files, then recompute every row's content hash in one pass."""
        t = self.t
        zone_filter = ""
        if self.zones is not None:
            self.sql("CREATE TABLE {zones} (zone_id VARCHAR)")
            self.con.executemany(f"INSERT INTO {t['zones']} VALUES (?)", [[z] for z in self.zones])
            zone_filter = f"WHERE zone_id IN (SELECT zone_id FROM {t['zones']})"
        self.sql(
            "CREATE TABLE {files} AS SELECT CAST(row_number() OVER (ORDER BY source_file)"
            " AS INTEGER) AS fid, source_file FROM (SELECT DISTINCT coalesce(source_file, '')"
            f" AS source_file FROM events {zone_filter})"
        )
        hashed = "[" + ", ".join(f"'{name}'" for name in HASHED) + "]"
        jsonb = "[" + ", ".join(f"'{name}'" for name in JSONB_FIELDS) + "]"
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
                      FROM (SELECT * FROM events {zone_filter}) e @join))"""
        self.src = shaped.replace("@fid", "f.fid").replace(
            "@join", f"JOIN {t['files']} f ON coalesce(e.source_file, '') = f.source_file")
        meta = """zone_id, chain_seq AS seq, id, fid, source_line AS line, digits, missing,
                  has_prev, lower(nullif(content_sha256, '')) AS stored_c,
                  lower(nullif(prev_content_sha256, '')) AS stored_p,
                  lower(nullif(chain_hmac, '')) AS stored_h"""
        if native.AVAILABLE:
            # meta already has zone_id and id, which are hashed fields too
            fields = ", ".join(f for f in HASH_FIELDS if f not in ("zone_id", "id"))
            # No join here: the file number comes from a lookup in Arrow, so a scan of a
            # snapshot stored in (zone_id, chain_seq) order arrives in that order, and the
            # predecessors are taken on the way (``_Follow``) instead of sorting later.
            files = self.sql("SELECT source_file FROM {files} ORDER BY fid").fetchall()
            self.file_names = pa.array([name for (name,) in files], pa.string())
            plain = shaped.replace("@fid", "coalesce(e.source_file, '') AS sf").replace(
                "@join", "")
            self.follow = _Follow()
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
        """Stage 1 with the C kernel: calc, c and the self-contained HMAC of one batch.
        The masks are skipped (no copy) when they keep every row, the common case."""
        calc = native.content_hex(batch)
        if not _all_true(batch.column("hashable")):
            calc = pc.if_else(batch.column("hashable"), calc, pa.scalar(None, pa.string()))
        stored_c = batch.column("stored_c")
        if stored_c.null_count == 0:
            c = stored_c
        else:
            c = pc.coalesce(stored_c, pc.if_else(pc.equal(batch.column("missing"), ""), calc,
                                                 pa.scalar(None, pa.string())))
        if self.key is not None:
            hmac = native.hmac_hex(self.key, c, batch.column("stored_p"))
            if not _all_true(batch.column("has_prev")):
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
                     follow: _Follow | None = None, ordered: bool = False) -> None:
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
            self.checks["microseconds"] = (
                f"skipped for {pending} event(s) (--no-recover-microseconds)"
            )
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
                for result in in_order(pool, _recover_batch, reader):
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
        self.checks["microseconds"] = f"recovered for {pending} event(s) with millisecond time"

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
        hmac = native.hmac_hex(self.key, batch.column("c"), batch.column("pred_hash"))
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

    # --- 5: findings and the report ----------------------------------------------------

    def report(self, inputs: Iterable[Any]) -> Report:
        files = dict(self.sql("SELECT fid, source_file FROM {files}").fetchall())
        self.files = files
        zones = self._zone_stats()
        self._content_findings()
        wrong_key = self._wrong_key_zones(zones)
        self._chain_findings(wrong_key)
        self._duplicate_findings()
        self._anchor_findings(zones)
        self._unverifiable_findings(zones)
        self._describe_checks(zones)
        return assemble_report(self.findings, zones, inputs, self.key, self.checks)

    def _source(self, fid: int | None, line: int | None) -> str | None:
        if fid is None:
            return None
        return f"{self.files.get(fid, '?')}:{line}" if line is not None else self.files.get(fid)

    def _add(self, kind: str, zone: str | None, event: str | None, seq: int | None,
             fid: int | None, line: int | None, detail: str) -> None:
        self.findings.append(Finding(kind, zone, event, seq, self._source(fid, line), detail))

    def _more(self, kind: str, zone: str, total: int) -> None:
        """The line that stands for findings beyond the cap."""
        if total > self.cap:
            self._add(kind, zone, None, None, None, None,
                      f"{total - self.cap} more {kind} finding(s) in this zone not listed "
                      f"(first {self.cap} shown)")

    def _details(self, rids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """(event id, file number, line) of a few rows, by rowid in ``rows``."""
        wanted = sorted({r for r in rids if r is not None})
        if not wanted:
            return {}
        found = self.sql(
            "SELECT rowid, id, fid, line FROM {rows} WHERE rowid IN (SELECT unnest($rids))",
            {"rids": wanted},
        ).fetchall()
        return {rid: (event, fid, line) for rid, event, fid, line in found}

    def _zone_stats(self) -> dict[str, dict[str, Any]]:
        """Per zone: events, seq range, head, first row, and how the HMAC checks went."""
        stats: dict[str, dict[str, Any]] = {}
        rows = self.sql(
            """SELECT zone_id, count(*) FILTER (WHERE rk = 1) AS events,
                       min(seq), max(seq), arg_max(c, seq) FILTER (WHERE rk = 1),
                       arg_min(struct_pack(rid, seq, has_prev, pred_from), seq)
                         FILTER (WHERE rk = 1),
                       count(hmac_ok) FILTER (WHERE rk = 1),
                       count(*) FILTER (WHERE rk = 1 AND NOT hmac_ok),
                       count(*) FILTER (WHERE rk = 1 AND has_h AND hmac_ok IS NULL
                                        AND NOT gap AND pred_from IS NOT NULL),
                       arg_min(struct_pack(rid, seq), seq) FILTER (WHERE rk = 1 AND NOT hmac_ok)
                  FROM {chain} GROUP BY zone_id"""
        ).fetchall()
        details = self._details(
            [r[5]["rid"] for r in rows if r[5]] + [r[9]["rid"] for r in rows if r[9]])
        for zone, events, first, last, last_c, head, checked, failed, unchecked, fail1 in rows:
            stats[zone] = {
                "events": events, "first_seq": first, "last_seq": last, "last_c": last_c,
                "first": _located(head, details), "hmac_checked": checked,
                "hmac_failed": failed, "hmac_unchecked": unchecked,
                "first_failure": _located(fail1, details),
            }
        # Events without chain_seq count too, though their order cannot be checked.
        for zone, n in self.sql(
            "SELECT zone_id, count(*) FROM {rows} WHERE seq IS NULL GROUP BY zone_id"
        ).fetchall():
            entry = stats.setdefault(zone, {
                "events": 0, "first_seq": None, "last_seq": None, "last_c": None,
                "first": None, "hmac_checked": 0, "hmac_failed": 0, "hmac_unchecked": 0,
                "first_failure": None,
            })
            entry["events"] += n
            entry["no_seq"] = n
        return stats

    def _content_findings(self) -> None:
        rows = self.sql(
            """SELECT zone_id, id, seq, fid, line, digits, c, calc_c,
                      count(*) OVER (PARTITION BY zone_id) AS total
                 FROM {rows} WHERE state = $mismatch
              QUALIFY row_number() OVER (PARTITION BY zone_id ORDER BY seq, fid, line) <= $cap""",
            {"mismatch": MISMATCH, "cap": self.cap},
        ).fetchall()
        totals = {}
        for zone, event, seq, fid, line, digits, stored, calc, total in rows:
            totals[zone] = total
            if digits < 6:
                detail = (
                    f"no occurred_at within the stored {'milli' if digits == 3 else 'coarse'}"
                    f"second reproduces content_sha256 {stored}: a hashed field was altered"
                )
            else:
                detail = (
                    f"stored content_sha256 {stored}, recomputed {calc}: a hashed field "
                    "was altered after the event was chained"
                )
            self._add(Kind.CONTENT_MISMATCH, zone, event, seq, fid, line, detail)
        for zone, total in totals.items():
            self._more(Kind.CONTENT_MISMATCH, zone, total)

    def _wrong_key_zones(self, zones: dict[str, dict[str, Any]]) -> set[str]:
        """Zones where every HMAC checked fails: one finding saying the key is probably wrong.

        Their HMACs say nothing more, but gaps, broken links and differing copies still
        do: the later steps leave out only the HMAC results of these zones."""
        wrong = self.wrong_key
        for zone, z in zones.items():
            if z["hmac_checked"] >= 2 and z["hmac_failed"] == z["hmac_checked"]:
                wrong.add(zone)
                first = z["first_failure"]
                self._add(
                    Kind.HMAC_MISMATCH, zone, first["id"], first["seq"], first["fid"],
                    first["line"],
                    f"all {z['hmac_checked']} chain_hmac values checked in this zone fail: "
                    f"the key is probably wrong (key {key_fingerprint(self.key)}), "
                    "or every event was re-chained without the key",
                )
        return wrong

    def _chain_findings(self, wrong_key: set[str]) -> None:
        """Gaps, broken links and failed HMACs of canonical rows, each blamed where it starts.

        A forged or edited event also breaks what follows it: the next event's stored prev
        (or, without a prev column, its HMAC) no longer matches. When the next event's own
        HMAC proves its link authentic, or its HMAC check depends on the failed one, that
        consequence is folded into the one finding at the forged event.
        """
        rows = self.sql(
            f"""WITH c AS (SELECT * REPLACE (CASE WHEN list_contains($wrong, zone_id)
                                              THEN NULL ELSE hmac_ok END AS hmac_ok)
                           FROM {{chain}} WHERE rk = 1),
               failed AS (SELECT zone_id, seq FROM c WHERE hmac_ok = false),
               flagged AS (
                 SELECT c.*, f.seq IS NOT NULL AS pred_failed
                   FROM c LEFT JOIN failed f ON f.zone_id = c.zone_id AND f.seq = c.seq - 1
                  WHERE c.gap OR c.link_ok = false OR c.hmac_ok = false),
               succ AS (
                 SELECT zone_id, seq - 1 AS seq, any_value(stored_p) AS chained_to,
                        bool_or(NOT has_prev) AS succ_fails
                   FROM flagged
                  WHERE pred_failed AND ((link_ok = false AND hmac_ok)
                                          OR (NOT has_prev AND hmac_ok = false))
                  GROUP BY ALL),
               out AS (
                 SELECT 'sequence_gap' AS kind, rid, zone_id, seq, has_prev, pred_seq,
                        NULL AS a, NULL AS b, NULL AS succ_fails
                   FROM flagged WHERE gap
                 UNION ALL
                 SELECT 'chain_break', rid, zone_id, seq, has_prev, pred_seq, stored_p,
                        pred_hash, pred_from
                   FROM flagged WHERE link_ok = false AND NOT (hmac_ok AND pred_failed)
                 UNION ALL
                 SELECT 'hmac_mismatch', rid, f.zone_id, f.seq, has_prev, pred_seq, NULL,
                        s.chained_to, coalesce(s.succ_fails, false)
                   FROM flagged f LEFT JOIN succ s ON s.zone_id = f.zone_id AND s.seq = f.seq
                  WHERE hmac_ok = false AND NOT (NOT has_prev AND pred_failed)),
               listed AS (
                 SELECT *, count(*) OVER (PARTITION BY zone_id, kind) AS total FROM out
                 QUALIFY row_number() OVER (PARTITION BY zone_id, kind ORDER BY seq, rid)
                         <= $cap)
            SELECT l.kind, l.zone_id, r.id, l.seq, r.fid, r.line, l.has_prev, l.pred_seq,
                   CASE WHEN l.kind = 'hmac_mismatch' AND r.state = {COMPUTED}
                        THEN 'computed' ELSE l.a END,
                   l.b, l.succ_fails, l.total
              FROM listed l JOIN {{rows}} r ON r.rowid = l.rid""",
            {"wrong": sorted(wrong_key), "cap": self.cap},
        ).fetchall()
        totals: dict[tuple[str, str], int] = {}
        for (kind, zone, event, seq, fid, line, has_prev, pred_seq, a, b, c, total) in rows:
            totals[(zone, kind)] = total
            self._add(kind, zone, event, seq, fid, line,
                      _chain_detail(kind, seq, has_prev, pred_seq, a, b, c))
        for (zone, kind), total in totals.items():
            self._more(kind, zone, total)

    def _duplicate_findings(self) -> None:
        """Rows sharing a (zone, seq) with the canonical row, and ids seen at several seqs."""
        if self.repeated_seqs:
            self._second_versions()
        # The same id at more than one seq of a zone (a replayed or re-inserted event).
        # Grouping by a 64-bit hash first is far cheaper than by two strings; the exact
        # grouping then runs on the few candidates only (a collision merely adds one).
        rows = self.sql(
            """WITH maybe AS (
                 SELECT hash(zone_id, id) AS h FROM {rows} WHERE seq IS NOT NULL
                  GROUP BY h HAVING min(seq) <> max(seq)),
               ids AS (
                 SELECT zone_id, id, min(seq) AS first_seq FROM {rows}
                  WHERE seq IS NOT NULL AND hash(zone_id, id) IN (SELECT h FROM maybe)
                  GROUP BY zone_id, id HAVING min(seq) <> max(seq))
            SELECT r.zone_id, r.id, r.seq, r.fid, r.line, ids.first_seq,
                   count(*) OVER (PARTITION BY r.zone_id)
              FROM {rows} r JOIN ids ON r.zone_id = ids.zone_id AND r.id = ids.id
             WHERE r.seq > ids.first_seq
            QUALIFY row_number() OVER (PARTITION BY r.zone_id, r.id, r.seq
                                       ORDER BY r.fid, r.line) = 1"""
        ).fetchall()
        rows.sort(key=lambda r: (r[0], r[2]))
        per_zone: dict[str, int] = defaultdict(int)
        for zone, event, seq, fid, line, first_seq, _ in rows:
            per_zone[zone] += 1
            if per_zone[zone] <= self.cap:
                self._add(Kind.CONFLICTING_DUPLICATE, zone, event, seq, fid, line,
                          f"event id {event} already appears at seq {first_seq}")
        for zone, total in per_zone.items():
            self._more(Kind.CONFLICTING_DUPLICATE, zone, total)

    def _second_versions(self) -> None:
        """Rows that lost the (zone, seq) to the canonical one: copies or conflicts."""
        key = self.key is not None
        hmac_x = digest.chain_hmac_sql("x.c", "k.pred_hash") + " = xr.full_h" if key else "NULL"
        # rows keeps stored_h only where it is needed later; these few rows read it again
        self.sql(
            f"""CREATE TABLE {{x}} AS
            WITH x AS (SELECT * FROM {{chain}} WHERE rk > 1),
                 k AS (SELECT * FROM {{chain}} WHERE rk = 1
                        AND (zone_id, seq) IN (SELECT (zone_id, seq) FROM x)),
                 h AS (SELECT fid, source_line AS line,
                              any_value(lower(nullif(chain_hmac, ''))) AS stored_h
                         FROM {{src}}
                        WHERE (fid, source_line) IN (
                              SELECT (r.fid, r.line) FROM {{rows}} r
                               WHERE r.rowid IN (SELECT rid FROM x UNION SELECT rid FROM k))
                        GROUP BY ALL),
                 xr AS (SELECT r.rowid AS rid, r.*, h.stored_h AS full_h FROM {{rows}} r
                          LEFT JOIN h ON h.fid = r.fid AND h.line = r.line
                         WHERE r.rowid IN (SELECT rid FROM x UNION SELECT rid FROM k))
            SELECT x.zone_id, x.seq, xr.id, xr.fid, xr.line, kr.id AS k_id, kr.fid AS k_fid,
                   kr.line AS k_line, xr.id = kr.id AS same_id,
                   x.c IS NOT DISTINCT FROM k.c AS same_c,
                   xr.full_h IS NOT DISTINCT FROM kr.full_h AS same_h,
                   CASE WHEN list_contains($wrong, x.zone_id) THEN NULL
                        WHEN x.has_prev THEN x.hmac_ok
                        WHEN xr.full_h IS NOT NULL AND x.c IS NOT NULL
                             AND k.pred_hash IS NOT NULL THEN {hmac_x} END AS hmac_ok,
                   CASE WHEN x.has_prev AND k.pred_hash IS NOT NULL
                        THEN coalesce(x.stored_p, '') = k.pred_hash END AS link_ok,
                   x.stored_p AS stored_p, k.pred_hash AS pred_hash
              FROM x JOIN k ON x.zone_id = k.zone_id AND x.seq = k.seq
              JOIN xr ON xr.rid = x.rid
              JOIN xr kr ON kr.rid = k.rid""",
            {"wrong": sorted(self.wrong_key)},
        )
        self.sql("ALTER TABLE {x} ADD COLUMN exact BOOLEAN")
        self.sql("UPDATE {x} SET exact = same_id AND same_c AND same_h AND hmac_ok IS NOT false "
                 "AND link_ok IS NOT false")
        rows = self.sql(
            """WITH out AS (
                 SELECT CASE WHEN exact THEN 'duplicate_event' ELSE 'conflicting_duplicate' END
                          AS kind, * FROM {x}
                 UNION ALL
                 SELECT 'hmac_mismatch', * FROM {x} WHERE NOT exact AND hmac_ok = false
                 UNION ALL
                 SELECT 'chain_break', * FROM {x} WHERE NOT exact AND link_ok = false)
            SELECT kind, zone_id, seq, id, fid, line, k_id, k_fid, k_line, same_id, same_c,
                   same_h, stored_p, pred_hash, count(*) OVER (PARTITION BY zone_id, kind)
              FROM out
            QUALIFY row_number() OVER (PARTITION BY zone_id, kind ORDER BY seq, fid, line)
                    <= $cap""",
            {"cap": self.cap},
        ).fetchall()
        totals: dict[tuple[str, str], int] = {}
        for (kind, zone, seq, event, fid, line, k_id, k_fid, k_line, same_id, same_c, same_h,
             stored_p, pred_hash, total) in rows:
            totals[(zone, kind)] = total
            other = self._source(k_fid, k_line)
            if kind == Kind.DUPLICATE_EVENT:
                detail = f"exact copy of the event at {other}; counted once"
            elif kind == Kind.CONFLICTING_DUPLICATE:
                differs = [name for name, same in (("id", same_id), ("content", same_c),
                                                   ("chain_hmac", same_h)) if not same]
                if not differs:
                    differs = ["prev_content_sha256"]
                detail = (f"seq {seq} also at {other} (event {k_id}) with a different "
                          f"{', '.join(differs)}")
            elif kind == Kind.HMAC_MISMATCH:
                detail = "chain_hmac of this second version of the seq does not match"
            else:
                detail = (f"prev_content_sha256 {stored_p or '(empty)'} but the predecessor "
                          f"has content_sha256 {pred_hash or '(none)'}")
            self._add(kind, zone, event, seq, fid, line, detail)
        for (zone, kind), total in totals.items():
            self._more(kind, zone, total)

    def _anchor_findings(self, zones: dict[str, dict[str, Any]]) -> None:
        """Heads from the anchor must still be there; zones starting late need an anchor."""
        for zone, z in zones.items():
            first = z["first"]
            if first is None or first["seq"] <= 1:
                continue
            head = self.heads.get(zone)
            if head is None:
                self._add(Kind.UNANCHORED_START, zone, first["id"], first["seq"], first["fid"],
                          first["line"], unanchored_detail(first["seq"], first["has_prev"]))
            elif first["seq"] > head.last_seq + 1:
                self._add(Kind.SEQUENCE_GAP, zone, first["id"], first["seq"], first["fid"],
                          first["line"],
                          f"the anchor ends at seq {head.last_seq} and this export starts "
                          f"at seq {first['seq']}: {_missing(head.last_seq, first['seq'])}")
        if not self.heads:
            return
        present = self.sql(
            """SELECT a.zone_id, c.rid, c.seq, c.c
                 FROM {anchor} a JOIN {chain} c ON c.zone_id = a.zone_id
                  AND c.seq = a.last_seq AND c.rk = 1"""
        ).fetchall()
        details = self._details(row[1] for row in present)
        at_head = {zone: (zone, *details[rid][:1], seq, *details[rid][1:], c)
                   for zone, rid, seq, c in present}
        for zone, head in sorted(self.heads.items()):
            z = zones.get(zone)
            if z is None or z["last_seq"] is None:
                self._add(Kind.TRUNCATED, zone, None, head.last_seq, None, None,
                          f"the anchor saw this zone up to seq {head.last_seq}; the export "
                          "holds none of its events")
                continue
            if z["last_seq"] < head.last_seq:
                rid = self.sql(
                    "SELECT rid FROM {chain} WHERE rk = 1 AND zone_id = $z AND seq = $s",
                    {"z": zone, "s": z["last_seq"]},
                ).fetchall()[0][0]
                event, fid, line = self._details([rid])[rid]
                last = (event, z["last_seq"], fid, line)
                self._add(Kind.TRUNCATED, zone, last[0], last[1], last[2], last[3],
                          f"the export ends at seq {z['last_seq']} but the anchor saw the "
                          f"zone up to seq {head.last_seq}: "
                          f"{_missing(z['last_seq'], head.last_seq + 1)} from the tail")
            row = at_head.get(zone)
            if row is not None and head.last_content_sha256 and row[5] != head.last_content_sha256:
                self._add(Kind.ANCHOR_MISMATCH, zone, row[1], row[2], row[3], row[4],
                          f"content_sha256 {row[5]} at seq {head.last_seq}, but the anchor "
                          f"recorded {head.last_content_sha256}")

    def _unverifiable_findings(self, zones: dict[str, dict[str, Any]]) -> None:
        """What could not be checked, once per zone and reason (never once per event)."""
        for zone in sorted(set(self.zones or ()) - set(zones)):
            if zone not in self.heads:
                self._add(Kind.UNVERIFIABLE, zone, None, None, None, None, NO_EVENTS_DETAIL)
        counts = self.sql(
            f"""SELECT zone_id, state, missing, count(*),
                       count(*) FILTER (WHERE NOT has_h),
                       arg_min(struct_pack(id, seq, fid, line), coalesce(seq, 0))
                  FROM {{rows}}
                 WHERE state IN ({ABSENT}, {SKIPPED}, {NO_HASH}, {COMPUTED}) OR NOT has_h
                 GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
        no_hmac: dict[str, int] = defaultdict(int)
        unproven: dict[str, int] = defaultdict(int)
        for zone, state, missing, n, n_no_hmac, first in counts:
            no_hmac[zone] += n_no_hmac
            at = (first["id"], first["seq"], first["fid"], first["line"])
            if state == ABSENT:
                self._add(Kind.UNVERIFIABLE, zone, *at,
                          f"{n} event(s) lack {missing} (the export shape does not carry "
                          "it): their content hash cannot be recomputed")
            elif state == SKIPPED:
                self._add(Kind.UNVERIFIABLE, zone, *at,
                          f"{n} event(s) have occurred_at in milliseconds and microsecond "
                          "recovery was skipped: their content is unproven (the HMAC still "
                          "checks the stored content hash)")
            elif state == NO_HASH:
                self._add(Kind.UNVERIFIABLE, zone, *at,
                          f"{n} event(s) have occurred_at in milliseconds and no stored "
                          "content_sha256: their content cannot be recomputed")
            elif state == COMPUTED:
                unproven[zone] += n
        for zone, z in sorted(zones.items()):
            if self.key is None:
                self._add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                          no_key_detail(unproven.get(zone, 0)))
            else:
                if no_hmac.get(zone):
                    self._add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                              f"{no_hmac[zone]} event(s) carry no chain_hmac")
                if z["hmac_unchecked"]:
                    self._add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                              f"{z['hmac_unchecked']} HMAC(s) not checked: the content hash "
                              "of the event or of its predecessor is unknown")
            if z.get("no_seq"):
                self._add(Kind.UNVERIFIABLE, zone, None, None, None, None,
                          f"{z['no_seq']} event(s) carry no chain_seq: their order, gaps and "
                          "links (and their HMAC, without a prev column) are unchecked")

    def _describe_checks(self, zones: dict[str, dict[str, Any]]) -> None:
        states = dict(self.sql("SELECT state, count(*) FROM {rows} GROUP BY state").fetchall())
        self.checks = describe_checks(
            self.checks,
            proven=states.get(OK, 0) + states.get(MISMATCH, 0),
            total=sum(states.values()),
            key=self.key,
            hmac_checked=sum(z["hmac_checked"] for z in zones.values()),
            heads=len(self.heads),
            anchor=self.anchor,
        )


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _parse_size(text: str) -> float | None:
    """Bytes of a DuckDB size setting such as ``1.8 GiB`` or ``600MB``; None if unlimited."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def _restorable(shown: str) -> str:
    """The shown limit, nudged up by half its last digit: DuckDB prints it rounded down,
    so setting the printed text back would shrink the limit a little on every run."""
    match = re.fullmatch(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]+)\s*", shown)
    if not match:
        return shown
    decimals = len(match.group(2) or "")
    value = float(f"{match.group(1)}.{match.group(2) or 0}") + 0.5 * 10**-decimals
    return f"{value:.{decimals + 1}f} {match.group(3)}"


def _located(head: dict | None, details: dict[int, tuple[str, int, int]]) -> dict | None:
    """A zone's first (or first failing) row with its event id, file and line."""
    if head is None:
        return None
    event, fid, line = details[head["rid"]]
    return {**head, "id": event, "fid": fid, "line": line}


def _missing(after: int, before: int) -> str:
    """Human text for the seqs strictly between ``after`` and ``before``."""
    n = before - after - 1
    if n == 1:
        return f"seq {after + 1} is missing"
    return f"seq {after + 1}..{before - 1} are missing ({n} events)"


def _chain_detail(kind: str, seq: int, has_prev: bool, pred_seq: int | None,
                  a: Any, b: Any, c: Any) -> str:
    if kind == Kind.SEQUENCE_GAP:
        text = _missing(pred_seq, seq) + " before this event"
        if not has_prev:
            text += "; its HMAC cannot be checked without its predecessor"
        return text
    if kind == Kind.CHAIN_BREAK:
        stored, expected, pred_from = a, b, c
        if pred_from == "start":
            return f"first event of the zone, but prev_content_sha256 is {stored}"
        where = "the anchor's head" if pred_from == "anchor" else f"seq {seq - 1}"
        return (f"prev_content_sha256 {stored or '(empty)'} but {where} has content_sha256 "
                f"{expected}")
    # hmac_mismatch
    computed, chained_to, succ_fails = a, b, c
    if computed:
        text = ("chain_hmac does not match the HMAC of the recomputed content hash (the "
                "export carries none): a hashed field or chain_hmac was altered")
    elif has_prev:
        text = ("chain_hmac does not match HMAC(content_sha256|prev_content_sha256): the "
                "row was forged or re-hashed without the key")
    else:
        text = (f"chain_hmac does not match HMAC(content_sha256|content of seq {seq - 1}): "
                "the row was forged or re-hashed without the key")
    if chained_to:
        text += f"; seq {seq + 1} is authentically chained to content_sha256 {chained_to}"
    elif succ_fails:
        text += f"; the HMAC of seq {seq + 1}, chained to this event, fails with it"
    return text


def _recover_batch(batch: pa.RecordBatch) -> pa.Table:
    """Microsecond recovery for one batch: (fid, line, recovered epoch micros or NULL)."""
    recover = _native_recover if native.AVAILABLE else digest.recover_micros
    heads = batch.column("head").to_pylist()
    micros = batch.column("micros").to_pylist()
    digits = batch.column("digits").to_pylist()
    targets = batch.column("target").to_pylist()
    found = [
        recover(h.encode("utf-8"), us, d, t)
        for h, us, d, t in zip(heads, micros, digits, targets, strict=True)
    ]
    return pa.table({"fid": batch.column("fid"), "line": batch.column("line"),
                     "micros": pa.array(found, pa.int64())})


def _native_recover(head: bytes, occurred_us: int, digits: int, target: str) -> int | None:
    """digest.recover_micros with the candidate loop in C (same contract, same results)."""
    width = 6 - digits
    step = 10**width
    base = occurred_us - occurred_us % step
    if width <= 0 or base <= 0 or width > 6:
        return digest.recover_micros(head, occurred_us, digits, target)
    try:
        want = bytes.fromhex(target)
    except ValueError:
        return None
    if len(want) != 32:
        return None
    k = native.recover_suffix(head + str(base // step).encode("ascii"), want, width)
    return None if k is None else base + k


class _Follow:
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


def _all_true(mask: pa.Array) -> bool:
    """Whether a boolean array holds true in every row (no NULL, no false)."""
    return mask.null_count == 0 and (len(mask) == 0 or pc.all(mask).as_py() is True)


# --- --show-preimage ------------------------------------------------------------------

VISIBLE_US = "\u241f"  # ␟ SYMBOL FOR UNIT SEPARATOR


def show_preimage(con: duckdb.DuckDBPyConnection, event_id: str) -> str:
    """The exact bytes hashed for ``event_id`` (every row carrying it), separators visible.

    For a row with millisecond occurred_at the microseconds are recovered first when the
    stored content hash allows it.
    """
    table = con.sql(
        "SELECT * FROM events WHERE id = $id ORDER BY source_file, source_line",
        params={"id": event_id},
    ).to_arrow_table()
    if table.num_rows == 0:
        raise NotFoundError(f"no event with id {event_id!r} in the export")
    blocks = []
    for row in table.to_pylist():
        where = f"{row['source_file']}:{row['source_line']}"
        # audit data is attacker-influenced: no raw control characters reach a terminal
        lines = [_visible(f"event {event_id} (zone {row['zone_id']}, seq {row['chain_seq']}) "
                          f"from {where} [{row['source_shape']}]")]
        absent = [n for n in (row.get(ABSENT_FIELD) or "").split(",") if n in HASHED]
        if absent:
            lines.append(f"cannot build the preimage: {', '.join(absent)} absent from the export")
            blocks.append("\n".join(lines))
            continue
        head = digest.preimage_head(row)
        micros = digest.occurred_at_micros(row["occurred_at"])
        digits = row.get(PRECISION_FIELD) or 6
        if digits < 6:
            stored = (row.get("content_sha256") or "").lower()
            found = digest.recover_micros(head, micros, digits, stored) if stored else None
            if found is None:
                lines.append(f"occurred_at has {digits} fractional digits and no microsecond "
                             "value reproduces the stored content hash; showing .000")
            else:
                lines.append(f"occurred_at microseconds recovered: {found % 1_000_000:06d}")
                micros = found
        preimage = head + str(micros * 1000).encode("ascii")
        lines.append(f"content_sha256 recomputed: {digest.sha256_hex(preimage)}")
        if row.get("content_sha256"):
            lines.append(_visible(f"content_sha256 stored:     {row['content_sha256']}"))
        lines.append(f"preimage ({len(preimage)} bytes, {VISIBLE_US} = 0x1F):")
        lines.append(_visible(preimage.decode("utf-8")))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _visible(text: str) -> str:
    """Show 0x1F as ␟, other control characters as \\xNN, line separators as \\uNNNN."""
    out = []
    for ch in text:
        if ch == "\x1f":
            out.append(VISIBLE_US)
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
