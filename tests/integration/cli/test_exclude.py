"""A stray file in an evidence folder: the error names the way out, --exclude takes it
(issue 15.15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.cli import run_cli as cli
from support.paths import FIXTURE_EXPORT as EXPORT

import caracal_forensics as cf
from caracal_forensics.errors import InputError
from caracal_forensics.sources import is_excluded


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """An evidence folder: an export, and beside it a stray JSON file and an old CSV."""
    case = tmp_path / "case"
    (case / "old").mkdir(parents=True)
    shutil.copy(EXPORT / "db.csv", case / "db.csv")
    (case / "notes.json").write_text('{"analyst": "me"}\n')
    (case / "old" / "scratch.csv").write_text("a,b\n1,2\n")
    return case


def test_the_library_error_names_the_parameter(folder: Path) -> None:
    with pytest.raises(InputError, match=r"notes\.json: .*\(pass exclude=\['notes\.json'\] "
                       r"to leave it out\)$"):
        cf.open(str(folder), exclude=["old"])
    snap = cf.open(str(folder), exclude=["notes.json", "old"])
    assert [Path(i.path).name for i in snap.inputs] == ["db.csv"]
    assert snap.stats()["events"] == 300
    assert len(cf.open(str(folder), exclude=["*.json", "old/*.csv"]).inputs) == 1


def test_an_ingest_of_an_opened_snapshot_leaves_them_out_too(folder: Path,
                                                            tmp_path: Path) -> None:
    manifest = cf.open(str(folder), exclude=["notes.json", "old"]).ingest(str(tmp_path / "s"))
    assert manifest["events"] == 300 and len(manifest["inputs"]) == 1


def test_patterns() -> None:
    path = "/x/case/old/scratch.csv"
    for pattern in ("scratch.csv", "*.csv", "old", "old/", "old/*.csv", "case/old",
                    "/x/case/old/scratch.csv", "*/scratch.csv"):
        assert is_excluded(path, [pattern]), pattern
    for pattern in ("other.csv", "case/scratch.csv", "ol", "*.json"):
        assert not is_excluded(path, [pattern]), pattern


def test_the_cli_names_the_flag(folder: Path) -> None:
    code, out, err = cli("stats", "-s", str(folder), "--exclude", "old")
    assert (code, out) == (2, "")
    assert err.startswith(f"caracal-forensics: error: {folder / 'notes.json'}: ")
    assert err.endswith(" (pass --exclude notes.json to leave it out)\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["stats"],
        ["audit", "tail", "-n", "1"],
        ["audit", "tail", "--follow", "--follow-max-seconds", "0", "--json"],
        ["explain", "req-000027"],
        ["alerts"],
        ["query", "jti_collisions"],
        ["sql", "SELECT count(*) FROM events"],
        ["verify"],
        ["ingest", "--out", "{tmp}/snap"],
        ["report", "--out", "{tmp}/report.html"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_command_taking_sources_takes_exclude(
    folder: Path, tmp_path: Path, argv: list[str]
) -> None:
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, _, err = cli(*argv, "-s", str(folder), "--exclude", "notes.json",
                       "--exclude", "old")
    assert "error" not in err
    assert code in (0, 3)  # verify and report: partial, without a key
