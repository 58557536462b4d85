"""``snapshot``: a consistent, verifiable snapshot taken from a real PostgreSQL 15.

Each test gets a fresh database built from tests/sql/audit_schema.sql, filled through
audit_append() (which computes the chain in SQL with pgcrypto), and a read-only role that
logs in over TCP with a scram-sha-256 password.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from support.paths import SCHEMA, VECTOR_KEY_FILE
from support.pgserver import PgServer

from caracal_forensics import pgsnapshot
from caracal_forensics.chain.digest import chain_hmac, content_sha256
from caracal_forensics.chain.verify import verify
from caracal_forensics.cli.app import run
from caracal_forensics.errors import DatabaseError, UsageError
from caracal_forensics.keys import parse_key
from caracal_forensics.pgsnapshot import redact_dsn, take_snapshot
from caracal_forensics.snapshot import open_sources

KEY_HEX = VECTOR_KEY_FILE.read_text().strip()
KEY = parse_key(KEY_HEX, origin="key.hex")

APPEND = """
SELECT chain_seq FROM audit_append(decode(%s, 'hex'), %s, %s, %s, %s, %s, %s, %s, %s, %s,
                                   %s::jsonb, %s::jsonb, %s::jsonb, %s::timestamptz, NULL)
"""

ZONES = ("zone-alpha", "zone-ü-beta", "zone-gamma")

#: jsonb inputs that PostgreSQL normalises: exponents, key order, escapes, non-ASCII.
METADATA = [
    '{"principal_id": "alice", "amount": 1.50e1, "ratio": 1E-2, "n": -0.0}',
    '{"zz": 1, "a": [1e2, 1.0e2, 12345678901234567890.125e-3], "b": {"y": true, "x": null}}',
    '{"name": "Zoë 🦁 \\u00e9", "sep": "a\\u2028b", "ctl": "\\u0001\\t\\"q\\"", "s": "/"}',
    '{"requested_scopes": ["read", "write"], "trace_id": "t-1", "session_id": null}',
    '{"big": 1e30, "small": -1.25E+3, "x": 0.000}',
]


@dataclass
class Db:
    name: str
    reader: str
    password: str

    def url(self, pg: PgServer, password: str | None = None) -> str:
        return pg.url(user=self.reader, dbname=self.name, password=password or self.password)

    def dsn(self, pg: PgServer, password: str | None = None) -> str:
        return pg.dsn(user=self.reader, dbname=self.name, password=password or self.password)


def append(
    conn: psycopg.Connection, i: int, zone: str, month: int, event_id: str | None = None
) -> int:
    """Append event ``i`` to ``zone`` with occurred_at in 2026-``month``; its chain_seq."""
    occurred = (
        f"2026-{month:02d}-{1 + i % 27:02d} {i % 24:02d}:{i % 60:02d}:07.{i * 7919 % 10**6:06d}+00"
    )
    return conn.execute(
        APPEND,
        [
            KEY_HEX,
            event_id or f"ev-{i:05d}-{uuid.uuid4().hex[:6]}",
            zone,
            ("token_exchange", "step_up_issued", "replay_detected", "control.invoke")[i % 4],
            _request_id(i),
            ("allow", "deny", "ALLOW")[i % 3],
            "ps-1",
            None if i % 7 == 0 else "psv-3",
            "sha-abc",
            ("complete", "upstream_error", None)[i % 3],
            '[{"policy": "base"}, {"policy": "mfa"}]' if i % 2 else None,
            '[{"step_up_required": "mfa"}]' if i % 3 else "[]",
            METADATA[i % len(METADATA)],
            occurred,
        ],
    ).fetchall()[0][0]


def _request_id(i: int) -> str | None:
    """NULL, "", the text NULL, CSV's special characters: each must survive as itself."""
    specials = {0: None, 1: "", 2: "NULL", 3: 'multi\r\nline, "quoted"\tand\\back'}
    return specials.get(i % 10, f"req-{i // 2}")


def fill(pg: PgServer, db: str, events: int, start: int = 0) -> None:
    """``events`` events over three zones and six months (so six partitions)."""
    with pg.connect(dbname=db) as conn:
        for i in range(start, start + events):
            append(conn, i, ZONES[i % len(ZONES)], 1 + (i // 3) % 6)


@pytest.fixture
def make_db(pg: PgServer):
    """A factory: a fresh audit database with ``events`` events and a read-only role."""

    def make(events: int = 60) -> Db:
        suffix = uuid.uuid4().hex[:10]
        name = pg.create_database(f"snap_{suffix}", SCHEMA)
        fill(pg, name, events)
        pg.psql(
            "INSERT INTO audit_ingest_alerts (event_id, zone_id, kind, detail, observed_at) "
            "VALUES ('ev-00001', 'zone-alpha', 'content_mismatch_on_replay', "
            "'stored=aa incoming=bb', '2026-05-11 09:00:00.123456+00')",
            dbname=name,
        )
        reader = f"reader_{suffix}"
        password = f"Pw-{suffix}-s3cr3t"
        pg.psql(
            f"CREATE ROLE {reader} LOGIN PASSWORD '{password}'; "
            f'GRANT CONNECT ON DATABASE "{name}" TO {reader}; '
            f"GRANT USAGE ON SCHEMA public TO {reader}; "
            f"GRANT SELECT ON audit_events, audit_ingest_alerts TO {reader};",
            dbname=name,
        )
        return Db(name, reader, password)

    return make


def verify_dir(path: Path):
    """The verify engine's report for a snapshot directory, with the key."""
    snap = open_sources([str(path)])
    return verify(snap.duckdb, key=KEY, inputs=snap.inputs)


def all_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def db_rows(pg: PgServer, db: str, sql: str) -> list[list[str]]:
    """Rows as psql prints them (unaligned); fields split on 0x1F, records on 0x1E (a value
    may hold newlines, and jsonb text holds U+2028 raw)."""
    out = pg.psql(sql, dbname=db, args=("-F", "\x1f", "-R", "\x1e"))
    return [record.split("\x1f") for record in out.rstrip("\n").split("\x1e") if record]


def test_snapshot_as_read_only_role_verifies_intact(pg, make_db, tmp_path) -> None:
    db = make_db(60)
    out = tmp_path / "snap"
    manifest = take_snapshot(db.url(pg), str(out))

    assert manifest["events"] == 60 and manifest["alerts"] == 1
    source = manifest["source"]
    assert source["server_version"].startswith("15")
    assert source["snapshot_time"].endswith("Z")
    assert source["transaction_snapshot"]
    assert source["user"] == db.reader and source["database"] == db.name
    assert source["dsn"] == redact_dsn(db.url(pg))
    assert f"user={db.reader}" in source["dsn"] and "password" not in source["dsn"]
    assert {i["shape"] for i in manifest["inputs"]} == {"postgres"}
    assert [i["rows"] for i in manifest["inputs"]] == [60, 1]

    # Per zone, the manifest's head is the database's head.
    heads = db_rows(
        pg,
        db.name,
        "SELECT DISTINCT ON (zone_id) zone_id, chain_seq, content_sha256 "
        "FROM audit_events ORDER BY zone_id, chain_seq DESC",
    )
    assert {
        z: (str(h["last_seq"]), h["last_content_sha256"]) for z, h in manifest["zones"].items()
    } == {z: (seq, sha) for z, seq, sha in heads}
    assert set(manifest["zones"]) == set(ZONES)

    # The password is nowhere in what was written.
    assert db.password.encode() not in all_bytes(out)

    report = verify_dir(out)
    assert report.status == "intact", report.to_json()
    assert report.events_checked == 60


def test_snapshot_is_exact_copy_of_the_table(pg, make_db, tmp_path) -> None:
    """jsonb text, timestamps to the microsecond and the chain survive the trip unchanged."""
    db = make_db(30)
    out = tmp_path / "snap"
    take_snapshot(db.dsn(pg), str(out))
    expected = db_rows(
        pg,
        db.name,
        "SELECT id, coalesce(metadata_json::text, '~'), coalesce(diagnostics_json::text, '~'), "
        "coalesce(determining_policies_json::text, '~'), "
        "(extract(epoch FROM occurred_at) * 1000000)::bigint, "
        # hex: psql's text output (and Python's universal newlines) would turn \r\n into \n
        "upper(encode(convert_to(coalesce(request_id, '~'), 'UTF8'), 'hex')), "
        "coalesce(evaluation_status, '~'), chain_hmac FROM audit_events ORDER BY id",
    )
    snap = open_sources([str(out)])
    got = snap.sql(
        "SELECT id, coalesce(metadata_json, '~'), coalesce(diagnostics_json, '~'), "
        "coalesce(determining_policies_json, '~'), epoch_us(occurred_at)::VARCHAR, "
        "hex(encode(coalesce(request_id, '~'))), coalesce(evaluation_status, '~'), chain_hmac "
        "FROM events ORDER BY id"
    ).rows()
    assert [list(r) for r in got] == expected
    # And an independent recomputation of the chain from the snapshot's rows.
    rows = snap.sql("SELECT * FROM events ORDER BY zone_id, chain_seq").to_dicts()
    prev: dict[str, str] = {}
    for row in rows:
        assert content_sha256(row) == row["content_sha256"]
        assert chain_hmac(KEY, row["content_sha256"], prev.get(row["zone_id"])) == row["chain_hmac"]
        assert row["prev_content_sha256"] == prev.get(row["zone_id"])
        assert row["source_file"].endswith(f"/{db.name}#audit_events")
        assert row["source_shape"] == "postgres" and row["occurred_at_digits"] == 6
        prev[row["zone_id"]] = row["content_sha256"]
    assert sorted(r["source_line"] for r in rows) == list(range(1, 31))


def test_filters_zone_since_until(pg, make_db, tmp_path) -> None:
    db = make_db(60)
    # since is inclusive: take an existing occurred_at as the bound.
    (since,) = db_rows(
        pg,
        db.name,
        """SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM audit_events WHERE zone_id = 'zone-alpha' ORDER BY occurred_at OFFSET 3 LIMIT 1""",
    )[0]
    until = "2026-05-01T00:00:00Z"
    window = (
        f"zone_id IN ('zone-alpha', 'zone-gamma') "
        f"AND occurred_at >= '{since}' AND occurred_at < '{until}'"
    )
    # Per zone, the chain segment from the first to the last event inside the window.
    segments = db_rows(
        pg,
        db.name,
        f"SELECT zone_id, min(chain_seq), max(chain_seq), count(*) FROM audit_events "
        f"WHERE {window} GROUP BY zone_id ORDER BY zone_id",
    )
    out = tmp_path / "snap"
    manifest = take_snapshot(
        db.url(pg), str(out), zones=["zone-alpha", "zone-gamma"], since=since, until=until
    )
    assert {
        z: (h["first_seq"], h["last_seq"], h["events"]) for z, h in manifest["zones"].items()
    } == {z: (int(lo), int(hi), int(hi) - int(lo) + 1) for z, lo, hi, _n in segments}
    filters = manifest["source"]["filters"]
    assert filters["zones"] == ["zone-alpha", "zone-gamma"] and filters["window"]
    snap = open_sources([str(out)])
    (inside,) = snap.sql(
        "SELECT count(*) FROM events WHERE occurred_at >= $1::TIMESTAMPTZ "
        "AND occurred_at < $2::TIMESTAMPTZ",
        [since, until],
    ).rows()[0]
    assert inside == sum(int(n) for *_, n in segments)  # every event of the window is in
    # The time window is the one thing the order of chain_seq does not follow: the events
    # in the segments that lie outside the window keep the chain whole, so it verifies.
    assert manifest["events"] > inside
    report = verify_dir(out)
    assert report.status == "intact", report.to_json()
    assert {f.kind for f in report.findings} <= {"unanchored_start"}

    # Alerts follow the zone filter too.
    assert manifest["alerts"] == 1
    assert take_snapshot(db.url(pg), str(tmp_path / "g"), zones=["zone-gamma"])["alerts"] == 0
    # Filter values are quoted as literals: unicode and quotes are values, not SQL.
    (beta,) = db_rows(
        pg, db.name, "SELECT count(*) FROM audit_events WHERE zone_id = 'zone-ü-beta'"
    )[0]
    zones = ["zone-ü-beta", "x'); DROP TABLE audit_events; --", 'a"b,{c}']
    manifest = take_snapshot(db.url(pg), str(tmp_path / "u"), zones=zones)
    assert manifest["events"] == int(beta) > 0 and list(manifest["zones"]) == ["zone-ü-beta"]
    assert manifest["source"]["filters"]["window"] is None
    with pytest.raises(UsageError, match="^since must be an ISO 8601 time"):
        take_snapshot(db.url(pg), str(tmp_path / "x"), since="last tuesday")
    with pytest.raises(UsageError, match="earlier"):
        take_snapshot(db.url(pg), str(tmp_path / "x"), since=until, until=since)


def test_update_in_the_database_fails_verification_at_that_event(pg, make_db, tmp_path) -> None:
    db = make_db(30)
    (event_id, seq) = db_rows(
        pg,
        db.name,
        "SELECT id, chain_seq FROM audit_events WHERE zone_id = 'zone-gamma' AND chain_seq = 4",
    )[0]
    pg.psql(
        'UPDATE audit_events SET metadata_json = metadata_json || \'{"principal_id": "mallory"}\' '
        f"WHERE id = '{event_id}'",
        dbname=db.name,
    )
    out = tmp_path / "snap"
    take_snapshot(db.url(pg), str(out))
    report = verify_dir(out)
    assert report.status == "tampered"
    blamed = {(f.zone_id, f.event_id, f.chain_seq) for f in report.findings_of("content_mismatch")}
    assert blamed == {("zone-gamma", event_id, int(seq))}
    assert all(f.zone_id == "zone-gamma" for f in report.findings if f.fails)


def test_delete_in_the_database_fails_verification(pg, make_db, tmp_path) -> None:
    db = make_db(30)
    pg.psql(
        "DELETE FROM audit_events WHERE zone_id = 'zone-alpha' AND chain_seq = 5", dbname=db.name
    )
    out = tmp_path / "snap"
    manifest = take_snapshot(db.url(pg), str(out))
    assert manifest["events"] == 29
    report = verify_dir(out)
    assert report.status == "tampered"
    gaps = report.findings_of("sequence_gap")
    assert [f.zone_id for f in gaps] == ["zone-alpha"]
    assert all(f.zone_id == "zone-alpha" for f in report.findings if f.fails)


def test_concurrent_writer_does_not_make_the_snapshot_inconsistent(
    pg, make_db, tmp_path, monkeypatch
) -> None:
    db = make_db(300)
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []
    committed_during_read = threading.Event()

    def writer() -> None:
        try:
            with pg.connect(dbname=db.name) as conn:
                i = 10_000
                while not stop.is_set():
                    with conn.transaction():
                        append(conn, i, ZONES[i % 3], 1 + i % 6, event_id=f"w-{i}")
                        conn.execute(
                            "INSERT INTO audit_ingest_alerts (event_id, zone_id, kind, detail, "
                            "observed_at) VALUES (%s, %s, 'writer', 'w', now())",
                            [f"w-{i}", ZONES[i % 3]],
                        )
                    written[0] += 1
                    i += 1
                    if written[0] >= 30:
                        committed_during_read.set()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            committed_during_read.set()

    # Hold the read after its first batch until the writer has committed rows, so the
    # writes certainly land while the snapshot's transaction is open.
    real_copy = pgsnapshot._copy_batches

    def slow_copy(*args, **kwargs):
        for n, rows in enumerate(real_copy(*args, **kwargs)):
            yield rows
            if n == 0:
                committed_during_read.wait(timeout=60)

    monkeypatch.setattr(pgsnapshot, "_copy_batches", slow_copy)
    thread = threading.Thread(target=writer, daemon=True)
    out = tmp_path / "snap"
    thread.start()
    try:
        manifest = take_snapshot(db.url(pg), str(out), block_bytes=2048)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert written[0] >= 30
    (total,) = db_rows(pg, db.name, "SELECT count(*) FROM audit_events")[0]
    assert manifest["events"] < int(total)  # the writes after the snapshot began are not in it

    report = verify_dir(out)
    assert report.status == "intact", report.to_json()
    snap = open_sources([str(out)])
    for zone, head in manifest["zones"].items():
        assert head["first_seq"] == 1 and head["last_seq"] == head["events"], zone
        (sha,) = db_rows(
            pg,
            db.name,
            f"SELECT content_sha256 FROM audit_events WHERE zone_id = '{zone}' "
            f"AND chain_seq = {head['last_seq']}",
        )[0]
        assert sha == head["last_content_sha256"]
    # The alerts were read in the same transaction as the events: the writer committed
    # each event together with its alert, so the snapshot has both or neither.
    orphans = snap.sql(
        "SELECT count(*) AS n FROM alerts WHERE kind = 'writer' "
        "AND event_id NOT IN (SELECT id FROM events)"
    )["n"][0]
    assert orphans == 0
    writer_alerts = snap.sql("SELECT count(*) AS n FROM alerts WHERE kind = 'writer'")["n"][0]
    writer_events = snap.sql("SELECT count(*) AS n FROM events WHERE id LIKE 'w-%'")["n"][0]
    assert writer_alerts == writer_events == manifest["events"] - 300


# --- libpq conventions ----------------------------------------------------------------


def test_libpq_environment_and_pgpass(pg, make_db, tmp_path, monkeypatch) -> None:
    db = make_db(6)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg.host}:{pg.port}:{db.name}:{db.reader}:{db.password}\n")
    os.chmod(passfile, 0o600)
    for name, value in {
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGUSER": db.reader,
        "PGDATABASE": db.name,
        "PGPASSFILE": str(passfile),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    manifest = take_snapshot(None, str(tmp_path / "a"))
    assert manifest["events"] == 6 and manifest["source"]["dsn"] == ""
    assert manifest["source"]["connection"] == f"postgresql://{pg.host}:{pg.port}/{db.name}"

    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.setenv("PGPASSWORD", db.password)
    manifest = take_snapshot(f"dbname={db.name}", str(tmp_path / "b"))
    assert manifest["events"] == 6
    assert db.password.encode() not in all_bytes(tmp_path / "b")


def test_redact_dsn() -> None:
    from psycopg.conninfo import conninfo_to_dict

    redacted = redact_dsn("host=h user=u password=secret dbname=d")
    assert conninfo_to_dict(redacted) == {"host": "h", "user": "u", "dbname": "d"}
    assert "secret" not in redact_dsn("postgresql://u:secret@h:5/d?sslmode=require")
    assert "sslmode=require" in redact_dsn("postgresql://u:secret@h:5/d?sslmode=require")
    assert redact_dsn(None) == "" and redact_dsn("") == ""
    with pytest.raises(UsageError) as caught:
        redact_dsn("host=h password=secret oops")
    assert "secret" not in str(caught.value)


# --- errors: one clear line, exit 2, never the password ---------------------------------


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        run(argv)
    out, err = capsys.readouterr()
    return caught.value.code or 0, out, err


def assert_one_line_error(code: int, out: str, err: str, *needles: str, secret: str) -> None:
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("caracal-forensics: error: "), err
    for needle in needles:
        assert needle in err, err
    assert secret not in err


def test_cli_snapshot_and_summary(pg, make_db, tmp_path, capsys) -> None:
    db = make_db(12)
    out = tmp_path / "snap"
    code, stdout, err = cli(["snapshot", "--dsn", db.url(pg), "--out", str(out)], capsys)
    assert code == 0, err
    assert "wrote 12 events, 1 alerts in 3 zone(s)" in stdout
    assert db.password not in stdout + err
    code, stdout, err = cli(
        [
            "snapshot",
            "--dsn",
            db.url(pg),
            "--out",
            str(tmp_path / "j"),
            "--zone",
            "zone-alpha",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    manifest = json.loads(stdout)
    assert list(manifest["zones"]) == ["zone-alpha"] and db.password not in stdout


def test_connection_refused(pg, tmp_path, capsys) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://reader:Refused-s3cret@127.0.0.1:{port}/audit"
    with pytest.raises(DatabaseError, match="refused"):
        take_snapshot(url, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()  # nothing left behind
    code, out, err = cli(["snapshot", "--dsn", url, "--out", str(tmp_path / "b")], capsys)
    assert_one_line_error(code, out, err, "cannot connect", "refused", secret="Refused-s3cret")


def test_authentication_failed(pg, make_db, tmp_path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="psycopg")
    db = make_db(3)
    wrong = "Wr0ng-" + db.password
    with pytest.raises(DatabaseError, match="password authentication failed"):
        take_snapshot(db.dsn(pg, password=wrong), str(tmp_path / "a"))
    code, out, err = cli(
        ["snapshot", "--dsn", db.url(pg, password=wrong), "--out", str(tmp_path / "b")], capsys
    )
    assert_one_line_error(code, out, err, "authentication failed", db.reader, secret=wrong)
    assert db.password not in err
    take_snapshot(db.url(pg), str(tmp_path / "ok"))
    assert caplog.records  # psycopg logged its connection attempts...
    assert not any(db.password in r.getMessage() for r in caplog.records)  # ...but no password


def test_no_such_table(pg, make_db, tmp_path, capsys) -> None:
    db = make_db(1)
    empty = pg.create_database(f"empty_{uuid.uuid4().hex[:8]}")
    pg.psql(f'GRANT CONNECT ON DATABASE "{empty}" TO {db.reader}')
    url = pg.url(user=db.reader, dbname=empty, password=db.password)
    with pytest.raises(DatabaseError, match="no table audit_events"):
        take_snapshot(url, str(tmp_path / "a"))
    code, out, err = cli(["snapshot", "--dsn", url, "--out", str(tmp_path / "b")], capsys)
    assert_one_line_error(code, out, err, "audit_events", secret=db.password)


def test_permission_denied(pg, make_db, tmp_path, capsys) -> None:
    db = make_db(3)
    outsider = f"outsider_{uuid.uuid4().hex[:8]}"
    pg.psql(f"CREATE ROLE {outsider} LOGIN PASSWORD 'Outs1der-pw'")
    url = pg.url(user=outsider, dbname=db.name, password="Outs1der-pw")
    with pytest.raises(DatabaseError, match="permission denied"):
        take_snapshot(url, str(tmp_path / "a"))
    code, out, err = cli(["snapshot", "--dsn", url, "--out", str(tmp_path / "b")], capsys)
    assert_one_line_error(code, out, err, "permission denied", "audit_events", secret="Outs1der-pw")
    # SELECT on the events but not on the alerts is refused as well (a partial read is not
    # a snapshot of the audit data).
    pg.psql(f"GRANT SELECT ON audit_events TO {outsider}", dbname=db.name)
    with pytest.raises(DatabaseError, match="permission denied.*audit_ingest_alerts"):
        take_snapshot(url, str(tmp_path / "c"))


def test_out_dir_must_be_new_or_empty(pg, make_db, tmp_path) -> None:
    db = make_db(1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="not an empty directory"):
        take_snapshot(db.url(pg), str(tmp_path / "full"))
