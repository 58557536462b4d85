"""``snapshot --dsn`` and the second chain: ``admin_audit_events`` and the export watermark,
read from a real PostgreSQL 15 in the events' transaction, kept by the snapshot.

Each test gets a fresh database: the audit schema (tests/sql/audit_schema.sql), the admin
table and the watermark as FORMAT.md 8 and 9 describe them, the incident of
fixtures/incident loaded with COPY, and a read-only role that logs in over TCP.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from support.paths import FIXTURE_INCIDENT, FIXTURE_KEY_FILE, SCHEMA
from support.pgserver import PgServer

from caracal_forensics import pgsnapshot
from caracal_forensics.admin import read_admin
from caracal_forensics.admin.model import ADMIN_SCHEMA, GLOBAL_CHAIN
from caracal_forensics.admin.snapshot import admin_rows
from caracal_forensics.errors import DatabaseError
from caracal_forensics.pgsnapshot import take_snapshot
from caracal_forensics.snapshot import open_sources
from caracal_forensics.sources.snapshot_dir import last_exported_hour

ADMIN_DDL = """
CREATE TABLE admin_audit_events (
    id                  text PRIMARY KEY,
    request_id          text,
    actor_id            text,
    actor_name          text,
    actor_scope         text,
    action              text,
    method              text,
    path                text,
    zone_id             text,
    entity_type         text,
    entity_id           text,
    status_code         integer,
    payload_json        jsonb,
    occurred_at         timestamptz NOT NULL,
    content_sha256      text NOT NULL,
    prev_content_sha256 text,
    chain_hmac          text,
    chain_seq           bigint NOT NULL
);
CREATE TABLE audit_export_watermark (
    name               text PRIMARY KEY,
    last_exported_hour timestamptz NOT NULL
);
INSERT INTO audit_export_watermark VALUES ('parquet-hourly', '2026-05-12 10:00:00+00');
"""
ADMIN_CSV = FIXTURE_INCIDENT / "admin.csv"
EVENTS = FIXTURE_INCIDENT / "db.jsonl"
TABLES = "audit_events, audit_ingest_alerts, admin_audit_events, audit_export_watermark"


@dataclass
class Db:
    name: str
    reader: str
    password: str

    def url(self, pg: PgServer) -> str:
        return pg.url(user=self.reader, dbname=self.name, password=self.password)


def _load(pg: PgServer, name: str, admin: bool) -> None:
    with pg.connect(dbname=name) as conn:
        with conn.cursor() as cursor:
            for line in EVENTS.read_text("utf-8").splitlines():
                cursor.execute("INSERT INTO audit_events SELECT * FROM "
                               "json_populate_record(NULL::audit_events, %s::json)", [line])
            if admin:
                cursor.execute(ADMIN_DDL)
                with cursor.copy("COPY admin_audit_events FROM STDIN (FORMAT csv, HEADER)"
                                 ) as copy:
                    copy.write(ADMIN_CSV.read_bytes())


@pytest.fixture
def make_db(pg: PgServer):
    """A factory: the incident in a fresh database, and a role that may read ``grant``."""

    def make(admin: bool = True, grant: str = TABLES) -> Db:
        suffix = uuid.uuid4().hex[:10]
        name = pg.create_database(f"adm_{suffix}", SCHEMA)
        _load(pg, name, admin)
        reader, password = f"reader_{suffix}", f"Pw-{suffix}"
        pg.psql(
            f"CREATE ROLE {reader} LOGIN PASSWORD '{password}'; "
            f'GRANT CONNECT ON DATABASE "{name}" TO {reader}; '
            f"GRANT USAGE ON SCHEMA public TO {reader}; GRANT SELECT ON {grant} TO {reader};",
            dbname=name,
        )
        return Db(name, reader, password)

    return make


def _rows(pg: PgServer, db: str, sql: str) -> list[list[str]]:
    out = pg.psql(sql, dbname=db, args=("-F", "\x1f", "-R", "\x1e"))
    return [record.split("\x1f") for record in out.rstrip("\n").split("\x1e") if record]


def _table(table: pa.Table) -> list[dict]:
    """The rows without provenance, by id: what two readings of one table must share."""
    rows = table.drop_columns(["source_file", "source_line", "source_shape"]).to_pylist()
    return sorted(rows, key=lambda row: row["id"])


def test_the_server_prints_the_incident_as_the_fixture_holds_it(pg: PgServer) -> None:
    """fixtures/incident/admin.csv is what COPY ... CSV HEADER prints, byte for byte: its
    jsonb key order and timestamps are the server's."""
    name = pg.create_database(f"adm_{uuid.uuid4().hex[:10]}", SCHEMA)
    _load(pg, name, admin=True)
    with pg.connect(dbname=name) as conn, conn.cursor() as cursor:
        cursor.execute("SET TimeZone = 'UTC'")
        with cursor.copy("COPY admin_audit_events TO STDOUT (FORMAT csv, HEADER)") as copy:
            printed = b"".join(bytes(chunk) for chunk in copy)
    assert printed == ADMIN_CSV.read_bytes()


def test_admin_table_and_watermark_are_snapshotted(pg, make_db, tmp_path: Path) -> None:
    db = make_db()
    out = tmp_path / "snap"
    manifest = take_snapshot(db.url(pg), str(out))

    assert manifest["admin_events"] == 9
    assert manifest["last_exported_hour"] == "2026-05-12T10:00:00Z"
    assert last_exported_hour(str(out)) == "2026-05-12T10:00:00Z"
    source = manifest["source"]
    assert source["admin_table"] == "present" and source["watermark_table"] == "present"
    assert source["export_watermark"] == {"parquet-hourly": "2026-05-12T10:00:00Z"}
    assert [(i["path"].rsplit("#")[-1], i["rows"]) for i in manifest["inputs"]] == [
        ("audit_events", 67), ("audit_ingest_alerts", 0), ("admin_audit_events", 9)]
    assert (out / "admin" / "part-00000.parquet").is_file()
    assert "admin/part-00000.parquet" in {f["path"] for f in manifest["files"]}

    # Per chain, the manifest's head is the database's head.
    heads = _rows(pg, db.name,
                  "SELECT DISTINCT ON (zone_id) coalesce(zone_id, '(global)'), count(*) OVER "
                  "(PARTITION BY zone_id), chain_seq, content_sha256, chain_hmac "
                  "FROM admin_audit_events ORDER BY zone_id, chain_seq DESC")
    assert {chain: (head["events"], head["first_seq"], head["last_seq"],
                    head["last_content_sha256"], head["last_chain_hmac"])
            for chain, head in manifest["admin_chains"].items()} == {
        chain: (int(n), 1, int(seq), sha, hmac) for chain, n, seq, sha, hmac in heads}
    assert set(manifest["admin_chains"]) == {GLOBAL_CHAIN, "zone-pay"}

    # The snapshot's admin rows are the table's, as the dump readers read its COPY: the
    # columns derived from the payload (change_kind, changed_fields) and chain_hmac
    # (signed) agree with admin.read's.
    snapped = admin_rows(str(out))
    assert snapped.schema == ADMIN_SCHEMA
    assert _table(snapped) == _table(read_admin([str(ADMIN_CSV)]))
    assert set(snapped.column("source_shape").to_pylist()) == {"postgres"}
    assert snapped.column("source_file").to_pylist()[0].endswith("#admin_audit_events")
    # in canonical order: the global chain, then each zone, by chain_seq
    assert [(r["zone_id"], r["chain_seq"]) for r in snapped.select(
        ["zone_id", "chain_seq"]).to_pylist()] == [(None, 1), (None, 2)] + [
        ("zone-pay", n) for n in range(1, 8)]
    # and opened as a source, the view beside the events
    snap = open_sources([str(out)])
    assert snap.sql("SELECT count(*) AS n FROM admin_events")["n"][0] == 9
    assert snap.sql("SELECT count(*) AS n FROM events")["n"][0] == 67
    assert db.password.encode() not in b"".join(
        p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_a_database_without_the_admin_table_still_snapshots(pg, make_db, tmp_path) -> None:
    db = make_db(admin=False, grant="audit_events, audit_ingest_alerts")
    manifest = take_snapshot(db.url(pg), str(tmp_path / "snap"))
    assert manifest["events"] == 67
    assert manifest["admin_events"] == 0 and manifest["admin_chains"] == {}
    assert manifest["last_exported_hour"] is None
    source = manifest["source"]
    assert source["admin_table"] == "absent" and source["watermark_table"] == "absent"
    assert len(manifest["inputs"]) == 2
    assert not (tmp_path / "snap" / "admin").exists()
    assert admin_rows(str(tmp_path / "snap")).num_rows == 0
    snap = open_sources([str(tmp_path / "snap")])
    assert snap.sql("SELECT count(*) AS n FROM admin_events")["n"][0] == 0


def test_zone_and_window_select_admin_chain_segments(pg, make_db, tmp_path) -> None:
    db = make_db()
    # a zone filter keeps that zone's chain, not the global one
    manifest = take_snapshot(db.url(pg), str(tmp_path / "z"), zones=["zone-pay"])
    assert set(manifest["admin_chains"]) == {"zone-pay"}
    assert manifest["admin_chains"]["zone-pay"]["events"] == 7
    # ... unless it names it
    manifest = take_snapshot(db.url(pg), str(tmp_path / "zg"), zones=["zone-pay", GLOBAL_CHAIN])
    assert {c: h["events"] for c, h in manifest["admin_chains"].items()} == {
        GLOBAL_CHAIN: 2, "zone-pay": 7}
    assert manifest["events"] == 67
    # a window selects, per chain, the segment from the first to the last row inside it
    # (10:04:30 and 10:05:00, bob's failures: seq 5 and 6 of zone-pay); the global chain
    # has nothing in it
    manifest = take_snapshot(db.url(pg), str(tmp_path / "w"), since="2026-05-12T10:03:00Z",
                             until="2026-05-12T10:06:00Z")
    assert {c: (h["first_seq"], h["last_seq"]) for c, h in manifest["admin_chains"].items()
            } == {"zone-pay": (5, 6)}
    # the global chain's rows are windowed as a chain of their own (a NULL zone)
    manifest = take_snapshot(db.url(pg), str(tmp_path / "g"), since="2026-05-12T08:00:00Z",
                             until="2026-05-12T09:59:00Z")
    assert {c: (h["first_seq"], h["last_seq"]) for c, h in manifest["admin_chains"].items()
            } == {GLOBAL_CHAIN: (1, 2), "zone-pay": (1, 3)}


def test_no_right_on_the_admin_table_is_refused(pg, make_db, tmp_path) -> None:
    db = make_db(grant="audit_events, audit_ingest_alerts")
    with pytest.raises(DatabaseError, match="permission denied.*admin_audit_events"):
        take_snapshot(db.url(pg), str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_admin_rows_are_read_in_the_events_transaction(
    pg, make_db, tmp_path, monkeypatch
) -> None:
    """A writer commits an event and the admin change that caused it together: however
    the reads interleave with its commits, the snapshot has both or neither."""
    db = make_db()
    stop = threading.Event()
    committed_during_read = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with pg.connect(dbname=db.name) as conn:
                i = 0
                while not stop.is_set():
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO audit_events (id, zone_id, event_type, occurred_at, "
                            "content_sha256, chain_hmac, chain_seq) VALUES (%s, 'zone-w', "
                            "'token_exchange', now(), 'x', 'y', %s)", [f"w-{i}", i + 1])
                        conn.execute(
                            "INSERT INTO admin_audit_events (id, request_id, zone_id, "
                            "payload_json, occurred_at, content_sha256, chain_seq) VALUES "
                            "(%s, %s, 'zone-w', %s, now(), 'x', %s)",
                            [f"a-{i}", f"w-{i}", json.dumps({"n": i}), i + 1])
                    written[0] += 1
                    i += 1
                    if written[0] >= 20:
                        committed_during_read.set()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            committed_during_read.set()

    real_copy = pgsnapshot._copy_batches

    def slow_copy(*args, **kwargs):
        for n, rows in enumerate(real_copy(*args, **kwargs)):
            yield rows
            if n == 0:
                committed_during_read.wait(timeout=60)

    monkeypatch.setattr(pgsnapshot, "_copy_batches", slow_copy)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        manifest = take_snapshot(db.url(pg), str(tmp_path / "snap"), block_bytes=1024)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    (total,) = _rows(pg, db.name, "SELECT count(*) FROM admin_audit_events")[0]
    assert manifest["admin_events"] < int(total)  # written after the read began: not in it
    snap = open_sources([str(tmp_path / "snap")])
    events = set(snap.sql("SELECT id FROM events WHERE zone_id = 'zone-w'")["id"])
    changes = set(snap.sql("SELECT request_id FROM admin_events WHERE zone_id = 'zone-w'"
                           )["request_id"])
    assert events == changes


def test_cli_summary_names_the_admin_changes(pg, make_db, tmp_path, capsys) -> None:
    from caracal_forensics.cli.app import run

    db = make_db()
    with pytest.raises(SystemExit) as done:
        run(["snapshot", "--dsn", db.url(pg), "--out", str(tmp_path / "snap")])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "67 events" in out and "9 admin changes" in out


def test_the_watermark_as_text_and_without_its_name(pg, make_db, tmp_path) -> None:
    """Another release's watermark table: a text hour, no name column."""
    db = make_db()
    pg.psql("DROP TABLE audit_export_watermark; CREATE TABLE audit_export_watermark "
            "(last_exported_hour text); INSERT INTO audit_export_watermark VALUES "
            f"('2026-05-12T09'); GRANT SELECT ON audit_export_watermark TO {db.reader};",
            dbname=db.name)
    manifest = take_snapshot(db.url(pg), str(tmp_path / "snap"))
    assert manifest["last_exported_hour"] == "2026-05-12T09"


def test_reading_is_refused_as_an_unreadable_column_set(pg, make_db, tmp_path) -> None:
    """A table named admin_audit_events that is not Caracal's: one clear error."""
    db = make_db()
    pg.psql("ALTER TABLE admin_audit_events DROP COLUMN chain_seq", dbname=db.name)
    with pytest.raises(DatabaseError, match="admin_audit_events has no column chain_seq"):
        take_snapshot(db.url(pg), str(tmp_path / "snap"))
    with psycopg.connect(pg.dsn(dbname=db.name)) as conn:  # the database is untouched
        assert conn.execute("SELECT count(*) FROM admin_audit_events").fetchone()[0] == 9


def test_the_fixture_key_verifies_the_incident_events(tmp_path) -> None:
    """The incident's events are chained with fixtures/key.hex (the admin chain's own
    verification is tested with the admin verifier)."""
    from caracal_forensics.chain.verifier import Verifier

    report = Verifier(key=FIXTURE_KEY_FILE.read_text().strip()).verify_paths([str(EVENTS)])
    assert report.status == "intact"
