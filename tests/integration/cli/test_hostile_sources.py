"""Hostile inputs: a snapshot whose files no longer match its manifest, a corrupt file
inside an export directory, FIFOs and dangling links. Each is one stderr line naming the
file and exit 2, never a traceback, never a hang, never a silent INTACT."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from support.cli import Result, run_cli
from support.paths import ROOT
from support.tail import EXPORT, KEY_FILE

import caracal_forensics as cf
from caracal_forensics.errors import InputError
from caracal_forensics.sources import scan

OCSF = EXPORT / "ocsf"
HOUR = Path("audit/2026/05/11/2026-05-11T08.parquet")
#: A FIFO must fail fast; a regression would block forever on open().
HANG_SECONDS = 60


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "snap"
    cf.open(str(EXPORT / "db.csv")).ingest(str(out))
    assert len(list((out / "events").glob("*.parquet"))) > 1
    return out


@pytest.fixture
def snap(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of an intact snapshot, to break."""
    return Path(shutil.copytree(pristine, tmp_path / "snap"))


def verify(source: Path | str) -> Result:
    return run_cli("verify", "-s", source, "--key-file", KEY_FILE,
                   env={"AUDIT_HMAC_KEY": None, "AUDIT_HMAC_KEY_FILE": None})


def assert_refused(result: Result, named: Path | str, *says: str) -> None:
    """Exit 2 and one stderr line naming the file and saying what is wrong."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1 and result.err.endswith("\n"), result.err
    assert str(named) in result.err, result.err
    for text in says:
        assert text in result.err, result.err


def edit_manifest(snap: Path, change: Callable[[dict], None]) -> None:
    path = snap / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def relist(snap: Path, part: Path) -> None:
    """Make the manifest agree with an edited part (an editor who covers their tracks)."""
    name = part.relative_to(snap).as_posix()

    def change(manifest: dict) -> None:
        for entry in manifest["files"]:
            if entry["path"] == name:
                entry["bytes"] = part.stat().st_size
                entry["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()

    edit_manifest(snap, change)


def parts(snap: Path) -> list[Path]:
    return sorted((snap / "events").glob("*.parquet"))


def run_subprocess(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess:
    """The real CLI in its own process, so that a hang fails the test instead."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDIT_HMAC", "CARACAL_FORENSICS_SOURCE"))}
    return subprocess.run([sys.executable, "-m", "caracal_forensics", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=HANG_SECONDS)


# --- an intact snapshot still opens, verifies and tails --------------------------------


def test_an_intact_snapshot_verifies_intact_and_tails(snap: Path) -> None:
    result = verify(snap)
    assert result.code == 0, result.err
    assert result.out.startswith("INTACT: 240 event(s)")
    tail = run_cli("audit", "tail", "-s", snap, "--limit", "3", "--json")
    assert tail.code == 0, tail.err
    assert len(tail.lines) == 3
    assert [i.rows for i in scan([str(snap)])] == [240]


# --- 1a. the cheap check on every open: sizes, listing, schema -------------------------


def test_a_deleted_part_is_missing(snap: Path) -> None:
    gone = parts(snap)[1]
    gone.unlink()
    assert_refused(verify(snap), gone, f"listed in {snap / 'manifest.json'} but missing")


def test_an_emptied_events_directory_is_missing_parts(snap: Path) -> None:
    for part in parts(snap):
        part.unlink()
    assert_refused(verify(snap), snap / "events" / "part-00000.parquet", "but missing")


def test_an_added_part_is_not_listed(snap: Path) -> None:
    extra = snap / "events" / "part-00099.parquet"
    shutil.copy(parts(snap)[0], extra)
    assert_refused(verify(snap), extra, f"not listed in {snap / 'manifest.json'}")
    assert_refused(run_cli("audit", "tail", "-s", snap), extra, "not listed")


def test_a_part_overwritten_by_another_has_the_wrong_size(snap: Path) -> None:
    first, second = parts(snap)[:2]
    assert first.stat().st_size != second.stat().st_size
    shutil.copy(first, second)
    assert_refused(verify(snap), second, f"{first.stat().st_size} bytes, but",
                   "changed since the snapshot was written")
    assert_refused(run_cli("stats", "-s", snap), second, "bytes, but")


@pytest.mark.parametrize("column, kind", [("chain_seq", pa.string()), ("id", pa.int64())])
def test_a_part_with_a_column_of_another_type_is_refused(snap: Path, column: str,
                                                         kind: pa.DataType) -> None:
    part = parts(snap)[1]
    table = pq.read_table(part)
    values = table.column(column)
    if column == "id":  # ids are text; any number will do
        values = pa.array(range(table.num_rows), pa.int64())
    table = table.set_column(table.schema.get_field_index(column), column,
                             pc.cast(values, kind))
    pq.write_table(table, part)
    relist(snap, part)
    for command in (["audit", "tail"], ["stats"], ["explain", "req-000001"]):
        assert_refused(run_cli(*command, "-s", snap), part, f"column {column} is {kind}")


def test_a_part_without_a_model_column_is_refused(snap: Path) -> None:
    part = parts(snap)[0]
    pq.write_table(pq.read_table(part).drop_columns(["chain_hmac"]), part)
    relist(snap, part)
    assert_refused(verify(snap), part, "missing chain_hmac")


@pytest.mark.parametrize("change, says", [
    (lambda m: m.pop("files"), 'has no "files" list'),
    (lambda m: m.update(files={"events/part-00000.parquet": 1}), 'malformed "files" list'),
    (lambda m: m["files"][0].update(path="../../../etc/passwd"), "not a relative"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "not a relative"),
    (lambda m: m["files"][0].update(path="events/../events/part-00000.parquet"),
     "normalised"),
    (lambda m: m["files"][0].update(bytes="12"), '"bytes" of'),
    (lambda m: m["files"][0].update(sha256=None), '"sha256" of'),
    (lambda m: m["files"].append(m["files"][0]), "listed twice"),
    (lambda m: m.update(format_version="one"), '"format_version" must be'),
    (lambda m: m.update(bytes=[1]), '"bytes" must be'),
    (lambda m: m.update(duplicate_events=False), '"duplicate_events" must be'),
    (lambda m: m.update(sort_order=7), '"sort_order" must be'),
])
def test_a_malformed_manifest_is_named(snap: Path, change, says: str) -> None:
    edit_manifest(snap, change)
    assert_refused(verify(snap), snap / "manifest.json", says)


@pytest.mark.parametrize("content, says", [
    (b"", "unreadable snapshot manifest"),
    (b'{\n  "format": "caracal-forensics-snapshot",\n  "files": [', "unreadable snapshot"),
    (b"[1, 2]", "not a caracal-forensics snapshot manifest"),
    (b'{"format": "something-else"}', "not a caracal-forensics snapshot manifest"),
])
def test_a_broken_manifest_is_one_error_not_a_walk_of_its_parts(snap: Path, content: bytes,
                                                                 says: str) -> None:
    (snap / "manifest.json").write_bytes(content)
    for command in (["stats"], ["audit", "tail"]):
        result = run_cli(*command, "-s", snap)
        assert_refused(result, snap / "manifest.json", says)
        assert "search page" not in result.err and "part-0" not in result.err
    # also when the snapshot is found inside a directory that is walked
    assert_refused(run_cli("stats", "-s", snap.parent), snap / "manifest.json", says)


def test_a_part_file_named_alone_points_at_its_snapshot(snap: Path) -> None:
    part = parts(snap)[0]
    assert_refused(run_cli("stats", "-s", part), part, "give the snapshot directory")


# --- 1b. verify's deep check: every file's SHA-256 ------------------------------------


def test_a_wrong_sha256_in_the_manifest_fails_verify(snap: Path) -> None:
    part = parts(snap)[0]
    name = part.relative_to(snap).as_posix()
    edit_manifest(snap, lambda m: [e.update(sha256="0" * 64) for e in m["files"]
                                   if e["path"] == name])
    assert_refused(verify(snap), part, f"SHA-256 differs from {snap / 'manifest.json'}")
    # the cheap check on open does not hash: tail still reads it
    assert run_cli("audit", "tail", "-s", snap, "--limit", "1").code == 0


def test_a_same_size_edit_of_a_part_fails_verify(snap: Path) -> None:
    """One flipped byte: same size, so only the hash tells; DuckDB may not even read the
    part any more, and the changed file is still what is reported."""
    part = parts(snap)[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    assert_refused(verify(snap), part, "SHA-256 differs", "changed since the snapshot")


def test_a_chain_intact_swap_of_parts_fails_verify(snap: Path) -> None:
    """Parts rewritten with the same events (the chain still verifies) but other bytes."""
    part = parts(snap)[0]
    pq.write_table(pq.read_table(part), part, compression="gzip")
    edit_manifest(snap, lambda m: [e.update(bytes=part.stat().st_size) for e in m["files"]
                                   if e["path"] == part.relative_to(snap).as_posix()])
    assert_refused(verify(snap), part, "SHA-256 differs")


def test_the_api_and_the_evidence_report_check_the_digests_too(snap: Path,
                                                                tmp_path: Path) -> None:
    """``Snapshot.verify`` (notebooks, ``report``) holds the files to the manifest as
    ``verify`` does: the report is evidence, it must not call swapped parts INTACT."""
    opened = cf.open(str(snap))
    assert opened.verify(key=KEY_FILE.read_text().strip()).status == "intact"
    part = parts(snap)[0]
    pq.write_table(pq.read_table(part), part, compression="gzip")
    relisted = part.stat().st_size
    edit_manifest(snap, lambda m: [e.update(bytes=relisted) for e in m["files"]
                                   if e["path"] == part.relative_to(snap).as_posix()])
    with pytest.raises(InputError, match="SHA-256 differs"):
        cf.open(str(snap)).verify(key=KEY_FILE.read_text().strip())
    out = tmp_path / "evidence.html"
    result = run_cli("report", "-s", snap, "--key-file", KEY_FILE, "--out", out)
    assert_refused(result, part, "SHA-256 differs")
    assert not out.exists()


# --- 2. a corrupt file inside an export directory ---------------------------------------


def broken_hour(tmp_path: Path, content: Callable[[bytes], bytes]) -> tuple[Path, Path]:
    folder = Path(shutil.copytree(OCSF, tmp_path / "ocsf"))
    hour = folder / HOUR
    hour.write_bytes(content(hour.read_bytes()))
    return folder, hour


@pytest.mark.parametrize("content, says", [
    (lambda data: data[:len(data) // 2], "not a readable Parquet file"),
    # deterministic "random" bytes, binary from the first byte: os.urandom could begin
    # like a gzip stream or a JSON object, and the test then failed by chance
    (lambda data: b"\x00" + random.Random(7).randbytes(len(data) - 1),
     "binary data of unknown shape"),
])
def test_a_corrupt_file_in_a_directory_is_named(tmp_path: Path, content, says: str) -> None:
    folder, hour = broken_hour(tmp_path, content)
    for command in (["stats"], ["audit", "tail"], ["verify", "--key-file", KEY_FILE],
                    ["ingest", "--out", tmp_path / "out"]):
        assert_refused(run_cli(*command, "-s", folder), hour, says)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_glob_match_with_an_export_name_must_be_readable(tmp_path: Path) -> None:
    folder, hour = broken_hour(tmp_path, lambda data: data[:100])
    assert_refused(run_cli("stats", "-s", f"{folder}/**/*.parquet"), hour)


def test_files_that_are_not_exports_are_still_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(EXPORT / "db.csv", folder / "db.csv")
    shutil.copy(KEY_FILE, folder / "key.hex")
    (folder / "README.txt").write_text("notes, not an export\n", encoding="utf-8")
    (folder / "notes.md").write_text("# notes\n", encoding="utf-8")
    assert [Path(i.path).name for i in scan([str(folder)])] == ["db.csv"]
    result = verify(folder)
    assert result.code == 0 and result.out.startswith("INTACT: 240 event(s)"), result.err


# --- 3. FIFOs and dangling links ---------------------------------------------------------


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_a_fifo_named_explicitly_is_refused_not_opened(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "fifo.csv")
    proc = run_subprocess("stats", "-s", pipe)
    assert_refused(Result(proc.returncode, proc.stdout, proc.stderr), pipe,
                   "not a regular file")


def test_a_fifo_inside_an_export_directory_is_refused(tmp_path: Path) -> None:
    shutil.copy(EXPORT / "db.csv", tmp_path / "db.csv")
    pipe = fifo(tmp_path / "more.jsonl")
    proc = run_subprocess("audit", "tail", "-s", tmp_path)
    assert_refused(Result(proc.returncode, proc.stdout, proc.stderr), pipe,
                   "not a regular file")


@pytest.mark.parametrize("where", ["manifest.json", "part"])
def test_a_fifo_in_a_snapshot_is_refused(snap: Path, where: str) -> None:
    target = snap / "manifest.json" if where == "manifest.json" else parts(snap)[1]
    target.unlink()
    fifo(target)
    proc = run_subprocess("verify", "-s", snap, "--key-file", KEY_FILE)
    assert_refused(Result(proc.returncode, proc.stdout, proc.stderr), target,
                   "not a regular file")


def test_a_dangling_symlink_in_a_directory_is_refused(tmp_path: Path) -> None:
    shutil.copy(EXPORT / "db.csv", tmp_path / "db.csv")
    link = tmp_path / "gone.csv"
    link.symlink_to(tmp_path / "nowhere.csv")
    assert_refused(run_cli("stats", "-s", tmp_path), link, "a symbolic link to nothing")
    with pytest.raises(InputError, match="a symbolic link to nothing"):
        scan([str(link)])


def test_inputs_are_not_changed_by_the_checks(snap: Path) -> None:
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in snap.rglob("*")}
    assert verify(snap).code == 0
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in snap.rglob("*")} == before


# --- 4. directories a walk cannot list, or reaches through links -------------------------


def test_a_linked_directory_is_walked_once_and_a_link_loop_ends(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(EXPORT / "db.csv", outside / "db.csv")
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(EXPORT / "db.jsonl", folder / "db.jsonl")
    (folder / "more").symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(folder, target_is_directory=True)
    assert sorted(Path(i.path).name for i in scan([str(folder)])) == ["db.csv", "db.jsonl"]


def test_a_file_name_with_a_newline_stays_one_line(tmp_path: Path) -> None:
    shutil.copy(EXPORT / "db.csv", tmp_path / "db.csv")
    link = tmp_path / "b\nad\x1b[2J.csv"
    link.symlink_to(tmp_path / "nowhere.csv")
    result = run_cli("stats", "-s", tmp_path)
    assert_refused(result, tmp_path, "b\\nad\\x1b[2J.csv: a symbolic link to nothing")
    assert "\x1b" not in result.err


NOBODY = 65534


def _as_nobody(*argv: str | os.PathLike[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", sys.executable, "-m", "caracal_forensics",
                           *map(str, argv)], capture_output=True, text=True, cwd="/",
                          timeout=HANG_SECONDS, env={"PYTHONPATH": str(ROOT)})


def test_a_directory_that_cannot_be_listed_is_an_error() -> None:
    """A subdirectory the user may not list hid its exports without a word. Root lists
    anything, so this runs the CLI as nobody (setpriv) where the machine allows it."""
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as a user who cannot list a directory")
    if _as_nobody("--version").returncode != 0:
        pytest.skip("nobody cannot run this checkout (its path is not readable to others)")
    top = Path(tempfile.mkdtemp(prefix="unlistable-", dir="/tmp"))
    try:
        top.chmod(0o755)
        shutil.copy(EXPORT / "db.csv", top / "db.csv")
        (top / "db.csv").chmod(0o644)
        hidden = top / "sub"
        hidden.mkdir()
        shutil.copy(EXPORT / "db.csv", hidden / "more.csv")
        hidden.chmod(0)
        proc = _as_nobody("stats", "-s", top)
        assert_refused(Result(proc.returncode, proc.stdout, proc.stderr), hidden,
                       "cannot list the directory: Permission denied")
    finally:
        hidden.chmod(0o755)
        shutil.rmtree(top)


def test_a_part_corrupted_in_place_is_one_line_naming_it(snap: Path) -> None:
    """Same size, so opening (which does not hash) lets it through; DuckDB then cannot
    read it, and its message names no file ("reading the data failed: don't know what
    type", "query failed: ..."): the parts are hashed then, and the one changed is named
    with DuckDB's words, in every command that reads the events."""
    part = parts(snap)[0]
    changed = f"SHA-256 differs from {snap / 'manifest.json'} (changed since the snapshot"
    commands = (["stats"], ["ingest", "--out", snap.parent / "out"], ["audit", "tail"],
                ["audit", "tail", "--query", "decision"], ["sql", "SELECT max(id) FROM events"],
                ["query", "deny_rate_hourly"])
    for start, end in ((4, 2004), (len(part.read_bytes()) // 3, len(part.read_bytes()) // 2)):
        data = bytearray(part.read_bytes())
        data[start:end] = bytes(end - start)  # a page header, then compressed pages
        part.write_bytes(bytes(data))
        for command in commands:
            result = run_cli(*command, "-s", snap)
            assert_refused(result, part, changed)
            assert not (snap.parent / "out").exists()
        assert_refused(verify(snap), part, "SHA-256 differs")


def test_a_part_corrupted_in_place_names_it_in_tail_json(snap: Path) -> None:
    """``audit tail --json --limit 0`` reads a snapshot's row groups with Arrow, whose
    error named no file (``error: a file: ZSTD decompression failed``)."""
    part = parts(snap)[-1]
    data = bytearray(part.read_bytes())
    data[len(data) // 3:len(data) // 2] = bytes(len(data) // 2 - len(data) // 3)  # pages
    part.write_bytes(bytes(data))
    result = run_cli("audit", "tail", "--json", "--limit", "0", "-s", snap)
    assert_refused(result, part, ": row group 1: reading the data failed: ",
                   "`verify` checks a snapshot's files against its manifest")


@pytest.mark.parametrize("statistics", [True, False])
def test_a_part_rewritten_with_a_time_past_9999_is_refused_on_opening(snap: Path,
                                                                      statistics: bool) -> None:
    """A part rewritten (its manifest too) with a time Python cannot hold used to open;
    stats, explain, timeline, query and reconcile then stopped "unexpected OverflowError"
    naming no file. The footer's statistics say it (a part without them is read)."""
    part = parts(snap)[0]
    table = pq.read_table(part)
    index = table.schema.get_field_index("occurred_at")
    times = table.column(index).cast(pa.int64()).to_pylist()
    times[0] = 253_402_300_800_000_000  # 10000-01-01
    table = table.set_column(index, table.schema.field(index),
                             pa.array(times, pa.int64()).cast(table.schema.field(index).type))
    pq.write_table(table, part, write_statistics=statistics)
    relist(snap, part)
    for command in (["stats"], ["explain", "req-000013"], ["timeline", "--zone", "zone-alpha"]):
        assert_refused(run_cli(*command, "-s", snap), part, ": row group 1: not a snapshot "
                       "event file: column occurred_at holds a time outside the years 1-9999")


@pytest.mark.parametrize("how", ["--key-file", "AUDIT_HMAC_KEY_FILE"])
def test_a_key_file_that_never_ends_is_refused_not_read_whole(how: str) -> None:
    """/dev/zero as the key file was read whole: memory grew until the process was killed
    (here: under a 1 GiB address-space limit, a MemoryError). It is read up to 64 KiB."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    args = ["verify", "-s", EXPORT / "db.csv"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_HMAC")}
    if how == "--key-file":
        args += ["--key-file", "/dev/zero"]
    else:
        env["AUDIT_HMAC_KEY_FILE"] = "/dev/zero"
    result = subprocess.run([sys.executable, "-m", "caracal_forensics", *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=HANG_SECONDS, preexec_fn=limit)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "/dev/zero) is longer" in result.stderr or "/dev/zero is longer" in result.stderr
    assert "than 65,536 bytes: not a key file" in result.stderr


def test_a_part_rewritten_with_a_chain_seq_at_the_end_of_int64_is_refused(snap: Path) -> None:
    """verify's seq - 1 overflowed in DuckDB ("reading the data failed: Out of Range
    Error"), naming no file."""
    part = parts(snap)[0]
    table = pq.read_table(part)
    index = table.schema.get_field_index("chain_seq")
    seqs = table.column(index).to_pylist()
    seqs[3] = -(2**63)
    pq.write_table(table.set_column(index, table.schema.field(index),
                                    pa.array(seqs, pa.int64())), part)
    relist(snap, part)
    assert_refused(verify(snap), part, ": row group 1: not a snapshot event file: column "
                   "chain_seq holds an int64 extreme, out of the range of a chain")


def test_json_nested_too_deeply_in_a_manifest_or_an_anchor(snap: Path, tmp_path: Path) -> None:
    deep = '{"format": "caracal-forensics-snapshot", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    anchor = tmp_path / "anchor.json"
    anchor.write_text(deep, encoding="utf-8")
    result = run_cli("verify", "-s", EXPORT / "db.csv", "--anchor", anchor)
    assert_refused(result, anchor, "JSON nested too deeply", "an anchor holds zone heads")
    (snap / "manifest.json").write_text(deep, encoding="utf-8")
    assert_refused(run_cli("stats", "-s", snap), snap / "manifest.json",
                   "unreadable snapshot manifest: nested too deeply")


# --- 4. a CSV cut inside a character -----------------------------------------------------


@pytest.mark.parametrize("name, command", [
    ("db.csv", ["audit", "tail", "--json"]),
    ("db.csv", ["audit", "tail", "--on-bad-line", "skip"]),
    ("alerts.csv", ["alerts"]),
])
def test_a_csv_cut_inside_a_character_is_one_line_naming_it(tmp_path: Path, name: str,
                                                            command: list[str]) -> None:
    """A file cut in the middle of a UTF-8 sequence leaves a short row that is not UTF-8:
    Arrow decodes it before calling the row handler, and the decoding error used to be
    printed as "Exception ignored ... Traceback" above the error (twice for a table
    dump), which said "Row #3" of Arrow's instead of the line."""
    data = (EXPORT / name).read_bytes()
    third = data.index(b"\n", data.index(b"\n") + 1) + 1  # line 3 begins
    path = tmp_path / name
    path.write_bytes(data[:third] + "€".encode()[:1])
    result = run_subprocess(*command, "-s", path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == f"caracal-forensics: error: {path}: line 3: not UTF-8 text " \
                            "(unexpected end of data)\n"
