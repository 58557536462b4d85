"""Admin rows in a canonical snapshot (``ingest``): their own part, the manifest's chain
heads, the snapshot held to its manifest, and ``admin_rows`` for the admin verifier."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.paths import FIXTURE_EXPORT, FIXTURE_INCIDENT, VECTORS

import caracal_forensics as cf
from caracal_forensics.admin import read_admin
from caracal_forensics.admin.model import ADMIN_SCHEMA
from caracal_forensics.admin.snapshot import admin_rows, chain_heads
from caracal_forensics.errors import InputError
from caracal_forensics.sources.snapshot_dir import admin_files, last_exported_hour

UPSTREAM = VECTORS / "upstream" / "admin"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ingest") / "snap"
    manifest = cf.open(str(FIXTURE_INCIDENT)).ingest(str(out))
    return out, manifest


def test_ingest_keeps_admin_rows_as_their_own_part(written) -> None:
    out, manifest = written
    assert admin_files(str(out)) == [str(out / "admin" / "part-00000.parquet")]
    assert manifest["events"] == 67 and manifest["admin_events"] == 9
    assert manifest["admin_chains"] == {
        "(global)": {"events": 2, "first_seq": 1, "last_seq": 2,
                     "last_content_sha256": _at(2, None, "content_sha256"),
                     "last_chain_hmac": _at(2, None, "chain_hmac")},
        "zone-pay": {"events": 7, "first_seq": 1, "last_seq": 7,
                     "last_content_sha256": _at(7, "zone-pay", "content_sha256"),
                     "last_chain_hmac": _at(7, "zone-pay", "chain_hmac")},
    }
    assert "admin/part-00000.parquet" in {f["path"] for f in manifest["files"]}
    assert last_exported_hour(str(out)) is None  # only snapshot --dsn reads a watermark
    # the rows as read, provenance included, in chain order
    rows = admin_rows(str(out))
    assert rows.schema == ADMIN_SCHEMA
    assert rows.to_pylist() == _sorted(read_admin([str(FIXTURE_INCIDENT)])).to_pylist()


def _at(seq: int, zone: str | None, column: str) -> str:
    rows = read_admin([str(FIXTURE_INCIDENT / "admin.csv")]).to_pylist()
    (row,) = [r for r in rows if r["chain_seq"] == seq and r["zone_id"] == zone]
    return row[column]


def _sorted(table: pa.Table) -> pa.Table:
    rows = sorted(table.to_pylist(), key=lambda r: (r["zone_id"] is not None,
                                                     r["zone_id"] or "", r["chain_seq"]))
    return pa.Table.from_pylist(rows, schema=ADMIN_SCHEMA)


def test_the_snapshot_reopens_with_both_chains(written) -> None:
    out, _ = written
    snap = cf.open(str(out))
    assert snap.sql("SELECT count(*) AS n FROM admin_events")["n"][0] == 9
    assert snap.admin_changes(limit=0).height == 9
    assert admin_rows(snap).num_rows == 9 and admin_rows(snap.duckdb).num_rows == 9
    # the named queries read it from the confined connection too
    assert snap.query("admin_changes_by_actor").height == 4
    assert chain_heads(snap.duckdb)["zone-pay"]["last_seq"] == 7
    # and a snapshot of a snapshot keeps them
    again = snap.ingest(str(out.parent / "again"))
    assert again["admin_chains"] == json.loads((out / "manifest.json").read_text())[
        "admin_chains"]


def test_every_copy_is_kept_and_unique_on_request() -> None:
    """verify wants every copy (a differing copy is evidence); the listings each once."""
    snap = cf.open(str(UPSTREAM))
    assert admin_rows(snap).num_rows == 223
    assert admin_rows(snap, unique=True).num_rows == 80


def test_ingest_without_admin_rows_writes_no_admin_part(tmp_path: Path) -> None:
    manifest = cf.open(str(FIXTURE_EXPORT / "db.csv")).ingest(str(tmp_path / "snap"))
    assert manifest["admin_events"] == 0 and manifest["admin_chains"] == {}
    assert not (tmp_path / "snap" / "admin").exists()
    assert admin_rows(str(tmp_path / "snap")).num_rows == 0


def _copy(written, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(written[0], out)
    return out


def test_an_admin_part_added_removed_or_changed_is_refused(written, tmp_path) -> None:
    out = _copy(written, tmp_path)
    part = out / "admin" / "part-00000.parquet"
    extra = out / "admin" / "part-00001.parquet"
    shutil.copy(part, extra)
    with pytest.raises(InputError, match="not listed in"):
        cf.open(str(out))
    with pytest.raises(InputError, match="not listed in"):
        admin_rows(str(out))
    extra.unlink()
    data = part.read_bytes()
    part.write_bytes(data + b"x")
    with pytest.raises(InputError, match="changed since the snapshot was written"):
        cf.open(str(out))
    part.unlink()
    with pytest.raises(InputError, match="missing"):
        cf.open(str(out))


def test_an_admin_part_of_another_schema_is_refused(written, tmp_path) -> None:
    """A part whose columns are not the admin model's (rewritten, manifest recomputed)."""
    out = _copy(written, tmp_path)
    part = out / "admin" / "part-00000.parquet"
    table = pq.read_table(part)
    pq.write_table(table.set_column(table.schema.get_field_index("chain_seq"), "chain_seq",
                                     table.column("chain_seq").cast(pa.string())), part)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "admin/part-00000.parquet":
            entry["bytes"] = part.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="column chain_seq is string, not int64"):
        cf.open(str(out))


def test_malformed_admin_chains_in_the_manifest(written, tmp_path) -> None:
    from caracal_forensics.manifest import load_manifest, manifest_admin_chains

    out = _copy(written, tmp_path)
    manifest = load_manifest(str(out))
    assert manifest_admin_chains(str(out), manifest)["zone-pay"]["last_seq"] == 7
    manifest["admin_chains"]["zone-pay"]["last_seq"] = "7"
    with pytest.raises(InputError, match='"last_seq" of admin chain "zone-pay"'):
        manifest_admin_chains(str(out), manifest)
