"""Outputs never land on the evidence, and each output file is whole or absent.

Every command that writes (ingest --out, report --out, verify --report, snapshot --out)
refuses an output equal to or inside an input (a snapshot is a directory), the key file
or the anchor, before reading anything; resolved, links followed. A file output is
written beside itself and renamed, so a full disk (a real tmpfs here) leaves the previous
file byte for byte."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import cli, one_error_line
from support.disks import fill, small_tmpfs
from support.paths import VECTOR_EXPORT as EXPORT

from caracal_forensics.cli.app import run
from caracal_forensics.errors import UsageError
from caracal_forensics.outputs import refuse_overwriting_inputs, write_atomically

KEY = EXPORT / "key.hex"


def tree_digest(root: Path) -> dict[str, str]:
    """Every file below ``root`` (links not followed) and its SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a canonical snapshot (``case/``), an export folder (``export/``)
    with its key beside it, a link to the snapshot and an anchor report."""
    root = tmp_path_factory.mktemp("evidence")
    shutil.copytree(EXPORT, root / "export", ignore=shutil.ignore_patterns("ocsf", "search"))
    shutil.copy(KEY, root / "key.hex")
    with pytest.raises(SystemExit) as done:
        run(["ingest", "-s", str(root / "export" / "db.csv"), "--out", str(root / "case")])
    assert done.value.code in (0, None)
    (root / "link").symlink_to(root / "case")
    with pytest.raises(SystemExit) as done:
        run(["verify", "-s", str(root / "case"), "--key-file", str(KEY),
             "--report", str(root / "anchor.json")])
    assert done.value.code == 0
    return root


# (command, flag, source, the output, the phrase of the refusal); paths relative to the
# evidence folder
REFUSED = [
    ("report", "--out", "case", "case/manifest.json", "is inside the input"),
    ("report", "--out", "case", "case/events/part-00000.parquet", "is inside the input"),
    ("verify", "--report", "case", "case/events/part-00000.parquet", "is inside the input"),
    ("verify", "--report", "case", "case/manifest.json", "is inside the input"),
    ("verify", "--report", "case", "case", "is the input"),
    ("report", "--out", "export", "export/db.csv", "is inside the input"),
    ("verify", "--report", "export", "export/new.json", "is inside the input"),
    ("verify", "--report", "export/db.csv", "export/db.csv", "is the input"),
    # through a link: the snapshot named by a link, or the output path through one
    ("verify", "--report", "link", "case/manifest.json", "is inside the input"),
    ("verify", "--report", "case", "link/manifest.json", "is inside the input"),
    ("report", "--out", "link", "link/events/part-00000.parquet", "is inside the input"),
    # a glob: the files it matches and the directory holding them
    ("verify", "--report", "export/*.csv", "export/db.csv", "is the input"),
    ("verify", "--report", "export/*.csv", "export/r.json", "is inside the directory"),
    ("report", "--out", "case/events/*.parquet", "case/events/new.html", "is inside the"),
    # the key file and the anchor
    ("verify", "--report", "case", "key.hex", "is the key file (--key-file)"),
    ("report", "--out", "case", "key.hex", "is the key file (--key-file)"),
    ("verify", "--report", "case", "anchor.json", "is the anchor (--anchor)"),
    ("report", "--out", "case", "anchor.json", "is the anchor (--anchor)"),
    ("ingest", "--out", "case", "case/events/new", "is inside the input"),
    ("ingest", "--out", "export/db.csv", "export", "holds the input"),
    ("ingest", "--out", "export", "export/snap", "is inside the input"),
    ("ingest", "--out", "case", ".", "holds the input"),
    ("ingest", "--out", "link", "link/new", "is inside the input"),
    ("ingest", "--out", "export/*.csv", "export/sub", "is inside the"),
]


@pytest.mark.parametrize("command, flag, source, target, phrase", REFUSED)
def test_an_output_on_or_in_the_evidence_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, evidence: Path,
    command: str, flag: str, source: str, target: str, phrase: str,
) -> None:
    monkeypatch.chdir(evidence)
    before = tree_digest(evidence)
    extra = [] if command == "ingest" else ["--key-file", "key.hex", "--anchor", "anchor.json"]
    code, out, err = cli(capsys, command, "-s", source, flag, target, *extra)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"error: {flag} {target} {phrase}" in line and "never written" in line, line
    assert tree_digest(evidence) == before


def test_the_key_file_from_the_environment_is_never_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, evidence: Path,
) -> None:
    monkeypatch.chdir(evidence)
    monkeypatch.setenv("AUDIT_HMAC_KEY_FILE", str(evidence / "key.hex"))
    before = tree_digest(evidence)
    for argv in (["verify", "-s", "case", "--report", "key.hex"],
                 ["report", "-s", "case", "--out", "key.hex"],
                 ["ingest", "-s", "case", "--out", "key.hex"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "is the key file ($AUDIT_HMAC_KEY_FILE)" in one_error_line(err)
    assert tree_digest(evidence) == before


def test_snapshot_out_is_never_the_key_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, evidence: Path,
) -> None:
    # refused before any connection is tried (there is no server at this address)
    monkeypatch.chdir(evidence)
    monkeypatch.setenv("AUDIT_HMAC_KEY_FILE", "key.hex")
    before = tree_digest(evidence)
    code, _, err = cli(capsys, "snapshot", "--dsn", "postgresql://127.0.0.1:1/none",
                       "--out", "key.hex")
    assert code == 2 and one_error_line(err) == (
        "caracal-forensics: error: --out key.hex is the key file ($AUDIT_HMAC_KEY_FILE); "
        "it is never written")
    assert tree_digest(evidence) == before


def test_the_library_refuses_too(evidence: Path) -> None:
    import caracal_forensics as cf
    from caracal_forensics.report_html import write_report

    before = tree_digest(evidence)
    snap = cf.open(str(evidence / "case"))
    with pytest.raises(UsageError, match=r"^out .*manifest.json is inside the input "):
        write_report(snap, evidence / "case" / "manifest.json")
    with pytest.raises(UsageError, match=r"^out .*new is inside the input "):
        snap.ingest(str(evidence / "case" / "new"))
    assert tree_digest(evidence) == before


def test_a_link_inside_a_source_directory_protects_its_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The source folder holds a link to a file elsewhere: that file is an input too.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(EXPORT / "db.csv", elsewhere / "db.csv")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "db.csv").symlink_to(elsewhere / "db.csv")
    before = (elsewhere / "db.csv").read_bytes()
    for argv in (["verify", "-s", folder, "--report", elsewhere / "db.csv"],
                 ["report", "-s", folder, "--out", elsewhere / "db.csv"]):
        code, _, err = cli(capsys, *argv, "--key-file", KEY)
        assert code == 2 and "never written" in one_error_line(err)
    assert (elsewhere / "db.csv").read_bytes() == before


def test_outputs_beside_the_evidence_are_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, evidence: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(evidence)
    code, _, _ = cli(capsys, "verify", "-s", "case", "--key-file", "key.hex",
                     "--anchor", "anchor.json", "--report", tmp_path / "q4.json")
    assert code == 0 and (tmp_path / "q4.json").exists()
    code, _, _ = cli(capsys, "verify", "-s", "export/db.csv", "--key-file", "key.hex",
                     "--report", tmp_path / "db.json")
    assert code == 0  # a file input: its folder is not an input
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_library_names_parameters_and_compares_inodes(tmp_path: Path) -> None:
    source = tmp_path / "db.csv"
    source.write_text("x")
    (tmp_path / "hard.csv").hardlink_to(source)
    with pytest.raises(UsageError, match=r"^out .*hard.csv is the input .*db.csv; inputs"):
        refuse_overwriting_inputs(tmp_path / "hard.csv", [source])
    with pytest.raises(UsageError, match=r"^out .* holds the input"):
        refuse_overwriting_inputs(tmp_path, [source], directory=True)
    with pytest.raises(UsageError, match=r"^out k is the key file \(key_file\); it is never"):
        refuse_overwriting_inputs("k", [], key_file="k")
    refuse_overwriting_inputs(tmp_path / "other.json", [source])  # beside a file: fine


# --- whole or absent: a real full disk ---------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    with small_tmpfs(tmp_path / "disk") as mount:
        yield mount


@pytest.mark.parametrize("command", ["verify", "report"])
def test_a_full_disk_leaves_the_previous_output_as_it_was(
    capsys: pytest.CaptureFixture[str], small_disk: Path, command: str
) -> None:
    target = small_disk / ("q3.json" if command == "verify" else "evidence.html")
    flag = "--report" if command == "verify" else "--out"
    argv = [command, "-s", EXPORT / "db.csv", "--key-file", KEY, flag, target]
    code, _, _ = cli(capsys, *argv)
    assert code == 0
    before = target.read_bytes()
    fill(small_disk)
    code, _, err = cli(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and line == (f"caracal-forensics: error: {target}: cannot write it: "
                                  "No space left on device")
    assert target.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == sorted(["filler", target.name])


def test_write_atomically_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["r.json"]
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file's mode kept
    umask = os.umask(0o027)
    try:
        write_atomically(tmp_path / "fresh.json", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "fresh.json").stat().st_mode & 0o777 == 0o640
    with pytest.raises(UsageError, match="is a directory"):
        write_atomically(tmp_path, "x")


def test_a_full_disk_while_the_manifest_is_written_names_it(
    capsys: pytest.CaptureFixture[str], small_disk: Path, tmp_path: Path
) -> None:
    # The same ingest on a roomy disk first, to know what the manifest needs.
    code, _, _ = cli(capsys, "ingest", "-s", EXPORT / "db.csv", "--out", tmp_path / "roomy")
    assert code == 0
    page = os.sysconf("SC_PAGE_SIZE")  # tmpfs counts whole pages
    data = sum(-(-p.stat().st_size // page) * page for p in (tmp_path / "roomy").rglob("*")
               if p.is_file() and p.name != "manifest.json")
    fill(small_disk, leave=data)
    out = small_disk / "case"
    code, _, err = cli(capsys, "ingest", "-s", EXPORT / "db.csv", "--out", out)
    line = one_error_line(err)
    assert code == 2 and line == (f"caracal-forensics: error: {out}/manifest.json: cannot "
                                  "write the manifest: No space left on device")
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["verify", "--report"],
    ["report", "--out"],
])
def test_an_output_that_is_not_a_regular_file_is_refused_not_replaced(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]) -> None:
    """The temporary file was renamed over a FIFO (or, run as root, over /dev/null or
    /dev/full: a regular file in its place for every user of the machine). Refused
    before any work, and left as it was. A FIFO here, so a regression harms nothing."""
    import stat

    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    code, out, err = cli(capsys, *argv, fifo, "-s", EXPORT / "db.csv")
    assert code == 2, (out, err)
    assert one_error_line(err) == (f"caracal-forensics: error: {argv[1]} {fifo} is not a "
                                   "regular file (a FIFO); name the file to write")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(UsageError, match="not a regular file"):
        write_atomically(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
