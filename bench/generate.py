"""A fast generator of N chained audit events, exported in every shape the benchmark reads.

    .venv/bin/python bench/generate.py [--events N] [--out bench/out] [--big] [--force]

Everything is computed in DuckDB SQL, vectorised: every field of event ``i`` is a pure
function of ``i`` and the seed (``hash()``), the content hash is DuckDB's ``sha256()`` over
the 0x1F-joined preimage (FORMAT.md section 2), the chain is a window function per zone
(``lag(content)`` in chain order), and the HMAC is ``sha256(opad || unhex(sha256(ipad ||
msg)))`` with the key's RFC 2104 pads bound as BLOBs. Events are made in chunks of
``CHUNK`` rows with the per-zone head carried from chunk to chunk, so 10,000,000 events
need no more memory than 1,000,000.

Structure: events come in slots of 4 consecutive events; a slot is either four
single-event requests (token_exchange allow/deny, control.invoke), one step-up request
(deny, deny, allow, allow), a challenge burst (3 denies) plus a single, or a replayed JTI
(allow, replay_detected, jti_collision) plus a single. About a quarter of the events deny.
Requests are spread over 4 zones and 400 principals; 20% of metadata carries "ugly" values
(control characters, non-ASCII, quotes and commas, HTML, decimals like 1.50, nesting).

Outputs, under ``<out>/n<N>/``:

- ``db.csv``        COPY audit_events TO ... CSV HEADER (PostgreSQL's quoting and timestamps)
- ``db.jsonl``      row_to_json(audit_events) per line, jsonb nested verbatim
- ``cli.jsonl``     caracal audit tail --json lines (the seed's layout: ``"key" : value``)
- ``ocsf/audit/YYYY/MM/DD/YYYY-MM-DDTHH.parquet``  hourly OCSF files by ingested_at
- ``snapshot/``     a canonical snapshot written by ``caracal-forensics ingest`` from db.csv
- ``key.hex``, ``meta.json`` (what was generated, sample ids, timings, checks)

With ``--big`` (10,000,000 events by default) only ``snapshot/`` is written, straight as a
canonical snapshot (sorted zstd Parquet + manifest, as ``ingest`` writes it), plus
``cli.jsonl`` when ``--big-jsonl`` is given (for a real jq comparison at that size).

Correctness: a sample of rows is recomputed with the library's reference digest
(caracal_forensics.chain.digest) and Python's hmac, every jsonb text must be its own
``jsonb_text`` (a fixed point), and sample lines of every text shape are compared byte
for byte with what the reference generator (fixtures/make_fixtures.py) prints for the
same events. Any difference stops the generator.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import duckdb
import pyarrow as pa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

#: Bump when the generated data changes: cached outputs of another version are rebuilt.
GENERATOR_VERSION = 3
SEED = 20260511
KEY_HEX = "5be0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9e"
START_US = 1_778_486_400_000_000  # 2026-05-11T08:00:00Z
#: Mean microseconds between consecutive events: 1,000,000 events span 48 hours.
INTERVAL_US = 172_800
CHUNK = int(os.environ.get("BENCH_GEN_CHUNK", 1_000_000))
PRINCIPALS = 400
#: The principal the selective filters look for (about 1/400 of the events).
PRINCIPAL = "app-0007"

COLUMNS = [
    "id", "zone_id", "event_type", "request_id", "decision", "policy_set_id",
    "policy_set_version_id", "manifest_sha", "evaluation_status", "determining_policies_json",
    "diagnostics_json", "metadata_json", "occurred_at", "ingested_at", "content_sha256",
    "prev_content_sha256", "chain_hmac", "chain_seq", "ingest_signature",
]
TEXT = COLUMNS[:9]
JSONB = COLUMNS[9:12]

MANIFEST_1 = "sha256:" + hashlib.sha256(b"psv-001").hexdigest()
MANIFEST_2A = "sha256:" + hashlib.sha256(b"psv-002").hexdigest()
MANIFEST_2B = "sha256:" + hashlib.sha256(b"psv-002 redeployed").hexdigest()
MANIFEST_3 = "sha256:" + hashlib.sha256(b"psv-003").hexdigest()

#: Metadata keys that sort before "trace_id" (jsonb: shorter keys first), prepended to 20%
#: of the metadata objects. Each is already jsonb text (checked at run time).
UGLY = [
    '"note": "tab\\tnewline\\nbell\\u0007 del\x7f", ',
    '"note": "caf\u00e9 \u2615 \U0001f600 \u65e5\u672c \u2028", ',
    '"note": "comma, \\"quoted\\" text", ',
    '"note": "</script><img src=x onerror=alert(1)>", "risk": 1.50, ',
    '"risk": 15.0, "ratio": 0.002, ',
    '"nested": {"": "empty key", "B": false, "z": [1.0, {"x": true, "y": null}]}, ',
]


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def event_sql(first: int, last: int, seed: int = SEED) -> str:
    """SQL for events [first, last): every column, before chaining, plus helper columns."""
    ugly = "[" + ", ".join(_sql_str(u) for u in UGLY) + "]"
    return f"""
WITH b AS (
  SELECT i, i // 4 AS slot, CAST(i % 4 AS INTEGER) AS p FROM range({first}, {last}) t(i)
), s AS (
  SELECT *, CASE WHEN hash(slot, 1, {seed}) % 100 < 75 THEN 'singles'
                 WHEN hash(slot, 1, {seed}) % 100 < 89 THEN 'stepup'
                 WHEN hash(slot, 1, {seed}) % 100 < 93 THEN 'burst'
                 ELSE 'replay' END AS slot_type
    FROM b
), r AS (
  SELECT *,
         CASE WHEN slot_type = 'singles' THEN p
              WHEN slot_type = 'stepup' THEN 0
              WHEN p < 3 THEN 0 ELSE 3 END AS sub,
         CASE WHEN slot_type = 'singles' OR (slot_type <> 'stepup' AND p = 3) THEN 0
              ELSE p END AS pos
    FROM s
), q AS (
  SELECT *, slot * 4 + sub AS rk,
         CASE WHEN slot_type = 'stepup' THEN 'stepup'
              WHEN slot_type IN ('burst', 'replay') AND p < 3 THEN slot_type
              WHEN hash(slot * 4 + sub, 4, {seed}) % 100 < 69 THEN 'te_allow'
              WHEN hash(slot * 4 + sub, 4, {seed}) % 100 < 85 THEN 'te_deny'
              ELSE 'control' END AS kind
    FROM r
), k AS (
  SELECT *,
         CASE WHEN hash(rk, 1, {seed}) % 100 < 40 THEN 'zone-alpha'
              WHEN hash(rk, 1, {seed}) % 100 < 70 THEN 'zone:prod/eu-1'
              WHEN hash(rk, 1, {seed}) % 100 < 90 THEN 'zone-beta'
              ELSE 'zone-gamma' END AS zone_id,
         'app-' || lpad(CAST(hash(rk, 2, {seed}) % {PRINCIPALS} + 1 AS VARCHAR), 4, '0')
           AS principal,
         CASE hash(rk, 3, {seed}) % 4 WHEN 0 THEN 'psv-001' WHEN 1 THEN 'psv-001'
              WHEN 2 THEN 'psv-002' ELSE 'psv-003' END AS version,
         CASE WHEN hash(rk, 5, {seed}) % 2 = 0 THEN 'mfa' ELSE 'webauthn' END AS method,
         md5('r' || CAST(rk AS VARCHAR) || '-{seed}') AS rhash,
         md5('e' || CAST(i AS VARCHAR) || '-{seed}') AS ehash
    FROM q
), e AS (
  SELECT i, zone_id, pos, principal, rhash,
         substr(ehash, 1, 8) || '-' || substr(ehash, 9, 4) || '-4' || substr(ehash, 14, 3)
           || '-a' || substr(ehash, 18, 3) || '-' || substr(ehash, 21, 12) AS id,
         CASE kind
           WHEN 'te_allow' THEN 'token_exchange' WHEN 'te_deny' THEN 'token_exchange'
           WHEN 'control' THEN 'control.invoke'
           WHEN 'stepup' THEN ['token_exchange', 'step_up_issued', 'step_up_decided',
                               'step_up_consumed'][pos + 1]
           WHEN 'burst' THEN ['challenge_invalid', 'challenge_invalid',
                              'challenge_cooldown'][pos + 1]
           ELSE ['token_exchange', 'replay_detected', 'jti_collision'][pos + 1]
         END AS event_type,
         CASE WHEN kind = 'control' THEN NULL ELSE 'req-' || substr(rhash, 1, 20) END
           AS request_id,
         CASE kind
           WHEN 'te_allow' THEN 'allow' WHEN 'te_deny' THEN 'deny' WHEN 'control' THEN NULL
           WHEN 'stepup' THEN CASE WHEN pos < 2 THEN 'deny' ELSE 'allow' END
           WHEN 'burst' THEN 'deny'
           ELSE CASE WHEN pos = 0 THEN 'allow' ELSE 'deny' END
         END AS decision,
         'ps-payments' AS policy_set_id,
         version AS policy_set_version_id,
         CASE version WHEN 'psv-001' THEN '{MANIFEST_1}' WHEN 'psv-003' THEN '{MANIFEST_3}'
              ELSE CASE WHEN hash(i, 6, {seed}) % 3 = 0 THEN '{MANIFEST_2B}'
                        ELSE '{MANIFEST_2A}' END END AS manifest_sha,
         CASE WHEN hash(i, 5, {seed}) % 100 < 90 THEN 'complete'
              WHEN hash(i, 5, {seed}) % 100 < 95 THEN 'upstream_error'
              ELSE 'anomaly' END AS evaluation_status,
         kind, method
    FROM k
), f AS (
  SELECT *,
         CASE WHEN decision = 'deny' AND kind = 'stepup'
                THEN '[{{"policy": "payments-policy"}}, {{"policy": "step-up-required"}}]'
              WHEN decision = 'deny' THEN '[{{"policy": "payments-policy"}}]'
              WHEN decision = 'allow' THEN '[{{"policy": "baseline-resource-scope"}}]'
         END AS determining_policies_json,
         CASE kind
           WHEN 'te_allow' THEN '[]'
           WHEN 'te_deny'
             THEN '[{{"reason": "scope_not_allowed", "scopes": ["payments:write"]}}]'
           WHEN 'control' THEN NULL
           WHEN 'stepup' THEN CASE pos
             WHEN 0 THEN '[{{"step_up_required": "' || method || '"}}]'
             WHEN 1 THEN '[{{"step_up_required": "' || method || '"}}, {{"risk": 0.87}}]'
             ELSE '[]' END
           WHEN 'burst' THEN CASE pos
             WHEN 0 THEN '[{{"attempt": 1}}]' WHEN 1 THEN '[{{"attempt": 2}}]'
             ELSE '[{{"cooldown_s": 30}}]' END
           ELSE CASE pos WHEN 2 THEN '[{{"jti": "jti-' || substr(rhash, 21, 12) || '"}}]'
                ELSE '[]' END
         END AS diagnostics_json,
         '{{' ||
           CASE WHEN hash(i, 7, {seed}) % 100 < 20
                THEN {ugly}[CAST(hash(i, 8, {seed}) % {len(UGLY)} AS INTEGER) + 1]
                ELSE '' END ||
           '"trace_id": "' || md5('t' || rhash) || '", ' ||
           '"latency_ms": ' || ['3', '0.75', '12.50', '10', '250', '1.5'][
               CAST(hash(i, 9, {seed}) % 6 AS INTEGER) + 1] || ', ' ||
           '"session_id": "sess-' || substr(rhash, 1, 12) || '", ' ||
           '"resource_id": "res-' ||
             lpad(CAST(hash(i, 10, {seed}) % 300 + 1 AS VARCHAR), 3, '0') || '", ' ||
           '"principal_id": "' || principal || '", ' ||
           CASE WHEN hash(rhash, 11, {seed}) % 10 < 3
                THEN '"agent_session_id": "ags-' || substr(rhash, 13, 8) || '", '
                ELSE '' END ||
           '"requested_scopes": ' || ['["payments:read"]', '["payments:read", "payments:write"]',
                                      '["ledger:admin"]'][
               CAST(hash(rhash, 12, {seed}) % 3 AS INTEGER) + 1] ||
         '}}' AS metadata_json,
         {START_US} + i * {INTERVAL_US} + CAST(hash(i, 13, {seed}) % {INTERVAL_US} AS BIGINT)
           - CASE WHEN hash(i, 14, {seed}) % 100 < 5
                  THEN 5000000 + CAST(hash(i, 15, {seed}) % 15000000 AS BIGINT) ELSE 0 END
           AS occ_raw
    FROM e
)
SELECT i, id, zone_id, event_type, request_id, decision, policy_set_id,
       policy_set_version_id, manifest_sha, evaluation_status, determining_policies_json,
       diagnostics_json, metadata_json,
       CASE WHEN hash(i, 16, {seed}) % 100 < 3 THEN occ_raw - occ_raw % 1000000
            ELSE occ_raw END AS occurred_us,
       principal
  FROM f
"""


CONTENT_SQL = """
CREATE OR REPLACE TEMP TABLE g{suffix} AS
SELECT *, occurred_us + CASE CAST(hash(i, 17, {seed}) % 20 AS INTEGER)
                            WHEN 19 THEN 900000000
                            WHEN 18 THEN 2000000 WHEN 17 THEN 2000000
                            WHEN 16 THEN 2000000 WHEN 15 THEN 2000000
                            WHEN 14 THEN 300000 WHEN 13 THEN 300000
                            ELSE 40000 END AS ingested_us,
       sha256(concat(id, chr(31), zone_id, chr(31), event_type, chr(31),
              coalesce(request_id, ''), chr(31), coalesce(decision, ''), chr(31),
              policy_set_id, chr(31), policy_set_version_id, chr(31),
              manifest_sha, chr(31), evaluation_status, chr(31),
              coalesce(determining_policies_json, 'null'), chr(31),
              coalesce(diagnostics_json, 'null'), chr(31),
              coalesce(metadata_json, 'null'), chr(31),
              CAST(CAST(occurred_us AS HUGEINT) * 1000 AS VARCHAR))) AS content_sha256
  FROM ({events})
"""

#: The chain over a narrow table (the window sorts only i, zone and the hash), HMAC
#: included; it is put back next to the wide rows by position (both are in i order).
CHAIN_SQL = """
CREATE OR REPLACE TEMP TABLE ch{suffix} AS
SELECT ch_i, chain_seq, prev_content_sha256,
       sha256($opad || unhex(sha256($ipad || encode(
         concat(c, '|', coalesce(prev_content_sha256, '')))))) AS chain_hmac
  FROM (
    SELECT i AS ch_i, content_sha256 AS c,
           row_number() OVER z + coalesce(h.seq, 0) AS chain_seq,
           coalesce(lag(content_sha256) OVER z, h.content) AS prev_content_sha256
      FROM (SELECT i, zone_id, content_sha256 FROM g{suffix}) n
      LEFT JOIN heads h USING (zone_id)
    WINDOW z AS (PARTITION BY zone_id ORDER BY i)
     ORDER BY i)
"""

#: A chunk: the wide rows and their chain columns side by side, in i order.
CHUNK_VIEW = """
CREATE OR REPLACE TEMP VIEW {name} AS
SELECT g{suffix}.*, ch{suffix}.* EXCLUDE (ch_i) FROM g{suffix} POSITIONAL JOIN ch{suffix}
"""


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    key = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def connect(tmp: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '3GB'")
    con.execute(f"SET temp_directory = '{tmp}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = true")
    return con


def generate_chunks(con, n: int, rows_dir: str, key: bytes, seed: int = SEED,
                    on_chunk=None) -> str:
    """Chained events [0, n), chunk by chunk in insertion order; returns a relation (SQL).

    Each chunk is the view ``chunk`` (in i order) while ``on_chunk(con)`` runs (the text
    exports append to their files there). A single chunk stays in memory and is the
    relation returned; several are kept as Parquet files under ``rows_dir`` (for the
    shapes that need another order, OCSF and the snapshot, and for the checks).
    """
    ipad, opad = hmac_pads(key)
    con.execute("CREATE OR REPLACE TEMP TABLE heads (zone_id VARCHAR, seq BIGINT, content VARCHAR)")
    files = []
    single = n <= CHUNK
    for number, first in enumerate(range(0, n, CHUNK)):
        last = min(n, first + CHUNK)
        suffix = "_all" if single else ""
        con.execute(CONTENT_SQL.format(events=event_sql(first, last, seed), seed=seed,
                                       suffix=suffix))
        con.execute(CHAIN_SQL.format(suffix=suffix), {"ipad": ipad, "opad": opad})
        misplaced = con.sql(
            f"SELECT count(*) FROM g{suffix} POSITIONAL JOIN ch{suffix} "
            "WHERE i IS DISTINCT FROM ch_i"
        ).fetchall()[0][0]
        if misplaced:
            raise RuntimeError("positional join of the chain went out of order")
        con.execute(CHUNK_VIEW.format(name="chunk", suffix=suffix))
        if on_chunk is not None:
            on_chunk(con)
        if single:
            con.execute(CHUNK_VIEW.format(name="rows_all", suffix=suffix))
            return "rows_all"
        os.makedirs(rows_dir, exist_ok=True)
        path = os.path.join(rows_dir, f"chunk-{number:05d}.parquet")
        con.execute(
            f"COPY chunk TO {_sql_str(path)} "
            "(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 100000)"
        ).fetchall()
        con.execute(
            """CREATE OR REPLACE TEMP TABLE heads AS
               SELECT zone_id, max(chain_seq) AS seq, arg_max(content_sha256, chain_seq) AS content
                 FROM (SELECT zone_id, seq AS chain_seq, content AS content_sha256 FROM heads
                       UNION ALL SELECT zone_id, chain_seq, content_sha256 FROM ch
                                   POSITIONAL JOIN (SELECT zone_id, content_sha256 FROM g))
                GROUP BY zone_id"""
        )
        con.execute("DROP VIEW chunk")
        con.execute("DROP TABLE g")
        con.execute("DROP TABLE ch")
        files.append(path)
    return "read_parquet([" + ", ".join(_sql_str(f) for f in files) + "])"


# --- text shapes ------------------------------------------------------------------------

PG_TS = """concat(strftime(make_timestamp({c}), '%Y-%m-%d{sep}%H:%M:%S'),
   CASE WHEN {c} % 1000000 = 0 THEN ''
        ELSE '.' || rtrim(lpad(CAST({c} % 1000000 AS VARCHAR), 6, '0'), '0') END, '{tz}')"""


def pg_ts(column: str, iso: bool = False) -> str:
    """SQL: epoch micros as PostgreSQL prints timestamptz in UTC (trailing zeros dropped)."""
    return PG_TS.format(c=column, sep="T" if iso else " ", tz="+00:00" if iso else "+00")


def cli_ts(column: str) -> str:
    return f"strftime(make_timestamp({column}), '%Y-%m-%dT%H:%M:%S.%fZ')"


def csv_field(column: str, may_need_quotes: bool) -> str:
    """SQL: one field as COPY ... CSV writes it (NULL empty, quoted when it must be)."""
    if not may_need_quotes:
        return f"coalesce(CAST({column} AS VARCHAR), '')"
    return (
        f"CASE WHEN {column} IS NULL THEN '' "
        f"WHEN {column} = '' OR starts_with({column}, '\\.') OR contains({column}, ',') "
        f"OR contains({column}, '\"') OR contains({column}, chr(10)) "
        f"OR contains({column}, chr(13)) "
        f"THEN concat('\"', replace({column}, '\"', '\"\"'), '\"') ELSE {column} END"
    )


def csv_line_sql() -> str:
    parts = []
    for name in COLUMNS:
        if name == "occurred_at":
            parts.append(pg_ts("occurred_us"))
        elif name == "ingested_at":
            parts.append(pg_ts("ingested_us"))
        elif name == "ingest_signature":
            parts.append("''")
        else:
            parts.append(csv_field(name, name in TEXT or name in JSONB))
    return "concat(" + ", ',', ".join(parts) + ", chr(10))"


def _json_str(column: str) -> str:
    # Generated text fields hold no quote, backslash or control character (checked).
    return f"CASE WHEN {column} IS NULL THEN 'null' ELSE concat('\"', {column}, '\"') END"


def db_json_line_sql() -> str:
    parts = []
    for name in COLUMNS:
        if name in JSONB:
            value = f"coalesce({name}, 'null')"
        elif name == "occurred_at":
            value = "'\"', " + pg_ts("occurred_us", iso=True) + ", '\"'"
        elif name == "ingested_at":
            value = "'\"', " + pg_ts("ingested_us", iso=True) + ", '\"'"
        elif name == "chain_seq":
            value = "CAST(chain_seq AS VARCHAR)"
        elif name == "ingest_signature":
            value = "'null'"
        else:
            value = _json_str(name)
        parts.append(f"'\"{name}\":', {value}")
    return "concat('{', " + ", ',', ".join(parts) + ", '}', chr(10))"


CLI_FIELDS = [
    "id", "zone_id", "event_type", "request_id", "decision", "policy_set_id",
    "policy_set_version_id", "manifest_sha", "evaluation_status", "determining_policies",
    "diagnostics", "metadata", "occurred_at", "chain_seq", "chain_hmac",
]


def cli_line_sql() -> str:
    parts = []
    for name in CLI_FIELDS:
        if name in ("determining_policies", "diagnostics", "metadata"):
            value = f"coalesce({name}_json, 'null')"
        elif name == "occurred_at":
            value = "'\"', " + cli_ts("occurred_us") + ", '\"'"
        elif name == "chain_seq":
            value = "CAST(chain_seq AS VARCHAR)"
        else:
            value = _json_str(name)
        parts.append(f"'\"{name}\" : ', {value}")
    return "concat('{', " + ", ', ', ".join(parts) + ", '}', chr(10))"


def append_lines(con, relation: str, line_sql: str, out) -> int:
    """Append one text line per row of ``relation`` (in its order) by copying Arrow buffers."""
    written = 0
    reader = con.sql(f"SELECT {line_sql} AS line FROM {relation}").to_arrow_reader(200_000)
    for batch in reader:
        column = batch.column(0)
        if column.type != pa.string() and column.type != pa.large_string():
            column = column.cast(pa.large_string())
        if column.null_count:
            raise RuntimeError("a generated line is NULL")
        width = 8 if column.type == pa.large_string() else 4
        offsets = column.buffers()[1]
        start = int.from_bytes(offsets[column.offset * width:(column.offset + 1) * width], "little")
        stop = len(column) + column.offset
        end = int.from_bytes(offsets[stop * width:(stop + 1) * width], "little")
        out.write(memoryview(column.buffers()[2])[start:end])
        written += len(column)
    return written


# --- OCSF ---------------------------------------------------------------------------------

OCSF_SELECT = """
SELECT ingested_us // {hour} AS _hour,
       CAST(6003 AS INTEGER) AS class_uid, CAST(600301 AS INTEGER) AS type_uid,
       CAST(CASE WHEN decision = 'deny' THEN 2 ELSE 1 END AS INTEGER) AS severity_id,
       CAST(CASE WHEN decision = 'deny' THEN 2 ELSE 1 END AS INTEGER) AS activity_id,
       occurred_us // 1000 AS time, zone_id, request_id, policy_set_version_id, decision,
       '1.7.0' AS metadata_version, 'caracal' AS product_name, id AS event_id, event_type,
       policy_set_id, manifest_sha, evaluation_status,
       coalesce(determining_policies_json, '') AS determining_policies_json,
       coalesce(diagnostics_json, '') AS diagnostics_json,
       coalesce(metadata_json, '') AS metadata_json,
       content_sha256, chain_hmac, chain_seq
  FROM {rows}
 ORDER BY _hour, zone_id, chain_seq
"""

HOUR_US = 3_600_000_000


def write_ocsf(con, relation: str, root: str) -> list[str]:
    """One Parquet file per hour of ingested_at, rows in (zone_id, chain_seq) order."""
    import datetime as dt

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    reader = con.sql(OCSF_SELECT.format(rows=relation, hour=HOUR_US)).to_arrow_reader(100_000)
    written: list[str] = []
    writer = None
    current = None

    def open_writer(hour: int, schema: pa.Schema):
        moment = dt.datetime.fromtimestamp(hour * 3600, dt.timezone.utc)
        path = os.path.join(root, moment.strftime("audit/%Y/%m/%d/%Y-%m-%dT%H.parquet"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        written.append(path)
        return pq.ParquetWriter(path, schema, compression="snappy")

    try:
        for batch in reader:
            hours = batch.column(0)
            body = batch.drop_columns(["_hour"])
            body = pa.RecordBatch.from_arrays(
                [c.cast(pa.string()) if pa.types.is_string_view(c.type) else c
                 for c in body.columns], names=body.schema.names)
            starts = [0]
            changes = pc.not_equal(hours.slice(1), hours.slice(0, len(hours) - 1))
            starts += [int(k) + 1 for k in pc.indices_nonzero(changes).to_pylist()]
            starts.append(len(hours))
            for a, b in zip(starts[:-1], starts[1:], strict=True):
                if a == b:
                    continue
                hour = hours[a].as_py()
                if hour != current:
                    if writer is not None:
                        writer.close()
                    writer = open_writer(hour, body.schema)
                    current = hour
                writer.write_batch(body.slice(a, b - a))
    finally:
        if writer is not None:
            writer.close()
    return written


# --- a canonical snapshot written directly (the 10,000,000-event mode) --------------------

SNAPSHOT_SELECT = """
SELECT id, zone_id, event_type, request_id, decision, policy_set_id, policy_set_version_id,
       manifest_sha, evaluation_status, determining_policies_json, diagnostics_json,
       metadata_json, make_timestamptz(occurred_us) AS occurred_at,
       CAST(CASE WHEN i >= 0 THEN 6 END AS TINYINT) AS occurred_at_digits,
       make_timestamptz(ingested_us) AS ingested_at,
       content_sha256, prev_content_sha256, chain_hmac, chain_seq,
       CAST(NULL AS VARCHAR) AS ingest_signature, CAST(NULL AS VARCHAR) AS absent_fields,
       CASE WHEN i >= 0 THEN {source} END AS source_file, i + 2 AS source_line,
       CASE WHEN i >= 0 THEN 'db_csv' END AS source_shape
  FROM {rows}
 ORDER BY zone_id, chain_seq
"""


def write_snapshot_direct(con, relation: str, out_dir: str, source_name: str) -> dict:
    """A canonical snapshot as ``ingest`` writes it, without going through an export."""
    from caracal_forensics._version import __version__
    from caracal_forensics.ingest import SORT_ORDER
    from caracal_forensics.model import EVENT_SCHEMA
    from caracal_forensics.sources._io import file_sha256
    from caracal_forensics.sources.snapshot_dir import (
        EVENTS_DIR,
        FORMAT_NAME,
        FORMAT_VERSION,
        MANIFEST,
    )

    events_dir = os.path.join(out_dir, EVENTS_DIR)
    os.makedirs(events_dir)
    path = os.path.join(events_dir, "part-00000.parquet")
    query = SNAPSHOT_SELECT.format(rows=relation, source=_sql_str(source_name))
    from caracal_forensics.ingest import parquet_options

    # the same layout `ingest` writes (row groups, dictionaries, bloom filters)
    con.execute(f"COPY ({query}) TO {_sql_str(path)} ({parquet_options()})").fetchall()
    names = [name for (name,) in con.sql(
        f"SELECT name FROM parquet_schema({_sql_str(path)}) WHERE name <> 'duckdb_schema'"
    ).fetchall()]
    if names != EVENT_SCHEMA.names:
        raise RuntimeError(f"snapshot columns {names} differ from the event schema")
    zones = {
        zone: {"events": n, "first_seq": first, "last_seq": last, "last_content_sha256": head}
        for zone, n, first, last, head in con.sql(
            f"""SELECT zone_id, count(*), min(chain_seq), max(chain_seq),
                       arg_max(content_sha256, chain_seq)
                  FROM read_parquet({_sql_str(path)}) GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    }
    events, first_at, last_at = con.sql(
        f"SELECT count(*), min(occurred_at)::VARCHAR, max(occurred_at)::VARCHAR "
        f"FROM read_parquet({_sql_str(path)})"
    ).fetchall()[0]
    duplicates = con.sql(
        f"""SELECT count(*) FROM (SELECT zone_id, id FROM read_parquet({_sql_str(path)})
                                  GROUP BY ALL HAVING count(*) > 1)"""
    ).fetchall()[0][0]
    size, digest = file_sha256(path)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "events": events,
        "alerts": 0,
        "first_occurred_at": first_at,
        "last_occurred_at": last_at,
        "sort_order": SORT_ORDER,
        "inputs": [{"path": source_name, "shape": "db_csv", "bytes": 0, "sha256": "",
                    "rows": events, "note": "generated directly by bench/generate.py"}],
        "files": [{"path": os.path.relpath(path, out_dir), "bytes": size, "sha256": digest}],
        "bytes": size,
        "zones": zones,
        # what ingest records (readers skip their own duplicate check at 0)
        "duplicate_events": duplicates,
    }
    with open(os.path.join(out_dir, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    return manifest


# --- checks against the reference implementation ------------------------------------------


def _load_reference():
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", os.path.join(ROOT, "fixtures", "make_fixtures.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def check_sample(con, relation: str, key: bytes, out_dir: str | None, size: int = 400) -> dict:
    """Recompute a sample with the library's reference code; compare exported lines too."""
    import hmac as hmac_module

    from caracal_forensics.chain.digest import chain_hmac, content_sha256
    from caracal_forensics.jsonb import jsonb_text

    ref = _load_reference()
    total = con.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    # half spread over every event (hashes), half among the first 100,000 (also lines)
    spread = con.sql(
        f"""SELECT * FROM {relation}
             WHERE hash(i, 99) % {max(1, total // (size // 2))} = 0
             ORDER BY i LIMIT {size // 2}"""
    ).to_arrow_table().to_pylist()
    early = con.sql(
        f"""SELECT * FROM {relation}
             WHERE i < 100000 AND hash(i, 98) % {max(1, min(total, 100_000) // (size // 2))} = 0
             ORDER BY i LIMIT {size // 2}"""
    ).to_arrow_table().to_pylist()
    rows = spread + early
    # every distinct jsonb value of the sample is its own canonical text
    for row in rows:
        for name in JSONB:
            value = row[name]
            if value is not None and jsonb_text(value) != value:
                raise RuntimeError(f"{name} is not canonical jsonb text: {value!r}")
        for name in TEXT:
            value = row[name] or ""
            if any(c in value for c in '"\\') or any(ord(c) < 32 for c in value):
                raise RuntimeError(f"{name} holds a character the generator does not escape")
    for row in rows:
        event = dict(row, occurred_at=row["occurred_us"], ingested_at=row["ingested_us"],
                     ingest_signature=None)
        content = content_sha256(event)
        if content != row["content_sha256"]:
            raise RuntimeError(f"content_sha256 of event {row['i']} differs from the reference")
        expected = chain_hmac(key, content, row["prev_content_sha256"])
        message = f"{content}|{row['prev_content_sha256'] or ''}".encode()
        plain = hmac_module.new(key, message, hashlib.sha256).hexdigest()
        if not (expected == plain == row["chain_hmac"]):
            raise RuntimeError(f"chain_hmac of event {row['i']} differs from the reference")
    # the predecessor links: the previous event of the zone (by seq) has content == prev
    bad = con.sql(
        f"""SELECT count(*) FROM (
              SELECT prev_content_sha256,
                     lag(content_sha256) OVER (PARTITION BY zone_id ORDER BY chain_seq) AS p,
                     chain_seq, lag(chain_seq) OVER (PARTITION BY zone_id ORDER BY chain_seq) AS s
                FROM {relation})
            WHERE prev_content_sha256 IS DISTINCT FROM p OR chain_seq <> coalesce(s, 0) + 1"""
    ).fetchall()[0][0]
    if bad:
        raise RuntimeError(f"{bad} events do not link to their predecessor")
    checked = {"sample_events": len(rows), "links_checked": True}
    if out_dir is None:
        return checked
    # exported lines, byte for byte against the reference generator's functions
    wanted = {row["i"]: row for row in early}
    last_wanted = max(wanted)
    shapes = {
        "db.csv": lambda e: ",".join(
            ref.pg_csv_field(ref._csv_value(e, n)) for n in COLUMNS) + "\n",
        "db.jsonl": lambda e: ref.db_json_line(e) + "\n",
        "cli.jsonl": lambda e: ref.cli_json_line(e) + "\n",
    }
    for name, render in shapes.items():
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", newline="") as handle:
            if name == "db.csv":
                if handle.readline() != ",".join(COLUMNS) + "\n":
                    raise RuntimeError("db.csv header differs")
            # no value holds a raw newline, so line k is event k
            for index, line in enumerate(handle):
                if index > last_wanted:
                    break
                row = wanted.get(index)
                if row is None:
                    continue
                event = dict(row, occurred_at=row["occurred_us"],
                             ingested_at=row["ingested_us"], ingest_signature=None)
                if line != render(event):
                    raise RuntimeError(
                        f"{name} line of event {index} differs from the reference generator:\n"
                        f"  got  {line!r}\n  want {render(event)!r}"
                    )
        checked[f"{name}_lines_compared"] = len(wanted)
    return checked


# --- the cache -----------------------------------------------------------------------------


def dataset_dir(out: str, n: int, big: bool = False) -> str:
    return os.path.join(out, f"{'big' if big else 'n'}{n}")


def load_meta(directory: str) -> dict | None:
    path = os.path.join(directory, "meta.json")
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    return meta if meta.get("generator_version") == GENERATOR_VERSION else None


def sample_ids(con, relation: str) -> dict:
    """A multi-event request near the middle, for tail --request-id and explain."""
    total = con.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    request = con.sql(
        f"""SELECT request_id, count(*) FROM {relation}
             WHERE i BETWEEN {total // 2} AND {total // 2 + 400} AND request_id IS NOT NULL
             GROUP BY 1 HAVING count(*) = 4 ORDER BY min(i) LIMIT 1"""
    ).fetchall()[0][0]
    counts = dict(con.sql(
        f"""SELECT 'events', count(*) FROM {relation}
            UNION ALL SELECT 'denies', count(*) FILTER (WHERE decision = 'deny')
                        FROM {relation}
            UNION ALL SELECT 'principal_denies', count(*) FILTER (
                        WHERE decision = 'deny' AND principal = '{PRINCIPAL}')
                        FROM {relation}
            UNION ALL SELECT 'step_up_denies', count(*) FILTER (
                        WHERE decision = 'deny' AND contains(diagnostics_json, 'step_up_required'))
                        FROM {relation}
            UNION ALL SELECT 'jti_collisions', count(*) FILTER (WHERE event_type = 'jti_collision')
                        FROM {relation}
            UNION ALL SELECT 'zones', count(DISTINCT zone_id) FROM {relation}
            UNION ALL SELECT 'requests', count(DISTINCT request_id) FROM {relation}
            UNION ALL SELECT 'hours', count(DISTINCT ingested_us // {HOUR_US})
                        FROM {relation}"""
    ).fetchall())
    return {"request_id": request, "principal": PRINCIPAL, "counts": counts}


def generate(n: int, out: str, *, big: bool = False, big_jsonl: bool = False,
             force: bool = False, log=print) -> dict:
    """Generate (or reuse) the dataset of ``n`` events; returns its meta.json content."""
    directory = dataset_dir(out, n, big)
    meta = None if force else load_meta(directory)
    if meta is not None and (not big_jsonl or meta["files"].get("cli.jsonl")):
        log(f"reusing generated data in {directory}")
        return meta
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    key = bytes.fromhex(KEY_HEX)
    with open(os.path.join(directory, "key.hex"), "w") as handle:
        handle.write(KEY_HEX + "\n")
    tmp = os.path.join(directory, "tmp")
    os.makedirs(tmp)
    con = connect(tmp)
    timings: dict[str, float] = {}
    files: dict[str, str] = {}
    text_shapes: dict[str, str] = {}
    if not big:
        text_shapes = {"db.csv": csv_line_sql(), "db.jsonl": db_json_line_sql(),
                       "cli.jsonl": cli_line_sql()}
    elif big_jsonl:
        text_shapes = {"cli.jsonl": cli_line_sql()}
    handles = {}
    for name in text_shapes:
        files[name] = os.path.join(directory, name)
        handles[name] = open(files[name], "wb")  # noqa: SIM115 - closed below
    if "db.csv" in handles:
        handles["db.csv"].write((",".join(COLUMNS) + "\n").encode())
    for name in text_shapes:
        timings[name] = 0.0

    def export_text(con) -> None:
        for name, line_sql in text_shapes.items():
            began = time.perf_counter()
            append_lines(con, "chunk", line_sql, handles[name])
            timings[name] += time.perf_counter() - began

    started = time.perf_counter()
    try:
        rows = generate_chunks(con, n, os.path.join(tmp, "rows"), key, on_chunk=export_text)
    finally:
        for handle in handles.values():
            handle.close()
    timings["events_and_chain"] = time.perf_counter() - started - sum(
        timings[name] for name in text_shapes)
    log(f"  {n} events chained in {timings['events_and_chain']:.1f}s")
    for name in text_shapes:
        log(f"  {name} in {timings[name]:.1f}s")

    def timed(name: str, work) -> None:
        began = time.perf_counter()
        work()
        timings[name] = time.perf_counter() - began
        log(f"  {name} in {timings[name]:.1f}s")

    if not big:
        files["ocsf"] = os.path.join(directory, "ocsf")
        timed("ocsf", lambda: write_ocsf(con, rows, files["ocsf"]))
    else:
        files["snapshot"] = os.path.join(directory, "snapshot")
        timed("snapshot", lambda: write_snapshot_direct(
            con, rows, files["snapshot"], os.path.join(directory, "db.csv")))
    generation_seconds = time.perf_counter() - started

    began = time.perf_counter()
    checks = check_sample(con, rows, key, None if big else directory)
    ids = sample_ids(con, rows)
    timings["checks"] = time.perf_counter() - began
    log(f"  checks in {timings['checks']:.1f}s")
    con.close()

    if not big:
        files["snapshot"] = os.path.join(directory, "snapshot")
        began = time.perf_counter()
        subprocess.run(
            [os.path.join(ROOT, ".venv", "bin", "caracal-forensics"), "ingest",
             "--source", files["db.csv"], "--out", files["snapshot"]],
            check=True, stdout=subprocess.DEVNULL,
        )
        timings["snapshot_via_ingest"] = time.perf_counter() - began
        log(f"  snapshot (caracal-forensics ingest from db.csv) in "
            f"{timings['snapshot_via_ingest']:.1f}s")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "events": n,
        "big": big,
        "seed": SEED,
        "key_file": os.path.join(directory, "key.hex"),
        "generation_seconds": round(generation_seconds, 2),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "files": files,
        "bytes": {name: _size(path) for name, path in files.items()},
        "ocsf_files": sorted(glob.glob(os.path.join(directory, "ocsf", "**", "*.parquet"),
                                       recursive=True)),
        "checks": checks,
        **ids,
    }
    with open(os.path.join(directory, "meta.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
        handle.write("\n")
    return meta


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(p) for p in glob.glob(os.path.join(path, "**", "*"),
                                                          recursive=True) if os.path.isfile(p))
    return os.path.getsize(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--out", default=os.path.join(HERE, "out"))
    parser.add_argument("--big", action="store_true", help="snapshot only (default 10M events)")
    parser.add_argument("--big-jsonl", action="store_true", help="with --big: also cli.jsonl")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = parser.parse_args(argv)
    n = args.events or (10_000_000 if args.big else int(os.environ.get("BENCH_N", 1_000_000)))
    meta = generate(n, args.out, big=args.big, big_jsonl=args.big_jsonl, force=args.force)
    print(json.dumps({k: meta[k] for k in ("events", "generation_seconds", "timings",
                                           "counts", "request_id", "checks")}, indent=2))


if __name__ == "__main__":
    main()
