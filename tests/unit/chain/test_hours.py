"""Hours without an hourly OCSF file inside the range said complete (``chain/hours.py``):
``through=`` (``--through``), else the watermark a snapshot's manifest records."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support.cli import one_error_line, run_cli
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE

import caracal_forensics as cf
from caracal_forensics.chain.hours import missing_hours, parse_hour, watermark
from caracal_forensics.errors import UsageError

TREE = FIXTURE_EXPORT / "ocsf"
KEY = FIXTURE_KEY_FILE.read_text().strip()


def _hour(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2026-05-11T10", "2026-05-11T10:00:00Z", "2026-05-11 10:59",
                                  "2026-05-11T12:30+02:00", "2026-05-11T10:00:00.5+00"])
def test_an_hour_is_read_in_every_usual_form(text):
    assert parse_hour(text) == _hour("2026-05-11T10:00")


@pytest.mark.parametrize("text", ["yesterday", "2026-05-11T25", ""])
def test_a_bad_hour_names_the_parameter(text):
    with pytest.raises(UsageError, match="through must be an hour such as"):
        cf.Verifier(through=text)


def test_a_bad_hour_names_the_flag():
    result = run_cli("verify", "--source", TREE, "--through", "noon")
    assert result.code == 2
    assert "--through must be an hour such as 2026-05-11T10" in one_error_line(result.err)


def test_runs_of_missing_hours_per_root():
    paths = ["a/audit/2026/05/11/2026-05-11T08.parquet",
             "a/audit/2026/05/11/2026-05-11T11.parquet.gz",
             "b/2026/05/11/2026-05-11T23.parquet",
             "notes/2026-05-11T09.parquet",  # not under YYYY/MM/DD/: not an hourly file
             "a/audit/2026/05/12/2026-05-11T09.parquet"]  # the date parts disagree
    found = missing_hours(paths, _hour("2026-05-12T01:00"))
    assert [(f.kind, f.source, f.severity) for f in found] == [
        ("missing_hour", "a/audit/2026/05/11/2026-05-11T09.parquet", "warning"),
        ("missing_hour", "a/audit/2026/05/11/2026-05-11T12.parquet", "warning"),
        ("missing_hour", "b/2026/05/12/2026-05-12T00.parquet", "warning")]
    assert "2 hours 2026-05-11T09..2026-05-11T10" in found[0].detail
    assert "14 hours 2026-05-11T12..2026-05-12T01" in found[1].detail
    # through before the first hour found, or on the last: nothing is missing
    assert missing_hours(paths[:1], _hour("2026-05-11T07:00")) == []
    assert missing_hours(paths[:1], _hour("2026-05-11T08:00")) == []


@pytest.mark.parametrize("held", [
    {"name": "parquet-hourly", "last_exported_hour": "2026-05-11T12:00:00+00:00"},
    [{"name": "other", "last_exported_hour": "2026-01-01T00:00:00Z"},
     {"name": "parquet-hourly", "last_exported_hour": "2026-05-11 12:00:00+00"}],
    {"parquet-hourly": "2026-05-11T12"},
])
def test_the_watermark_in_a_manifest(held):
    assert watermark({"audit_export_watermark": held}) == _hour("2026-05-11T12:00")
    assert watermark({}) is None


def test_the_watermark_as_snapshot_dsn_records_it():
    held = {"last_exported_hour": "2026-05-11T12:00:00+00:00"}
    assert watermark(held) == _hour("2026-05-11T12:00")
    assert watermark({"last_exported_hour": None}) is None


def test_a_snapshots_watermark_stands_for_through(tmp_path: Path):
    """A snapshot (from --dsn, with the exporter's watermark) beside the hourly tree:
    the hours after the last file up to the watermark are named; through= wins."""
    snapshot = tmp_path / "snap"
    assert run_cli("ingest", "--source", FIXTURE_EXPORT / "db.csv", "--out", snapshot).code == 0
    manifest = json.loads((snapshot / "manifest.json").read_text())
    manifest["last_exported_hour"] = "2026-05-11T11:00:00+00:00"  # as snapshot --dsn writes it
    (snapshot / "manifest.json").write_text(json.dumps(manifest))
    report = cf.Verifier(key=KEY).verify_paths([snapshot, TREE])
    missing = [f for f in report.findings if f.kind == "missing_hour"]
    assert [f.source for f in missing] == [
        f"{TREE}/audit/2026/05/11/2026-05-11T11.parquet"]
    assert "by the snapshot's watermark" in report.checks["hours"]
    assert report.status == "intact"
    through = cf.Verifier(key=KEY, through="2026-05-11T10").verify_paths([snapshot, TREE])
    assert not [f for f in through.findings if f.kind == "missing_hour"]


def test_verify_snapshot_and_verify_paths_agree(tmp_path: Path):
    tree = tmp_path / "ocsf"
    shutil.copytree(TREE, tree)
    (tree / "audit/2026/05/11/2026-05-11T09.parquet").unlink()
    verifier = cf.Verifier(key=KEY, through="2026-05-11T10")
    by_paths = verifier.verify_paths([tree])
    by_snapshot = verifier.verify_snapshot(cf.open(str(tree)))
    for report in (by_paths, by_snapshot):
        assert [f.source for f in report.findings if f.kind == "missing_hour"] == [
            f"{tree}/audit/2026/05/11/2026-05-11T09.parquet"]
