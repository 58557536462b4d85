"""``alerts``: audit_ingest_alerts rows from a CSV dump, a JSON lines dump and a snapshot."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from support.paths import SCHEMA, VECTOR_EXPORT
from support.pgserver import PgServer

from caracal_forensics.cli.app import run
from caracal_forensics.pgsnapshot import take_snapshot
from caracal_forensics.snapshot import open_sources

ALERTS_CSV = VECTOR_EXPORT / "alerts.csv"
DB_CSV = VECTOR_EXPORT / "db.csv"

VECTOR_ALERT = {
    "id": "1",
    "event_id": "ev-0000042",
    "zone_id": "zone-beta",
    "kind": "content_mismatch_on_replay",
    "detail": "stored=aa incoming=bb",
    "observed_at": "2026-05-11T09:00:00Z",
    "source": f"{ALERTS_CSV}:2",
}


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    """Rich folds cells to the terminal width; keep each row on one line for the asserts."""
    monkeypatch.setenv("COLUMNS", "250")


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        run(argv)
    out, err = capsys.readouterr()
    return caught.value.code or 0, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.split("\n") if line]


def test_alerts_from_the_csv_vector(capsys) -> None:
    frame = open_sources([str(ALERTS_CSV)]).alerts()
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert row["kind"] == "content_mismatch_on_replay" and row["source_line"] == 2
    assert row["observed_at"].isoformat() == "2026-05-11T09:00:00+00:00"

    code, out, err = cli(["alerts", "--source", str(ALERTS_CSV), "--json"], capsys)
    assert code == 0 and err == ""
    assert json_lines(out) == [VECTOR_ALERT]

    code, out, err = cli(["alerts", "-s", str(ALERTS_CSV)], capsys)
    assert code == 0
    for text in ("content_mismatch_on_replay", "zone-beta", "ev-0000042", "2026-05-11T09:00:00Z"):
        assert text in out
    assert "1 alert(s)" in out


def test_filters_and_empty_sources(capsys) -> None:
    code, out, _ = cli(["alerts", "-s", str(ALERTS_CSV), "--zone", "zone-x", "--json"], capsys)
    assert code == 0 and out == ""
    code, out, _ = cli(
        ["alerts", "-s", str(ALERTS_CSV), "--kind", "content_mismatch_on_replay", "--json"], capsys
    )
    assert json_lines(out) == [VECTOR_ALERT]
    # Sources without any alerts: say so on stderr, show nothing, succeed.
    code, out, err = cli(["alerts", "-s", str(DB_CSV)], capsys)
    assert code == 0 and "no ingest alerts" in out
    assert "none of the sources holds audit_ingest_alerts" in err


@pytest.fixture
def two_dumps(tmp_path) -> Path:
    """The same alerts table dumped as CSV and as JSON lines, in one directory; the JSON
    lines also hold a second version of alert 2 (same id, another detail)."""
    (tmp_path / "alerts.csv").write_text(
        "id,event_id,zone_id,kind,detail,observed_at\n"
        "1,ev-1,zone-a,content_mismatch_on_replay,stored=aa incoming=bb,2026-05-11 09:00:00+00\n"
        "2,ev-2,zone-a,content_mismatch_on_replay,stored=cc incoming=dd,2026-05-11 09:05:00+00\n",
        encoding="utf-8",
    )
    rows = [
        {"id": 1, "event_id": "ev-1", "zone_id": "zone-a", "kind": "content_mismatch_on_replay",
         "detail": "stored=aa incoming=bb", "observed_at": "2026-05-11T09:00:00+00:00"},
        {"id": 2, "event_id": "ev-2", "zone_id": "zone-a", "kind": "content_mismatch_on_replay",
         "detail": "stored=cc incoming=dd", "observed_at": "2026-05-11T09:05:00+00:00"},
        {"id": 2, "event_id": "ev-2", "zone_id": "zone-a", "kind": "content_mismatch_on_replay",
         "detail": "stored=cc incoming=XX", "observed_at": "2026-05-11T09:05:00+00:00"},
    ]  # fmt: skip
    (tmp_path / "alerts.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return tmp_path


def test_alerts_in_two_shapes_are_shown_once(two_dumps, capsys) -> None:
    """Issue 15.12: an alert in both dumps is one alert; a differing version still shows."""
    code, out, _ = cli(["alerts", "-s", str(two_dumps), "--json"], capsys)
    assert code == 0
    records = json_lines(out)
    assert [(r["id"], r["detail"]) for r in records] == [
        ("1", "stored=aa incoming=bb"),
        ("2", "stored=cc incoming=dd"),
        ("2", "stored=cc incoming=XX"),
    ]
    assert records[0]["source"] == f"{two_dumps / 'alerts.csv'}:2"  # the first file's copy
    snap = open_sources([str(two_dumps)])
    assert snap.alerts().height == 3
    assert snap.stats()["alerts"] == 3
    code, out, _ = cli(["stats", "-s", str(two_dumps), "--json"], capsys)
    assert json.loads(out)["alerts"] == 3
    code, out, _ = cli(["query", "ingest_alerts", "-s", str(two_dumps), "--json"], capsys)
    assert code == 0 and len(json_lines(out)) == 3


def test_a_row_repeated_inside_one_dump_still_shows(tmp_path, capsys) -> None:
    text = ALERTS_CSV.read_text(encoding="utf-8")
    (tmp_path / "alerts.csv").write_text(text + text.split("\n", 1)[1], encoding="utf-8")
    code, out, _ = cli(["alerts", "-s", str(tmp_path / "alerts.csv"), "--json"], capsys)
    assert [r["source"].rsplit(":", 1)[1] for r in json_lines(out)] == ["2", "3"]


@pytest.fixture
def alerts_db(pg: PgServer) -> str:
    """An audit database with alerts: unicode, markup and control characters, 12 ids."""
    name = pg.create_database(f"alerts_{uuid.uuid4().hex[:10]}", SCHEMA)
    rows = [
        "('ev-1', 'zone-α', 'content_mismatch_on_replay', 'stored=aa incoming=bb', "
        "'2026-03-01 10:00:00.000001+00')",
        "('ev-2', 'zone-β', 'hmac_mismatch_on_replay', 'détail «é» 🦁', '2026-02-01 10:00:00+01')",
        "('ev-3', 'zone-α', 'odd', E'[bold]not markup[/bold] \\x1b[31mred', "
        "'2026-04-01 00:00:00.5+00')",
        "(NULL, NULL, 'no_event', NULL, NULL)",
    ]
    # Nine alerts at one instant: ids 4..12 must come out in numeric order (10 after 9).
    rows += [
        f"('ev-{n}', 'zone-γ', 'content_mismatch_on_replay', 'n={n}', '2026-05-01 00:00:00+00')"
        for n in range(4, 13)
    ]
    pg.psql(
        "INSERT INTO audit_ingest_alerts (event_id, zone_id, kind, detail, observed_at) VALUES "
        + ", ".join(rows),
        dbname=name,
    )
    return name


def expected_alerts(pg: PgServer, db: str) -> list[dict]:
    """The table as PostgreSQL renders it, in the command's order (oldest first, NULL last)."""
    out = pg.psql(
        "SELECT json_build_object('id', id::text, 'event_id', event_id, 'zone_id', zone_id, "
        "'kind', kind, 'detail', detail, 'observed_at', to_char(observed_at AT TIME ZONE 'UTC', "
        """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) FROM audit_ingest_alerts """
        "ORDER BY observed_at NULLS LAST, id",
        dbname=db,
    )
    rows = [json.loads(line) for line in out.split("\n") if line]
    for row in rows:
        if row["observed_at"]:
            row["observed_at"] = row["observed_at"].replace(".000000Z", "Z")
    return rows


def without_source(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "source"} for r in records]


def test_alerts_from_a_json_lines_dump(pg, alerts_db, tmp_path, capsys) -> None:
    dump = tmp_path / "alerts.jsonl"
    # A session time zone other than UTC: the dump carries offsets, the output is UTC.
    text = pg.psql(
        "SET TimeZone = 'America/New_York'; "
        "SELECT row_to_json(a) FROM audit_ingest_alerts a ORDER BY id",
        dbname=alerts_db,
    )
    assert "-04:00" in text or "-05:00" in text
    dump.write_text(text, encoding="utf-8")

    code, out, err = cli(["alerts", "-s", str(dump), "--json"], capsys)
    assert code == 0, err
    records = json_lines(out)
    assert without_source(records) == expected_alerts(pg, alerts_db)
    assert [r["id"] for r in records if r["zone_id"] == "zone-γ"] == [str(n) for n in range(5, 14)]
    assert records[0]["source"] == f"{dump}:2"  # the dump's line of the 2026-02-01 alert

    # The table shows data, never markup, and escapes control characters.
    code, out, _ = cli(["alerts", "-s", str(dump), "--zone", "zone-α"], capsys)
    assert code == 0
    assert "[bold]not markup[/bold]" in out and "\\x1b[31mred" in out
    assert "\x1b" not in out


def test_alerts_from_a_snapshot(pg, alerts_db, tmp_path, capsys) -> None:
    out_dir = tmp_path / "snap"
    manifest = take_snapshot(pg.dsn(dbname=alerts_db), str(out_dir))
    assert manifest["alerts"] == 13 and manifest["events"] == 0

    frame = open_sources([str(out_dir)]).alerts(kinds=["content_mismatch_on_replay"])
    assert frame.height == 10
    assert frame["source_shape"].unique().to_list() == ["postgres"]

    code, out, err = cli(["alerts", "-s", str(out_dir), "--json"], capsys)
    assert code == 0, err
    records = json_lines(out)
    assert without_source(records) == expected_alerts(pg, alerts_db)
    assert all(r["source"].split("#")[1].startswith("audit_ingest_alerts:") for r in records)


@pytest.mark.parametrize("native", ["1", "0"])
def test_an_alert_id_that_is_an_object_is_refused(tmp_path, native: str) -> None:
    """str() of it was shown as the id: {'a': JsonbNumber('1')}, Python's repr."""
    from support.cli import run_cli
    from support.paths import FIXTURE_EXPORT

    dump = (FIXTURE_EXPORT / "alerts.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in dump.splitlines()]
    rows[1]["id"] = {"a": [1]}
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    code, out, err = run_cli("alerts", "--json", "-s", path,
                             env={"CARACAL_FORENSICS_NATIVE": native})
    assert code == 2 and out == ""
    assert err == (f"caracal-forensics: error: {path}: line 2: id must be a number, a string "
                   "or null, not an object\n")
