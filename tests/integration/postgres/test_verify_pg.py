"""Against a real PostgreSQL: events chained by SQL (pgcrypto over jsonb::text) and exported
in several shapes verify intact; a row edited in the database is caught after export.

PostgreSQL is the reference here: jsonb normalisation (key order, number literals,
escapes), timestamptz rendering and the chain itself all come from it, not from us.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.paths import SCHEMA
from support.pgserver import PgServer
from support.verify import KEY, KEY_HEX, found

import caracal_forensics as cf
from caracal_forensics.chain.verify import verify

APPEND = """
SELECT 1 FROM audit_append(decode(%s, 'hex'), %s, %s, %s, %s, %s, %s, %s, %s, %s,
                           %s::jsonb, %s::jsonb, %s::jsonb, %s::timestamptz, %s::timestamptz)
"""
# Inputs PostgreSQL normalises: key order by length, numbers kept as literals, exponents
# expanded, escapes decoded, duplicate keys collapsed, whitespace dropped.
DOCS = [
    None,
    "[]",
    "{}",
    "null",
    '[{"policy": "payments-policy"}]',
    '{"zz": 1, "a": 2.50, "bb": [1e2, 1.0e2, -0.0, 1E-2]}',
    '{"s": "caf\\u00e9 \\ud83d\\ude00 \\u2028 \\/ tab\\t", "k": "x", "k": "last"}',
    '  [ {"step_up_required" : "mfa"} , {"reason": "scope_not_allowed"} ]  ',
    '{"principal_id": "app-7", "requested_scopes": ["payments:read"], "latency_ms": 0.750}',
]
TEXTS = [None, "", "allow", "deny", "DENY", "complete", "anomaly", "caf\u00e9", "x,y\"z"]


def _events(n: int, seed: int = 11) -> list[list]:
    rng = random.Random(seed)
    zones = ["zone-alpha", "zone:prod/eu-1", "\u00e9t\u00e9"]
    out = []
    for i in range(n):
        micros = rng.choice([0, 999, 1000, 123456, rng.randrange(1_000_000)])
        occurred = f"2026-05-11 08:{i // 60:02d}:{i % 60:02d}.{micros:06d}+00"
        out.append([
            KEY_HEX, f"ev-{i:05d}", rng.choice(zones), rng.choice(["token_exchange",
                                                                   "step_up_issued"]),
            rng.choice(TEXTS), rng.choice(TEXTS), "ps-payments", rng.choice(TEXTS),
            "sha256:9082", rng.choice(TEXTS), rng.choice(DOCS), rng.choice(DOCS),
            rng.choice(DOCS), occurred, occurred,
        ])
    return out


CLI_LINE = """
SELECT json_build_object(
  'id', id, 'zone_id', zone_id, 'event_type', event_type, 'request_id', request_id,
  'decision', decision, 'policy_set_id', policy_set_id,
  'policy_set_version_id', policy_set_version_id, 'manifest_sha', manifest_sha,
  'evaluation_status', evaluation_status, 'determining_policies', determining_policies_json,
  'diagnostics', diagnostics_json, 'metadata', metadata_json,
  'occurred_at', to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  'chain_seq', chain_seq, 'chain_hmac', chain_hmac)::text
FROM audit_events ORDER BY occurred_at
"""
OCSF_ROWS = """
SELECT 6003, 600301, 1, CASE WHEN lower(decision) = 'deny' THEN 2 ELSE 1 END,
       floor(extract(epoch FROM occurred_at) * 1000)::bigint,
       zone_id, request_id, policy_set_version_id, decision, '1.7.0', 'caracal', id,
       event_type, policy_set_id, manifest_sha, evaluation_status,
       coalesce(determining_policies_json::text, ''), coalesce(diagnostics_json::text, ''),
       coalesce(metadata_json::text, ''), content_sha256, chain_hmac, chain_seq
  FROM audit_events ORDER BY zone_id, chain_seq
"""
OCSF_SCHEMA = pa.schema([
    ("class_uid", pa.int32()), ("type_uid", pa.int32()), ("severity_id", pa.int32()),
    ("activity_id", pa.int32()), ("time", pa.int64()), ("zone_id", pa.string()),
    ("request_id", pa.string()), ("policy_set_version_id", pa.string()),
    ("decision", pa.string()), ("metadata_version", pa.string()),
    ("product_name", pa.string()), ("event_id", pa.string()), ("event_type", pa.string()),
    ("policy_set_id", pa.string()), ("manifest_sha", pa.string()),
    ("evaluation_status", pa.string()), ("determining_policies_json", pa.string()),
    ("diagnostics_json", pa.string()), ("metadata_json", pa.string()),
    ("content_sha256", pa.string()), ("chain_hmac", pa.string()), ("chain_seq", pa.int64()),
])


def _export(conn, out: Path) -> dict[str, Path]:
    """The table in the shapes PostgreSQL (or a thin client over it) produces."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "db.csv", "jsonl": out / "db.jsonl", "cli": out / "cli.jsonl",
             "ocsf": out / "ocsf" / "2026-05-11T08.parquet"}
    with conn.cursor() as cur, open(paths["csv"], "wb") as f:
        with cur.copy("COPY (SELECT * FROM audit_events ORDER BY occurred_at) "
                      "TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for data in copy:
                f.write(data)
    rows = conn.execute("SELECT row_to_json(a)::text FROM audit_events a "
                        "ORDER BY occurred_at").fetchall()
    paths["jsonl"].write_text("".join(r[0] + "\n" for r in rows), encoding="utf-8")
    rows = conn.execute(CLI_LINE).fetchall()
    paths["cli"].write_text("".join(r[0] + "\n" for r in rows), encoding="utf-8")
    rows = conn.execute(OCSF_ROWS).fetchall()
    paths["ocsf"].parent.mkdir()
    pq.write_table(pa.Table.from_pylist(
        [dict(zip(OCSF_SCHEMA.names, r, strict=True)) for r in rows], schema=OCSF_SCHEMA),
        paths["ocsf"])
    return paths


def _verify(path: Path, **kwargs):
    snap = cf.open(str(path))
    return verify(snap.duckdb, key=KEY, inputs=snap.inputs, **kwargs)


@pytest.fixture(scope="module")
def chained(pg: PgServer, tmp_path_factory) -> tuple[PgServer, str, dict[str, Path]]:
    db = pg.create_database(f"verify_{uuid.uuid4().hex[:10]}", SCHEMA)
    with pg.connect(dbname=db) as conn:
        with conn.transaction():
            for params in _events(90):
                conn.execute(APPEND, params)
        paths = _export(conn, tmp_path_factory.mktemp("pg-export"))
    return pg, db, paths


@pytest.mark.parametrize("shape", ["csv", "jsonl", "cli", "ocsf"])
def test_postgres_chain_verifies_intact(chained, shape: str) -> None:
    _, _, paths = chained
    report = _verify(paths[shape])
    assert report.status == "intact", report.findings[:5]
    assert report.events_checked == 90


def test_postgres_row_edited_in_place(chained, tmp_path) -> None:
    pg, db, _ = chained
    with pg.connect(dbname=db) as conn, conn.transaction(force_rollback=True):
        victim, zone, seq = conn.execute(
            "SELECT id, zone_id, chain_seq FROM audit_events ORDER BY zone_id, chain_seq "
            "OFFSET 20 LIMIT 1").fetchone()
        conn.execute("UPDATE audit_events SET metadata_json = '{\"principal_id\": \"root\"}' "
                     "WHERE id = %s", [victim])
        paths = _export(conn, tmp_path / "edited")
    assert found(_verify(paths["csv"])) == {("content_mismatch", victim)}
    assert found(_verify(paths["ocsf"])) == {("content_mismatch", victim)}
    # the CLI shape carries no content hash: the HMAC catches it
    assert found(_verify(paths["cli"])) == {("hmac_mismatch", victim)}


def test_postgres_row_deleted(chained, tmp_path) -> None:
    pg, db, _ = chained
    with pg.connect(dbname=db) as conn, conn.transaction(force_rollback=True):
        victim, zone, seq = conn.execute(
            "SELECT id, zone_id, chain_seq FROM audit_events ORDER BY zone_id, chain_seq "
            "OFFSET 30 LIMIT 1").fetchone()
        conn.execute("DELETE FROM audit_events WHERE id = %s", [victim])
        paths = _export(conn, tmp_path / "deleted")
    for shape in ("jsonl", "ocsf"):
        report = _verify(paths[shape])
        assert [(f.kind, f.zone_id, f.chain_seq) for f in report.findings] == [
            ("sequence_gap", zone, seq + 1)], shape
