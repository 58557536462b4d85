"""The admin chain kept in a canonical snapshot (ingest) is verified with its events, by
path and through the Python API, and a change edited before ingest is still caught there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.cli import run_cli
from support.paths import FIXTURE_KEY_FILE, FIXTURES

import caracal_forensics as cf

INCIDENT = FIXTURES / "incident"
NO_KEY_ENV = {"AUDIT_HMAC_KEY": None, "AUDIT_HMAC_KEY_FILE": None}


def ingest(source: Path, out: Path) -> Path:
    result = run_cli("ingest", "--source", source, "--out", out, env=NO_KEY_ENV)
    assert result.code == 0, result.err
    return out


def verify(path: Path) -> tuple[int, dict]:
    result = run_cli("verify", "--json", "--key-file", FIXTURE_KEY_FILE, "-s", path,
                     env=NO_KEY_ENV)
    return result.code, json.loads(result.out)


def test_a_snapshots_admin_part_is_verified_with_its_events(tmp_path):
    snapshot = ingest(INCIDENT, tmp_path / "snap")
    code, report = verify(snapshot)
    assert code == 0, report
    assert report["events_status"] == "intact"
    assert report["admin"]["status"] == "intact"
    assert report["admin"]["events_checked"] == 9


def test_the_python_api_verifies_both_chains_of_an_opened_snapshot(tmp_path):
    snapshot = ingest(INCIDENT, tmp_path / "snap")
    key = FIXTURE_KEY_FILE.read_text().strip()
    report = cf.Verifier(key=key).verify_snapshot(cf.open(snapshot))
    assert report.status == "intact"
    assert report.admin is not None and report.admin.status == "intact"
    assert report.admin.events_checked == 9


def test_an_admin_change_edited_before_ingest_is_caught_in_the_snapshot(tmp_path):
    source = tmp_path / "incident"
    shutil.copytree(INCIDENT, source)
    dump = source / "admin.csv"
    lines = dump.read_text(encoding="utf-8").split("\n")
    assert "alice@example.com" in lines[2]
    lines[2] = lines[2].replace("alice@example.com", "mallory@example.com", 1)
    dump.write_text("\n".join(lines), encoding="utf-8")
    code, report = verify(ingest(source, tmp_path / "snap"))
    assert code == 1
    assert report["events_status"] == "intact"
    [finding] = [f for f in report["admin"]["findings"] if f["severity"] == "fails"]
    assert finding["kind"] == "content_mismatch"
