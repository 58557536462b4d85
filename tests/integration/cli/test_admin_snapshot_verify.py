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


# --- the admin part held to the manifest's admin records --------------------------------

def _admin_part(snapshot: Path) -> Path:
    [part] = (snapshot / "admin").glob("*.parquet")
    return part


def _mismatches(report: dict) -> list[tuple[str | None, str]]:
    return [(f["zone_id"], f["detail"]) for f in report["admin"]["findings"]
            if f["kind"] == "manifest_mismatch"]


def test_an_intact_snapshot_holds_its_admin_part_to_the_manifest(tmp_path):
    code, report = verify(ingest(INCIDENT, tmp_path / "snap"))
    assert code == 0 and not _mismatches(report)
    assert "manifest" in report["admin"]["checks"]


def test_an_admin_head_cut_under_a_rehashed_manifest_is_caught(tmp_path):
    """The last change of a chain deleted, the manifest's file hashes recomputed: every
    link left is intact (a cut head leaves no gap), the manifest's head says otherwise."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from support.verify import rehash_manifest

    snapshot = ingest(INCIDENT, tmp_path / "snap")
    part = _admin_part(snapshot)
    table = pq.read_table(part)
    chains = json.loads((snapshot / "manifest.json").read_text("utf-8"))["admin_chains"]
    chain, head = max(chains.items(), key=lambda item: item[1]["events"])
    zone = None if chain == "(global)" else chain
    at_head = pc.and_(pc.equal(table["chain_seq"], head["last_seq"]),
                      pc.is_null(table["zone_id"]) if zone is None
                      else pc.equal(table["zone_id"], zone))
    pq.write_table(table.filter(pc.invert(pc.fill_null(at_head, False))), part)
    rehash_manifest(snapshot)
    code, report = verify(snapshot)
    assert code == 1
    assert report["events_status"] == "intact" and report["admin"]["status"] == "tampered"
    found = _mismatches(report)
    assert (None, f"the manifest records {table.num_rows} admin changes, the snapshot's "
                  f"admin part holds {table.num_rows - 1}: the snapshot was altered after "
                  "it was written") in found
    assert [detail for z, detail in found if z == chain] == [
        f"the manifest records {head['events']} admin changes of this chain (seq "
        f"{head['first_seq']}..{head['last_seq']}), the admin part holds "
        f"{head['events'] - 1} (seq {head['first_seq']}..{head['last_seq'] - 1}): the "
        "snapshot was altered after it was written"]
    # the Python API, over the opened snapshot, says the same
    key = FIXTURE_KEY_FILE.read_text().strip()
    api = cf.Verifier(key=key).verify_snapshot(cf.open(snapshot))
    assert api.admin is not None and api.admin.status == "tampered"
    assert sorted((f.zone_id or "", f.detail) for f in api.admin.findings
                  if f.kind == "manifest_mismatch") == sorted((z or "", d) for z, d in found)


def test_a_deleted_admin_part_under_a_rehashed_manifest_is_caught(tmp_path):
    from support.verify import rehash_manifest

    snapshot = ingest(INCIDENT, tmp_path / "snap")
    recorded = json.loads((snapshot / "manifest.json").read_text("utf-8"))["admin_events"]
    _admin_part(snapshot).unlink()
    rehash_manifest(snapshot)
    code, report = verify(snapshot)
    assert code == 1 and report["admin"]["status"] == "tampered"
    found = _mismatches(report)
    assert (None, f"the manifest records {recorded} admin changes, the snapshot's admin "
                  "part holds 0: the snapshot was altered after it was written") in found
    chains = [detail for zone, detail in found if zone is not None]
    assert chains and all(", the admin part holds none of them: the snapshot was altered "
                          "after it was written" in detail for detail in chains)


def test_an_admin_chain_the_manifest_does_not_record_is_caught(tmp_path):
    from support.verify import rehash_manifest

    snapshot = ingest(INCIDENT, tmp_path / "snap")
    manifest = json.loads((snapshot / "manifest.json").read_text("utf-8"))
    chains = manifest["admin_chains"]
    dropped = sorted(chains)[0]
    held = chains.pop(dropped)
    (snapshot / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    rehash_manifest(snapshot)
    code, report = verify(snapshot)
    assert code == 1 and report["admin"]["status"] == "tampered"
    assert [detail for zone, detail in _mismatches(report) if zone == dropped] == [
        f"the admin part holds {held['events']} changes of this chain (seq "
        f"{held['first_seq']}..{held['last_seq']}), which the manifest does not record: "
        "the snapshot was altered after it was written"]
