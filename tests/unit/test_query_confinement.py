"""Named queries are text from elsewhere: they read the sources and no other file (issue
14.6). A query dropped into ``$CARACAL_FORENSICS_QUERIES`` that reads the key file beside
the export is refused in ``query``, ``report`` and ``Snapshot.query``; statements that
write files are refused as ``sql`` refuses them; every bundled query still runs confined.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import cli
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics import queries
from caracal_forensics.errors import UsageError

KEY_FILE = VECTORS / "key.hex"  # beside the export, as investigators keep it
KEY_HEX = KEY_FILE.read_text(encoding="ascii").strip()

#: Ways a query could reach the key file (or list it), each one statement.
HOSTILE = {
    "read_text": f"SELECT content FROM read_text('{KEY_FILE}')",
    "read_csv": f"SELECT * FROM read_csv('{KEY_FILE}', header = false)",
    "glob": f"SELECT file FROM glob('{VECTORS}/*')",
}


def write_query(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text(
        f"-- name: {name}\n-- description: A query from elsewhere.\n{sql}\n", "utf-8"
    )


@pytest.fixture
def hostile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "their-queries"
    for reader, sql in HOSTILE.items():
        write_query(folder, f"steal_{reader}", sql)
    write_query(folder, "write_out", f"COPY (SELECT * FROM events) TO '{tmp_path}/out.csv'")
    write_query(folder, "count_events", "SELECT count(*) AS n FROM unique_events")
    monkeypatch.setenv(queries.QUERIES_ENV, str(folder))
    return folder


def refused(text: str) -> bool:
    return "file system operations are disabled" in text and KEY_HEX[:16] not in text


@pytest.mark.parametrize("reader", sorted(HOSTILE))
def test_query_command_confines_named_queries(
    capsys: pytest.CaptureFixture[str], hostile_dir: Path, reader: str
) -> None:
    code, out, err = cli(capsys, "query", f"steal_{reader}", "-s", str(VECTORS), "--json")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert refused(err) and "Traceback" not in err


@pytest.mark.parametrize("reader", sorted(HOSTILE))
def test_snapshot_query_confines_query_files(hostile_dir: Path, reader: str) -> None:
    snap = cf.open(str(VECTORS))
    with pytest.raises(UsageError) as error:
        snap.query(f"steal_{reader}")
    assert refused(str(error.value))
    # the query's own connection is confined, not the snapshot's: a notebook can still
    # write results out through snap.duckdb, and the data is all there
    assert snap.query("count_events")["n"].to_list() == [240]
    assert not queries.is_confined(snap.duckdb)
    assert snap.duckdb.sql("SELECT count(*) FROM read_text($p)", params={"p": str(KEY_FILE)}
                           ).fetchall() == [(1,)]


def test_snapshot_query_confines_on_a_canonical_snapshot(
    hostile_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "case"
    cf.open(str(VECTORS)).ingest(str(out))
    (out.parent / "key.hex").write_text(KEY_HEX + "\n", "ascii")
    write_query(hostile_dir, "steal_beside", f"SELECT content FROM read_text('{tmp_path}/key.hex')")
    snap = cf.open(str(out))
    with pytest.raises(UsageError) as error:
        snap.query("steal_beside")
    assert refused(str(error.value))
    assert snap.query("count_events")["n"].to_list() == [240]
    assert snap.query("jti_collisions").height == cf.open(str(out)).query("jti_collisions").height


def test_a_query_from_elsewhere_needs_a_confined_connection(hostile_dir: Path) -> None:
    snap = cf.open(str(VECTORS))
    with pytest.raises(UsageError, match="runs only on a confined connection"):
        queries.run_named(snap.duckdb, "count_events")
    snap.confine()
    snap.confine()  # again: nothing to do
    assert queries.run_named(snap.duckdb, "count_events").frame["n"].to_list() == [240]
    assert snap.confined_duckdb() is snap.duckdb


def test_writing_statements_in_named_queries_are_refused(
    capsys: pytest.CaptureFixture[str], hostile_dir: Path, tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "query", "write_out", "-s", str(VECTORS))
    assert code == 2 and "statements are not run here" in err
    with pytest.raises(UsageError, match="statements are not run here"):
        cf.open(str(VECTORS)).query("write_out")
    assert not (tmp_path / "out.csv").exists()


def test_report_runs_its_query_confined(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an installation whose query directory was tampered with: the report's query reads
    # the sources and no other file all the same
    installed = tmp_path / "installed-queries"
    for path in queries.BUILTIN_DIR.glob("*.sql"):
        (installed / path.name).parent.mkdir(exist_ok=True)
        (installed / path.name).write_text(path.read_text("utf-8"), "utf-8")
    (installed / "top_denied_principals.sql").write_text(
        "-- name: top_denied_principals\n-- description: d\n-- param: limit = 10\n"
        f"SELECT content AS principal_id, CAST($limit AS BIGINT) AS denies "
        f"FROM read_text('{KEY_FILE}')\n", "utf-8")
    monkeypatch.setattr(queries, "BUILTIN_DIR", installed)
    page = tmp_path / "evidence.html"
    code, out, err = cli(capsys, "report", "--out", str(page), "-s", str(VECTORS),
                         "--key-file", str(KEY_FILE))
    assert code == 2 and refused(err) and not page.exists()
    # in Python too, a query file dropped into the toolkit's own directory runs confined
    with pytest.raises(UsageError) as error:
        cf.open(str(VECTORS)).query("top_denied_principals", limit=3)
    assert refused(str(error.value))


def test_every_bundled_query_runs_confined(capsys: pytest.CaptureFixture[str]) -> None:
    bundled = [q for q in queries.load_queries().values() if queries.is_bundled(q)]
    assert len(bundled) >= 10
    snap = cf.open(str(VECTORS))
    snap.confine()
    for query in bundled:
        queries.run_named(snap.duckdb, query.name, query.example_params)
    code, out, _ = cli(capsys, "query", "jti_collisions", "-s", str(VECTORS), "--json")
    assert code == 0 and out.count("\n") >= 1
