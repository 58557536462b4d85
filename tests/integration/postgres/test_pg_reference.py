"""The PostgreSQL harness is a faithful reference: audit_append reproduces the vectors."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from support.paths import SCHEMA
from support.paths import VECTOR_EXPORT as EXPORT
from support.pgserver import PgServer

from caracal_forensics import jsonb
from caracal_forensics.model import JSONB_FIELDS, TEXT_FIELDS

APPEND = """
SELECT content_sha256, prev_content_sha256, chain_hmac, chain_seq,
       determining_policies_json::text, diagnostics_json::text, metadata_json::text
  FROM audit_append(decode(%s, 'hex'), %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    %s::jsonb, %s::jsonb, %s::jsonb, %s::timestamptz, %s::timestamptz)
"""


def _fresh_db(pg: PgServer) -> str:
    return pg.create_database(f"ref_{uuid.uuid4().hex[:12]}", SCHEMA)


def _vector_rows() -> list[dict]:
    # Not splitlines(): jsonb prints U+2028/U+2029 raw and splitlines() breaks on them.
    text = (EXPORT / "db.jsonl").read_text(encoding="utf-8")
    # jsonb.loads, not json.loads: numbers must keep their literal (12.50 is not 12.5).
    rows = [jsonb.loads(line) for line in text.split("\n") if line]
    for row in rows:
        row["chain_seq"] = int(row["chain_seq"])
    return sorted(rows, key=lambda r: (r["zone_id"], r["chain_seq"]))


def _params(key_hex: str, row: dict) -> list:
    docs = [None if row[f] is None else jsonb.dumps(row[f]) for f in JSONB_FIELDS]
    return [key_hex, *(row[f] for f in TEXT_FIELDS), *docs, row["occurred_at"], row["ingested_at"]]


def test_server_starts(pg: PgServer) -> None:
    assert pg.psql("SHOW server_version_num").strip() >= "150000"
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_password_auth_over_tcp(pg: PgServer) -> None:
    pg.psql(
        "DROP ROLE IF EXISTS harness_ro; CREATE ROLE harness_ro LOGIN PASSWORD 's3cret' NOSUPERUSER"
    )
    with psycopg.connect(pg.dsn(user="harness_ro", password="s3cret")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("harness_ro",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.dsn(user="harness_ro", password="wrong"))


def test_schema_shape(pg: PgServer) -> None:
    db = _fresh_db(pg)
    parts = pg.psql(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_events'::regclass", dbname=db
    )
    assert int(parts) >= 25  # 24 months and DEFAULT
    cols = pg.psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_name = 'audit_events'",
        dbname=db,
    ).strip()
    header = (EXPORT / "db.csv").read_text(encoding="utf-8").split("\n", 1)[0].strip()
    assert cols == header


def test_audit_append_reproduces_vectors(pg: PgServer) -> None:
    key_hex = (EXPORT / "key.hex").read_text().strip()
    rows = _vector_rows()
    db = _fresh_db(pg)
    with pg.connect(dbname=db) as conn:
        for row in rows:
            got = conn.execute(APPEND, _params(key_hex, row)).fetchone()
            assert got[:4] == (
                row["content_sha256"],
                row["prev_content_sha256"],
                row["chain_hmac"],
                row["chain_seq"],
            ), row["id"]
            for field, text in zip(JSONB_FIELDS, got[4:], strict=True):
                expected = None if row[field] is None else jsonb.dumps(row[field])
                assert text == expected, (row["id"], field)
        count = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    assert count == len(rows)


def test_audit_append_is_key_sensitive(pg: PgServer) -> None:
    row = _vector_rows()[0]
    db = _fresh_db(pg)
    with pg.connect(dbname=db) as conn:
        got = conn.execute(APPEND, _params("ff" * 32, row)).fetchone()
    assert got[0] == row["content_sha256"]
    assert got[2] != row["chain_hmac"]
