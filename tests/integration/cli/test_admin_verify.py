"""``verify`` over the admin chain (FORMAT.md 8): intact in every shape, and each kind of
tampering caught at the right row, through the CLI as a user runs it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support.cli import one_error_line, run_cli
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE, FIXTURES

from caracal_forensics.admin import read_admin
from caracal_forensics.admin.chain import find_payload, preimage_parts

ADMIN = FIXTURES / "admin"
SIGNED = ["(global)", "zone-alpha", "zone-beta", "zone:prod/eu-1"]


def verify(*paths: Path, extra: tuple[str, ...] = ()) -> tuple[int, dict, str]:
    args = ["verify", "--json", "--key-file", FIXTURE_KEY_FILE, *extra]
    for path in paths:
        args += ["-s", path]
    result = run_cli(*args, env={"AUDIT_HMAC_KEY": None, "AUDIT_HMAC_KEY_FILE": None})
    return result.code, json.loads(result.out) if result.out.strip() else {}, result.err


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(ADMIN / name, target)
    return target


def rows_of(path: Path) -> list[dict]:
    return read_admin(str(path)).to_pylist()


def failing(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["severity"] == "fails"]


@pytest.mark.parametrize("name", ["admin.csv", "admin.jsonl"])
def test_dumps_intact(tmp_path, name):
    zones = [arg for zone in SIGNED for arg in ("--zone", zone)]
    code, report, err = verify(copy(tmp_path, name), extra=tuple(zones))
    assert code == 0, (err, report.get("findings"))
    assert report["chain"] == "admin" and report["status"] == "intact"
    assert {z["zone_id"] for z in report["zones"]} == set(SIGNED)
    assert report["checks"]["content"] == "recomputed and compared for 48 of 48 row(s)"


def test_unsigned_chain_is_linked_but_unsigned_not_failed(tmp_path):
    code, report, _ = verify(copy(tmp_path, "admin.csv"), extra=("--zone", "zone-nokey"))
    assert code == 3 and report["status"] == "partial"
    [finding] = report["findings"]
    assert finding["reason"] == "unsigned" and "linked but unsigned" in finding["detail"]


@pytest.mark.parametrize("name", ["admin-audit-zone-alpha.json", "admin-audit-zone-alpha.csv"])
def test_admin_api_pages_alone_are_partial_never_intact(tmp_path, name):
    code, report, _ = verify(copy(tmp_path, name))
    assert code == 3 and report["status"] == "partial" and not failing(report)


def test_everything_together(tmp_path):
    """Both chains and every shape in one directory: each chain its own section."""
    shutil.copytree(ADMIN, tmp_path / "admin")
    shutil.copyfile(FIXTURE_EXPORT / "db.csv", tmp_path / "db.csv")
    code, report, _ = verify(tmp_path, extra=("--zone", "zone-alpha", "--zone", "(global)"))
    assert code == 0, report
    assert report["events_status"] == "intact" and report["admin"]["status"] == "intact"
    assert report["admin"]["events_checked"] == 24
    # event commands read the directory and leave the admin files alone
    assert run_cli("stats", "--source", tmp_path).code == 0


def _line_of(rows: list[dict], zone: str | None, seq: int) -> dict:
    return next(r for r in rows if r["zone_id"] == zone and r["chain_seq"] == seq)


def test_edited_actor(tmp_path):
    path = copy(tmp_path, "admin.csv")
    target = _line_of(rows_of(path), "zone-beta", 3)
    lines = path.read_text(encoding="utf-8").split("\n")
    line = target["source_line"]
    assert target["actor_id"] and target["actor_id"] in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(target["actor_id"], "adm-evil", 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    code, report, _ = verify(path)
    assert code == 1
    [finding] = failing(report)
    assert finding["kind"] == "content_mismatch"
    assert (finding["zone_id"], finding["chain_seq"]) == ("zone-beta", 3)
    assert finding["source"] == f"{path}:{line}"


def test_edited_payload_field(tmp_path):
    path = copy(tmp_path, "admin.jsonl")
    lines = path.read_text(encoding="utf-8").split("\n")
    index = next(i for i, line in enumerate(lines)
                 if '"change_kind": "update"' in line and '"zone_id":"zone-alpha"' in line)
    lines[index] = lines[index].replace('"change_kind": "update"', '"change_kind": "create"')
    path.write_text("\n".join(lines), encoding="utf-8")
    seq = json.loads(lines[index])["chain_seq"]
    code, report, _ = verify(path)
    assert code == 1
    [finding] = failing(report)
    assert finding["kind"] == "content_mismatch"
    assert (finding["zone_id"], finding["chain_seq"]) == ("zone-alpha", seq)
    assert finding["source"] == f"{path}:{index + 1}"


def test_forged_row_with_recomputed_hash(tmp_path):
    """The forger recomputes content_sha256 but cannot make the HMAC without the key."""
    path = copy(tmp_path, "admin.jsonl")
    rows = rows_of(path)
    target = _line_of(rows, "zone:prod/eu-1", 6)
    head, tail = preimage_parts(target)
    found = find_payload(target["payload_json"], head, tail, target["content_sha256"])
    assert found.matched
    forged = dict(target, status_code=200 if target["status_code"] != 200 else 201)
    head2, tail2 = preimage_parts(forged)
    new_hash = hashlib.sha256((head2 + found.payload + tail2).encode()).hexdigest()
    lines = path.read_text(encoding="utf-8").split("\n")
    obj = lines[target["source_line"] - 1]
    obj = obj.replace(f'"status_code":{target["status_code"]}',
                      f'"status_code":{forged["status_code"]}')
    obj = obj.replace(target["content_sha256"], new_hash, 1)
    lines[target["source_line"] - 1] = obj
    # the next row links to the forged one: the forger rewrites its prev too
    after = _line_of(rows, "zone:prod/eu-1", 7)
    lines[after["source_line"] - 1] = lines[after["source_line"] - 1].replace(
        target["content_sha256"], new_hash)
    path.write_text("\n".join(lines), encoding="utf-8")
    code, report, _ = verify(path)
    assert code == 1
    kinds = {(f["kind"], f["chain_seq"]) for f in failing(report)}
    assert ("hmac_mismatch", 6) in kinds
    assert not any(f["kind"] == "content_mismatch" for f in failing(report))
    at = next(f for f in failing(report) if f["chain_seq"] == 6)
    assert at["source"] == f"{path}:{target['source_line']}"


def test_deleted_row_of_the_global_chain(tmp_path):
    path = copy(tmp_path, "admin.csv")
    rows = rows_of(path)
    gone = _line_of(rows, None, 5)
    lines = path.read_text(encoding="utf-8").split("\n")
    del lines[gone["source_line"] - 1]
    path.write_text("\n".join(lines), encoding="utf-8")
    code, report, _ = verify(path, extra=("--zone", "(global)"))
    assert code == 1
    kinds = {(f["kind"], f["zone_id"], f["chain_seq"]) for f in failing(report)}
    assert ("sequence_gap", "(global)", 6) in kinds
    gap = next(f for f in failing(report) if f["kind"] == "sequence_gap")
    # seq 6 moved up one line when seq 5's line was deleted
    assert gap["source"] == f"{path}:{_line_of(rows, None, 6)['source_line'] - 1}"


def test_gap_visible_only_in_an_admin_api_page(tmp_path):
    path = copy(tmp_path, "admin-audit-zone-beta.json")
    page = json.loads(path.read_text(encoding="utf-8"))
    page["items"] = [i for i in page["items"] if i["chain_seq"] != "7"]
    path.write_text(json.dumps(page, ensure_ascii=False, separators=(",", ":")),
                    encoding="utf-8")
    code, report, _ = verify(path)
    assert code == 1
    [gap] = failing(report)
    assert (gap["kind"], gap["zone_id"], gap["chain_seq"]) == ("sequence_gap", "zone-beta", 8)
    index = next(n for n, i in enumerate(page["items"], 1) if i["chain_seq"] == "8")
    assert gap["source"] == f"{path}:{index}"


def test_an_api_page_that_differs_from_the_dump(tmp_path):
    dump = copy(tmp_path, "admin.csv")
    page = copy(tmp_path, "admin-audit-zone-alpha.json")
    data = json.loads(page.read_text(encoding="utf-8"))
    data["items"][3]["actor_name"] = "someone else"
    page.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, report, _ = verify(dump, page, extra=("--zone", "zone-alpha"))
    assert code == 1
    [finding] = failing(report)
    assert finding["kind"] == "conflicting_duplicate" and "actor_name" in finding["detail"]
    assert finding["source"] == f"{page}:4"


def test_show_preimage_of_an_admin_change():
    rows = rows_of(ADMIN / "admin.csv")
    target = next(r for r in rows if r["payload_json"] and '"10"' in r["payload_json"])
    result = run_cli("verify", "-s", ADMIN / "admin.csv", "--show-preimage", target["id"])
    assert result.code == 0
    assert f"content_sha256 stored:     {target['content_sha256']}" in result.out
    assert f"content_sha256 recomputed: {target['content_sha256']}" in result.out
    assert '\u241f{"2":null,"10":true,' in result.out


def test_bad_admin_line_is_one_error_line(tmp_path):
    path = copy(tmp_path, "admin.jsonl")
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[6] = lines[6].replace('"chain_seq":', '"chain_seq":"seven","x":', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    result = run_cli("verify", "-s", path, "--key-file", FIXTURE_KEY_FILE)
    assert result.code == 2
    line = one_error_line(result.err)
    assert f"{path}: line 7: chain_seq" in line


def test_report_has_the_admin_chain_as_its_own_section(tmp_path):
    shutil.copyfile(FIXTURE_EXPORT / "db.csv", tmp_path / "db.csv")
    path = copy(tmp_path, "admin.csv")
    gone = _line_of(rows_of(path), "zone-alpha", 3)
    lines = path.read_text(encoding="utf-8").split("\n")
    del lines[gone["source_line"] - 1]
    path.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path.parent / f"{tmp_path.name}-evidence.html"
    result = run_cli("report", "-s", tmp_path, "--key-file", FIXTURE_KEY_FILE, "--out", out)
    assert result.code == 1, result.err  # the events are intact, the admin chain is not
    assert "admin chain: tampered" in result.out
    html = out.read_text(encoding="utf-8")
    assert 'id="verdict-status">INTACT' in html
    assert 'id="admin-verdict-status">TAMPERED' in html
    assert "<code>sequence_gap</code>" in html.split("id=admin>")[1]


def test_a_report_anchors_the_admin_chain(tmp_path):
    """A cut-off tail of an admin chain shows against an earlier report's admin heads; an
    admin report alone anchors the admin chain and leaves the events unanchored."""
    case = tmp_path / "case"
    case.mkdir()
    shutil.copyfile(FIXTURE_EXPORT / "db.csv", case / "db.csv")
    path = copy(case, "admin.csv")
    both = tmp_path / "both.json"
    admin_only = tmp_path / "admin-only.json"
    assert run_cli("verify", "-s", case, "--key-file", FIXTURE_KEY_FILE,
                   "--report", both).code == 3
    assert run_cli("verify", "-s", path, "--key-file", FIXTURE_KEY_FILE,
                   "--report", admin_only).code == 3
    last = _line_of(rows_of(path), "zone-beta", 12)
    lines = path.read_text(encoding="utf-8").split("\n")
    del lines[last["source_line"] - 1]
    path.write_text("\n".join(lines), encoding="utf-8")
    for anchor in (both, admin_only):
        code, report, _ = verify(case, extra=("--anchor", str(anchor)))
        assert code == 1
        assert report["events_status"] == "intact"
        [cut] = failing(report["admin"])
        assert (cut["kind"], cut["zone_id"], cut["chain_seq"]) == ("truncated", "zone-beta", 11)


def test_report_of_the_admin_chain_alone(tmp_path):
    path = copy(tmp_path, "admin.jsonl")
    out = tmp_path.parent / f"{tmp_path.name}-admin.html"
    result = run_cli("report", "-s", path, "--key-file", FIXTURE_KEY_FILE, "--out", out,
                     "--zone", "(global)")
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {out}: admin chain intact (12 admin changes")
    html = out.read_text(encoding="utf-8")
    assert 'id="admin-verdict-status">INTACT' in html and "<code>(global)</code>" in html
    assert "<script" not in html
