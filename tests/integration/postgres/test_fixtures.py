"""The bundled fixtures are what PostgreSQL itself would export, byte for byte.

fixtures/make_fixtures.py writes the table dump shapes without a database; these tests
load its CSV into a real PostgreSQL and have the server export it again, and recompute
the chain with pgcrypto, so the fixtures cannot drift from the real thing.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import FIXTURES, SCHEMA

EXPORT = FIXTURES / "export"


@pytest.fixture(scope="module")
def fixture_db(pg) -> str:
    name = pg.create_database("fixtures_reference", SCHEMA)
    with pg.connect(dbname=name) as conn, conn.cursor() as cur:
        with cur.copy("COPY audit_events FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write((EXPORT / "db.csv").read_bytes())
    return name


def test_generator_is_deterministic(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("db.csv", "alerts.csv", "alerts.jsonl", "search/page-000.json"):
        assert (tmp_path / "export" / name).read_bytes() == (EXPORT / name).read_bytes(), name
    assert (
        gzip.open(tmp_path / "export/db.jsonl.gz").read()
        == gzip.open(EXPORT / "db.jsonl.gz").read()
    )


def test_postgres_copy_reproduces_the_csv(pg, fixture_db) -> None:
    with pg.connect(dbname=fixture_db) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        out = bytearray()
        with cur.copy(
            "COPY (SELECT * FROM audit_events ORDER BY ingested_at, id) TO STDOUT "
            "(FORMAT csv, HEADER true)"
        ) as copy:
            for chunk in copy:
                out += chunk
    ours = (EXPORT / "db.csv").read_bytes().split(b"\n")
    theirs = bytes(out).split(b"\n")
    assert ours[0] == theirs[0]
    assert sorted(ours[1:]) == sorted(theirs[1:])


def test_postgres_row_to_json_reproduces_the_json_lines(pg, fixture_db) -> None:
    with pg.connect(dbname=fixture_db) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("SELECT row_to_json(a)::text FROM audit_events a")
        theirs = sorted(row[0] for row in cur.fetchall())
    # split on "\n" only: U+2028 inside a string is not a line break
    text = gzip.open(EXPORT / "db.jsonl.gz", "rt", encoding="utf-8").read()
    ours = sorted(text.rstrip("\n").split("\n"))
    assert ours == theirs


def test_pgcrypto_recomputes_the_fixture_chain(pg, fixture_db) -> None:
    key = (FIXTURES / "key.hex").read_text().strip()
    wrong = pg.psql(
        f"""
        SELECT count(*) FROM (
          SELECT e.*,
            encode(digest(convert_to(
              e.id || chr(31) || e.zone_id || chr(31) || e.event_type || chr(31) ||
              coalesce(e.request_id, '') || chr(31) || coalesce(e.decision, '') || chr(31) ||
              coalesce(e.policy_set_id, '') || chr(31) ||
              coalesce(e.policy_set_version_id, '') || chr(31) ||
              coalesce(e.manifest_sha, '') || chr(31) || coalesce(e.evaluation_status, '') ||
              chr(31) || coalesce(e.determining_policies_json::text, 'null') || chr(31) ||
              coalesce(e.diagnostics_json::text, 'null') || chr(31) ||
              coalesce(e.metadata_json::text, 'null') || chr(31) ||
              ((extract(epoch FROM e.occurred_at) * 1000000)::bigint * 1000)::text,
              'UTF8'), 'sha256'), 'hex') AS recomputed,
            encode(hmac(convert_to(e.content_sha256 || '|' ||
                                   coalesce(e.prev_content_sha256, ''), 'UTF8'),
                        decode('{key}', 'hex'), 'sha256'), 'hex') AS rehmac,
            lag(e.content_sha256) OVER (PARTITION BY e.zone_id ORDER BY e.chain_seq) AS pred
          FROM audit_events e
        ) t
        WHERE recomputed <> content_sha256 OR rehmac <> chain_hmac
           OR prev_content_sha256 IS DISTINCT FROM pred
        """,
        dbname=fixture_db,
    )
    assert wrong.strip() == "0"
