"""verify() end to end over real export files: readers + snapshot + chain.

The vectors were chained by PostgreSQL; each test copies them, tampers with the copy the
way an attacker (or a lossy export) would, and checks the finding names the right file
and line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from support.verify import EXPORT, KEY, found

import caracal_forensics as cf
from caracal_forensics import jsonb
from caracal_forensics.chain.verify import verify

OCSF = EXPORT / "ocsf" / "audit" / "2026" / "05" / "11" / "2026-05-11T08.parquet"
SHAPES = ["db.csv", "db.jsonl", "cli.jsonl", "ocsf", "search"]


def run(*paths, **kwargs):
    snap = cf.open(*(str(p) for p in paths))
    kwargs.setdefault("key", KEY)
    return verify(snap.duckdb, inputs=snap.inputs, **kwargs)


def lines(path: Path) -> list[str]:
    # Not splitlines(): jsonb prints U+2028 raw.
    return path.read_text(encoding="utf-8").split("\n")


def write_lines(path: Path, content: list[str]) -> None:
    path.write_text("\n".join(content), encoding="utf-8")


@pytest.mark.parametrize("shape", SHAPES)
def test_vectors_intact(shape: str) -> None:
    report = run(EXPORT / shape)
    assert report.status == "intact", report.findings
    assert report.findings == []
    assert report.events_checked == 240
    assert [z.zone_id for z in report.zones] == ["zone-alpha", "zone-beta", "zone-gamma",
                                                 "zone:prod/eu-1"]
    assert report.inputs and report.inputs[0].rows == 240 and report.inputs[0].sha256


@pytest.mark.parametrize("shape", SHAPES)
def test_vectors_without_key_are_partial(shape: str) -> None:
    report = run(EXPORT / shape, key=None)
    assert report.status == "partial"
    assert {f.kind for f in report.findings} == {"unverifiable"}
    assert len(report.findings) == 4  # once per zone


def test_all_shapes_together() -> None:
    """Every event five times over: one chain, the copies are export artefacts."""
    report = run(*(EXPORT / s for s in SHAPES))
    assert report.status == "intact"
    assert {f.kind for f in report.findings} == {"duplicate_event"}
    assert report.events_checked == 240
    assert sum(z.events for z in report.zones) == 240


def test_canonical_snapshot(tmp_path) -> None:
    snap = cf.open(str(EXPORT / "db.csv"))
    if not hasattr(snap, "ingest"):
        pytest.skip("Snapshot.ingest not available")
    snap.ingest(str(tmp_path / "snap"))
    report = run(tmp_path / "snap")
    assert report.status == "intact" and report.events_checked == 240


def test_csv_field_edited(tmp_path) -> None:
    path = tmp_path / "db.csv"
    content = lines(EXPORT / "db.csv")
    n = next(i for i, line in enumerate(content) if line.startswith("ev-0000010,"))
    assert ",deny," in content[n] or ",allow," in content[n]
    content[n] = (content[n].replace(",deny,", ",allow,", 1) if ",deny," in content[n]
                  else content[n].replace(",allow,", ",deny,", 1))
    write_lines(path, content)
    report = run(path)
    assert found(report) == {("content_mismatch", "ev-0000010")}
    assert report.findings[0].source == f"{path}:{n + 1}"


def test_jsonl_line_deleted(tmp_path) -> None:
    path = tmp_path / "db.jsonl"
    content = lines(EXPORT / "db.jsonl")
    victim = json.loads(content[20])
    del content[20]
    write_lines(path, content)
    report = run(path)
    assert len(report.findings) == 1
    f = report.findings[0]
    assert f.kind == "sequence_gap" and f.zone_id == victim["zone_id"]
    assert f.chain_seq == victim["chain_seq"] + 1


def test_jsonl_lines_reordered(tmp_path) -> None:
    path = tmp_path / "db.jsonl"
    content = [c for c in lines(EXPORT / "db.jsonl") if c]
    write_lines(path, list(reversed(content)))
    assert run(path).findings == []


def test_cli_field_edited(tmp_path) -> None:
    path = tmp_path / "cli.jsonl"
    content = lines(EXPORT / "cli.jsonl")
    n = next(i for i, line in enumerate(content) if '"ev-0000030"' in line)
    content[n] = content[n].replace('"request_id" : "', '"request_id" : "x', 1)
    assert '"x' in content[n]
    write_lines(path, content)
    report = run(path)
    assert found(report) == {("hmac_mismatch", "ev-0000030")}
    assert report.findings[0].source == f"{path}:{n + 1}"


def test_search_page_duplicated_element(tmp_path) -> None:
    # jsonb.loads/dumps, not json: numbers must keep their literal (0.750 is not 0.75).
    page = jsonb.loads((EXPORT / "search" / "page-000.json").read_text(encoding="utf-8"))
    page["events"].append(page["events"][7])
    (tmp_path / "page-000.json").write_text(jsonb.dumps(page), encoding="utf-8")
    report = run(tmp_path / "page-000.json")
    assert found(report) == {("duplicate_event", page["events"][7]["Event"]["id"])}
    assert report.status == "intact"
    assert report.findings[0].source.endswith(f"page-000.json:{len(page['events'])}")


def _hourly(tmp_path: Path, parts: int = 3) -> list[Path]:
    """The vector hour split into consecutive files, as if uploaded every 20 minutes."""
    table = pq.read_table(OCSF)
    order = pc.sort_indices(table, [("time", "ascending")])
    table = table.take(order)
    size = -(-table.num_rows // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / "audit" / "2026" / "05" / "11" / f"2026-05-11T{8 + i:02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(i * size, size), path)
        paths.append(path)
    return paths


def test_ocsf_chain_runs_across_hourly_files(tmp_path) -> None:
    _hourly(tmp_path)
    assert run(tmp_path / "audit").findings == []


def test_ocsf_missing_hourly_file(tmp_path) -> None:
    paths = _hourly(tmp_path)
    middle = pq.read_table(paths[1])
    after = pq.read_table(paths[2])
    paths[1].unlink()
    report = run(tmp_path / "audit")
    expected = set()
    for zone in set(middle.column("zone_id").to_pylist()):
        seqs = [s for z, s in zip(after.column("zone_id").to_pylist(),
                                  after.column("chain_seq").to_pylist(), strict=True)
                if z == zone]
        if seqs:
            expected.add(("sequence_gap", zone, min(seqs)))
    assert {(f.kind, f.zone_id, f.chain_seq) for f in report.findings} == expected
    assert all(f.source.endswith("2026-05-11T10.parquet:" + f.source.rsplit(":", 1)[1])
               for f in report.findings)


def test_ocsf_first_and_last_hour_missing(tmp_path) -> None:
    paths = _hourly(tmp_path)
    anchor = run(tmp_path / "audit")
    first_hour_zones = set(pq.read_table(paths[0]).column("zone_id").to_pylist())
    paths[0].unlink()
    report = run(tmp_path / "audit")
    assert {f.kind for f in report.findings} == {"unanchored_start"}
    assert report.status == "intact"
    assert {f.zone_id for f in report.findings} == first_hour_zones
    # the cut-off tail: invisible alone, caught with the earlier report as anchor
    paths[2].unlink()
    assert {f.kind for f in run(tmp_path / "audit").findings} == {"unanchored_start"}
    report = run(tmp_path / "audit", anchor=anchor)
    assert {f.kind for f in report.findings} == {"truncated"}
    assert report.status == "tampered"


def test_ocsf_row_edited(tmp_path) -> None:
    table = pq.read_table(OCSF)
    rows = table.to_pylist()
    rows[100]["decision"] = "allow" if rows[100]["decision"] == "deny" else "deny"
    path = tmp_path / "h.parquet"
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    report = run(path)
    assert found(report) == {("content_mismatch", rows[100]["event_id"])}
    assert report.findings[0].source == f"{path}:101"


def test_wrong_key_on_vectors() -> None:
    report = run(EXPORT / "db.csv", key=bytes(range(32)))
    assert {f.kind for f in report.findings} == {"hmac_mismatch"}
    assert len(report.findings) == 4
    assert all("probably wrong" in f.detail for f in report.findings)


def test_shared_vectors_copy_is_intact(tmp_path) -> None:
    """The shared vectors (../shared/vectors/export) if present, else skip."""
    shared = Path("/work/shared/vectors/export")
    if not shared.is_dir():
        pytest.skip("no shared vectors")
    target = tmp_path / "export"
    shutil.copytree(shared, target)
    report = run(target)
    assert report.status == "intact"
