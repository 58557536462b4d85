"""The Spark engine gives the local engine's report: the same findings, counts, checks
and exit code, over the hourly OCSF tree and canonical snapshots, intact and with each
kind of tampering. Pieces of 16 rows make every zone span many tasks, so links are
checked across task boundaries."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import caracal_forensics as cf
from caracal_forensics.spark.verify import verify_paths as spark_verify
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE

KEY = FIXTURE_KEY_FILE.read_text().strip()
OCSF = FIXTURE_EXPORT / "ocsf"
HOUR = Path("audit/2026/05/11/2026-05-11T09.parquet")
#: rows per Spark task: the fixture's zones (about 100 rows each) span several tasks
PIECE_ROWS = 16


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
    dump.parent.mkdir()
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


CASES = {
    "ocsf intact": lambda t: (_ocsf(t), {}),
    "ocsf content": lambda t: (_ocsf(t, lambda r: _set(r, 20, decision="allow"
                                                       if r[20]["decision"] == "deny"
                                                       else "deny")), {}),
    "ocsf hmac": lambda t: (_ocsf(t, lambda r: _set(r, 30, chain_hmac="0" * 64)), {}),
    "ocsf sequence gap": lambda t: (_ocsf(t, lambda r: r[:40] + r[41:]), {}),
    "ocsf duplicate": lambda t: (_ocsf(t, lambda r: r[:50] + [r[50]] + r[50:]), {}),
    "ocsf conflicting duplicate": lambda t: (
        _ocsf(t, lambda r: r[:60] + [{**r[60], "event_id": "forged"}] + r[60:]), {}),
    "ocsf replayed id": lambda t: (
        _ocsf(t, lambda r: _set(r, 70, event_id=r[69]["event_id"])), {}),
    "ocsf microseconds not recovered": lambda t: (
        _ocsf(t), {"recover_microseconds": False}),
    "ocsf no key": lambda t: (_ocsf(t, lambda r: r[:40] + r[41:]), {"key": None}),
    "ocsf wrong key": lambda t: (_ocsf(t), {"key": "ab" * 32}),
    "ocsf one zone": lambda t: (_ocsf(t), {"zones": ["zone-beta", "no-such-zone"]}),
    "snapshot intact": lambda t: (_snapshot(t), {}),
    "snapshot link": lambda t: (
        _snapshot(t, _csv_set(100, "prev_content_sha256", lambda v: "ab" * 32)), {}),
    "snapshot content": lambda t: (
        _snapshot(t, _csv_set(120, "request_id", lambda v: v + "x")), {}),
    "snapshot gap": lambda t: (_snapshot(t, lambda rows, h: rows[:150] + rows[151:]), {}),
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
    if case != "ocsf intact" and "key" not in case and "microseconds" not in case \
            and "zone" not in case and case != "snapshot intact":
        assert local.findings, "the tampering shows"
