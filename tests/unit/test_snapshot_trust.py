"""A snapshot is held to its manifest beyond its file list (issue 14.9).

Whoever can change a snapshot's files can recompute the sizes and SHA-256 the manifest
lists. The manifest's own records (events, per zone events / seq range / last content
hash, events held twice) were written with the data, so a part copied or deleted since,
or counts edited, disagree with the files: ``verify``, ``report`` and ``snap.verify()``
say so as ``manifest_mismatch`` findings (tampered, exit 1). A part or manifest that is
a symbolic link leaving the snapshot directory is refused on every open.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.cli import cli
from support.paths import FIXTURE_EXPORT as EXPORT
from support.paths import FIXTURE_KEY_FILE, VECTOR_EXPORT
from support.verify import rehash_manifest as rehash

import caracal_forensics as cf
from caracal_forensics.chain.files import verify_files
from caracal_forensics.chain.report import Kind, Severity
from caracal_forensics.errors import InputError

KEY = FIXTURE_KEY_FILE.read_text(encoding="ascii").strip()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the fixtures' table dump: 300 events in 3 zones, one part each."""
    out = tmp_path_factory.mktemp("pristine") / "case"
    cf.open(str(EXPORT / "db.csv"), str(EXPORT / "alerts.csv")).ingest(str(out))
    assert len(list((out / "events").glob("*.parquet"))) == 3
    return out


@pytest.fixture
def case(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "case"
    shutil.copytree(pristine, copy)
    return copy


def manifest(case: Path) -> dict:
    return json.loads((case / "manifest.json").read_text("utf-8"))


def mismatches(report) -> list[tuple[str | None, str]]:
    found = [(f.zone_id, f.detail) for f in report.findings if f.kind == Kind.MANIFEST_MISMATCH]
    assert all(f.severity == Severity.FAILS for f in report.findings
               if f.kind == Kind.MANIFEST_MISMATCH)
    assert all("altered after it was written" in detail for _zone, detail in found)
    return found


def zone_of_part(case: Path, name: str) -> str:
    import pyarrow.parquet as pq

    zones = set(pq.read_table(case / "events" / name, columns=["zone_id"])
                .column(0).to_pylist())
    assert len(zones) == 1
    return zones.pop()


def test_an_intact_snapshot_has_no_manifest_finding(pristine: Path) -> None:
    report = verify_files([str(pristine)], key=KEY).report
    assert report.status == "intact" and not mismatches(report)
    assert "manifest" in report.checks
    assert cf.open(str(pristine)).verify(key=KEY).status == "intact"


def test_a_duplicated_part_with_a_rehashed_manifest_is_caught(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = zone_of_part(case, "part-00001.parquet")
    shutil.copyfile(case / "events" / "part-00001.parquet", case / "events" / "part-00003.parquet")
    rehash(case)
    report = verify_files([str(case)], key=KEY).report
    found = mismatches(report)
    assert report.status == "tampered"
    assert (None, "the manifest records 300 events, the snapshot's event files hold "
                  f"{300 + manifest(case)['zones'][zone]['events']}: the snapshot was "
                  "altered after it was written") in found
    details = " | ".join(detail for z, detail in found if z == zone)
    assert "held in two part files, events/part-00001.parquet and events/part-00003.parquet" \
        in details
    assert report.zone(zone).status == "tampered"
    # the library, the CLI and the evidence report say the same
    assert mismatches(cf.open(str(case)).verify(key=KEY)) == found
    code, out, _ = cli(capsys, "verify", "-s", str(case), "--json")
    assert code == 1 and "manifest_mismatch" in out
    page = case.parent / "evidence.html"
    code, out, _ = cli(capsys, "report", "-s", str(case), "--out", str(page))
    assert code == 1 and "manifest_mismatch" in page.read_text("utf-8")
    # distinct events are counted once, whatever the manifest said of copies
    assert cf.open(str(case)).stats()["events"] == 300


def test_a_deleted_zone_with_a_rehashed_manifest_is_caught(case: Path) -> None:
    zone = zone_of_part(case, "part-00001.parquet")
    (case / "events" / "part-00001.parquet").unlink()
    rehash(case)
    report = verify_files([str(case)], key=KEY).report
    assert report.status == "tampered" and report.exit_code == 1
    found = mismatches(report)
    recorded = manifest(case)["zones"][zone]
    assert (zone, f"the manifest records {recorded['events']} events of this zone (seq "
                  f"1..{recorded['last_seq']}), the event files hold none of them: the "
                  "snapshot was altered after it was written") in found
    assert report.zone(zone).status == "tampered" and report.zone(zone).events == 0
    # narrowed to the zones still whole, nothing is amiss; to the deleted one, it is
    others = [z for z in manifest(case)["zones"] if z != zone]
    assert verify_files([str(case)], key=KEY, zones=others).report.status == "intact"
    assert verify_files([str(case)], key=KEY, zones=[zone]).report.status == "tampered"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("events", 299, "the manifest records 299 events, the snapshot's event files hold 300"),
        ("zone.events", 1, "the manifest records 1 events of this zone"),
        ("zone.last_seq", 5, "(seq 1..5), the event files hold"),
        ("zone.last_content_sha256", "ab" * 32, f"the manifest records content_sha256 {'ab' * 32}"),
        ("duplicate_events", 0, None),  # true already: no finding
    ],
)
def test_altered_counts_are_caught(case: Path, field: str, value, words: str | None) -> None:
    zone = sorted(manifest(case)["zones"])[0]

    def edit(data: dict) -> None:
        if field.startswith("zone."):
            data["zones"][zone][field[5:]] = value
        else:
            data[field] = value

    rehash(case, edit)
    report = verify_files([str(case)], key=KEY).report
    found = mismatches(report)
    if words is None:
        assert report.status == "intact" and not found
    else:
        assert report.status == "tampered" and any(words in d for _z, d in found), found


def test_a_zone_the_manifest_does_not_record_is_caught(case: Path) -> None:
    zone = sorted(manifest(case)["zones"])[-1]
    rehash(case, lambda data: data["zones"].pop(zone))
    found = mismatches(verify_files([str(case)], key=KEY).report)
    assert any(z == zone and "which the manifest does not record" in d for z, d in found)


def test_a_malformed_zones_record_is_an_input_error(case: Path) -> None:
    rehash(case, lambda data: data["zones"].update({"zone-alpha": {"last_seq": "106"}}))
    with pytest.raises(InputError, match='"last_seq" of zone "zone-alpha" must be an integer'):
        verify_files([str(case)], key=KEY)


def test_a_part_linked_outside_the_snapshot_is_refused(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    part = case / "events" / "part-00001.parquet"
    elsewhere = tmp_path / "elsewhere.parquet"
    shutil.move(part, elsewhere)
    os.symlink(elsewhere, part)
    for command in (["stats"], ["verify"], ["audit", "tail"], ["query", "jti_collisions"]):
        code, out, err = cli(capsys, *command, "-s", str(case))
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, command
        assert "part-00001.parquet: a symbolic link to" in err and "outside the snapshot" in err
    with pytest.raises(InputError, match="outside the snapshot"):
        cf.open(str(case))


def test_a_manifest_or_events_directory_linked_outside_is_refused(
    case: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "manifest-elsewhere.json"
    shutil.move(case / "manifest.json", outside)
    os.symlink(outside, case / "manifest.json")
    with pytest.raises(InputError, match="manifest.json: a symbolic link to .* outside"):
        cf.open(str(case))
    os.unlink(case / "manifest.json")
    shutil.move(outside, case / "manifest.json")
    shutil.move(case / "events", tmp_path / "events-elsewhere")
    os.symlink(tmp_path / "events-elsewhere", case / "events")
    with pytest.raises(InputError, match="outside the snapshot"):
        verify_files([str(case)], key=KEY)


def test_links_inside_the_snapshot_are_read(case: Path, tmp_path: Path) -> None:
    # the snapshot directory itself reached by a link is the snapshot
    link = tmp_path / "case-link"
    os.symlink(case, link)
    assert verify_files([str(link)], key=KEY).report.status == "intact"
    assert cf.open(str(link)).count() == 300


def test_copies_from_several_shapes_are_no_finding(tmp_path: Path) -> None:
    # one export in several shapes: the snapshot keeps every copy, side by side in one part
    out = tmp_path / "case"
    cf.open(str(VECTOR_EXPORT)).ingest(str(out))
    assert manifest(out)["duplicate_events"] > 0
    report = verify_files([str(out)], key=None).report
    assert not mismatches(report)
