"""The Spark engine gives the local engine's report: the same findings, counts, checks
and exit code, over the hourly OCSF tree and canonical snapshots, intact and with each
kind of tampering. Pieces of 32 rows make every zone span many tasks, so links are
checked across task boundaries."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE

import caracal_forensics as cf
from caracal_forensics.spark.verify import verify_paths as spark_verify

KEY = FIXTURE_KEY_FILE.read_text().strip()
OCSF = FIXTURE_EXPORT / "ocsf"
HOUR = Path("audit/2026/05/11/2026-05-11T09.parquet")
#: rows per Spark task: each of the fixture's zones (about 100 rows) spans several tasks
PIECE_ROWS = 32


def _ocsf(tmp_path: Path, change=None) -> Path:
    """A copy of the fixture's hourly tree, ``change`` applied to one hour's rows."""
    root = tmp_path / "ocsf"
    shutil.copytree(OCSF, root)
    if change is not None:
        path = root / HOUR
        rows = pq.read_table(path).to_pylist()
        rows = change(rows)
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
    return root


def _snapshot(tmp_path: Path, change=None) -> Path:
    """A snapshot ingested from the fixture's table dump, ``change`` applied to its rows."""
    text = (FIXTURE_EXPORT / "db.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if change is not None:
        rows = [rows[0], *change(rows[1:], rows[0])]
    dump = tmp_path / "dump" / "db.csv"
    dump.parent.mkdir(parents=True)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    dump.write_text(out.getvalue(), encoding="utf-8")
    from caracal_forensics.snapshot import open_sources

    open_sources([str(dump)], by_zone=True).ingest(str(tmp_path / "snap"))
    return tmp_path / "snap"


def _set(rows, i, **values):
    rows[i] = {**rows[i], **values}
    return rows


def _csv_set(index, column, value):
    def change(rows, header):
        rows[index][header.index(column)] = value(rows[index][header.index(column)])
        return rows
    return change


def _tampered(rows):
    """Every kind of tampering at once, far enough apart to be told apart."""
    rows = _set(rows, 20, decision="allow" if rows[20]["decision"] == "deny" else "deny")
    rows = _set(rows, 30, chain_hmac="0" * 64)
    rows = _set(rows, 70, event_id=rows[69]["event_id"])         # an id replayed
    rows = rows[:90] + [{**rows[90], "event_id": "forged"}] + rows[90:]  # a second version
    rows = rows[:110] + [rows[110]] + rows[110:]                  # an exact copy
    return rows[:130] + rows[131:]                                # a row deleted: a gap


def _cut(rows, header):
    """The snapshot's dump tampered: a prev link, a content field, a row gone, and the
    last event of the dump cut off (only an anchor sees that)."""
    rows = _csv_set(100, "prev_content_sha256", lambda v: "ab" * 32)(rows, header)
    rows = _csv_set(120, "request_id", lambda v: v + "x")(rows, header)
    return rows[:150] + rows[151:-1]


def _anchor(tmp_path):
    """A report of the intact snapshot: the zone heads the cut one must still hold."""
    return cf.Verifier(key=KEY).verify_paths([_snapshot(tmp_path / "before")])


CASES = {
    "ocsf intact": lambda t: (_ocsf(t), {}),
    "ocsf tampered": lambda t: (_ocsf(t, _tampered), {}),
    "ocsf tampered, no key, microseconds not recovered": lambda t: (
        _ocsf(t, _tampered), {"key": None, "recover_microseconds": False}),
    "ocsf wrong key, two zones": lambda t: (
        _ocsf(t), {"key": "ab" * 32, "zones": ["zone-beta", "no-such-zone"]}),
    "snapshot intact": lambda t: (_snapshot(t), {}),
    "snapshot tampered, anchored": lambda t: (_snapshot(t, _cut), {"anchor": _anchor(t)}),
}

#: what the local engine must find in each case (so that the comparison means something)
EXPECTED = {
    "ocsf tampered": {"content_mismatch", "hmac_mismatch", "sequence_gap",
                      "duplicate_event", "conflicting_duplicate"},
    "ocsf tampered, no key, microseconds not recovered": {"sequence_gap", "unverifiable"},
    "ocsf wrong key, two zones": {"hmac_mismatch", "unverifiable"},
    "snapshot tampered, anchored": {"chain_break", "content_mismatch", "sequence_gap",
                                    "truncated"},
}


def _comparable(report) -> dict:
    data = report.to_dict()
    data.pop("generated_at", None)
    return data


@pytest.mark.parametrize("case", sorted(CASES))
def test_spark_report_is_the_local_report(spark, tmp_path, case):
    source, options = CASES[case](tmp_path)
    options.setdefault("key", KEY)
    local = cf.Verifier(**options).verify_paths([source])
    remote = spark_verify(cf.Verifier(**options, engine="spark"), [source], spark=spark,
                          piece_rows=PIECE_ROWS)
    assert _comparable(remote) == _comparable(local)
    assert remote.exit_code == local.exit_code
    assert EXPECTED.get(case, set()) <= {f.kind for f in local.findings}
    if "intact" in case:
        assert local.status == "intact"


def test_pieces_split_every_zone():
    """The pieces the tests use put each zone's rows in several tasks (no Spark needed)."""
    from caracal_forensics.sources import scan
    from caracal_forensics.spark import units

    zones: dict[str, set[int]] = {}
    for piece in units.plan(scan([str(OCSF)]), PIECE_ROWS):
        table = units.read({"no": piece.no, "path": piece.path, "shape": piece.shape,
                            "grp": piece.grp, "first": piece.first, "start": piece.start,
                            "rows": piece.rows})
        for zone in set(table.column("zone_id").to_pylist()):
            zones.setdefault(zone, set()).add(piece.no)
    assert zones and all(len(pieces) >= 3 for pieces in zones.values()), zones


def test_spark_verifies_a_snapshots_admin_chain_and_its_events(spark, tmp_path):
    """A canonical snapshot holding both chains: on Spark the events, and beside them the
    admin part, give the local engine's two sections."""
    from support.cli import run_cli
    from support.paths import FIXTURES

    snapshot = tmp_path / "snap"
    assert run_cli("ingest", "--source", FIXTURES / "incident", "--out", snapshot).code == 0
    local = cf.Verifier(key=KEY).verify_paths([snapshot])
    remote = cf.Verifier(key=KEY, engine="spark").verify_paths([snapshot])
    assert remote.admin is not None and local.admin is not None
    assert (remote.status, remote.admin.status) == (local.status, local.admin.status) == (
        "intact", "intact")
    assert remote.admin.events_checked == local.admin.events_checked == 9
    assert remote.events_checked == local.events_checked


def test_a_piece_finds_the_links_inside_it():
    """Each piece tells which rows have their predecessor and successor in it (and the
    predecessor's content hash): only the others go through Spark's joins."""
    from caracal_forensics.sources import scan
    from caracal_forensics.spark import units
    from caracal_forensics.spark.verify import piece_rows

    piece = units.plan(scan([str(OCSF)]), PIECE_ROWS)[1]
    table = piece_rows(dict(zip(("no", "path", "shape", "grp", "first", "start", "rows"),
                                piece.row(), strict=False)), bytes.fromhex(KEY), None, True)
    rows = table.to_pylist()
    c = {(r["zone_id"], r["seq"]): r["c"] for r in rows}
    for r in rows:
        key = (r["zone_id"], r["seq"])
        assert r["lp"] == ((key[0], key[1] - 1) in c)
        assert r["ls"] == ((key[0], key[1] + 1) in c)
        assert r["lc"] == c.get((key[0], key[1] - 1))
    assert any(r["lp"] and r["ls"] for r in rows)
    assert not all(r["lp"] and r["ls"] for r in rows)


def test_a_local_session_has_room_for_its_cached_rows(spark):
    """A local session's JVM (driver and executor in one) gets more than Spark's 1g, in
    which a 1M-event verify's cached rows were evicted and recomputed."""
    import os

    from caracal_forensics import spark as engine

    if os.environ.get("SPARK_DRIVER_MEMORY"):
        pytest.skip("$SPARK_DRIVER_MEMORY set")
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.driver.memory") == engine.LOCAL_DRIVER_MEMORY
