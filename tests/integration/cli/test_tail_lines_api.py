"""``Snapshot.write_lines``: what ``audit tail --json`` and ``--query`` print, from Python
(the same bulk path, byte for byte); its errors speak of parameters."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from support.cli import cli
from support.disks import fill, small_tmpfs
from support.paths import FIXTURE_EXPORT

import caracal_forensics as cf
from caracal_forensics.errors import InputError, UsageError

CASES = [
    {"limit": 0},
    {"limit": 7, "decision": "deny"},
    {"limit": 0, "zone": ["zone-beta"], "since": "2026-05-11T08:00:00Z"},
    {"limit": 0, "query": "decision == 'deny' && {id: id, app: metadata.principal_id}"},
    {"limit": 0, "query": "determining_policies[].policy"},
    {"limit": 3, "query": "{d: decision, m: metadata}"},
    # not compiled to SQL: the evaluator, a batch at a time
    {"limit": 0, "query": "decision == 'deny' && keys(metadata)"},
    {"limit": 0, "query": "event_type == 'no such type'"},
]


def _argv(options: dict) -> list[str]:
    argv = ["audit", "tail", "-s", str(FIXTURE_EXPORT)]
    for name, value in options.items():
        for one in value if isinstance(value, list) else [value]:
            argv += [f"--{name.replace('_', '-')}", str(one)]
    if "query" not in options:
        argv.append("--json")
    return argv


@pytest.fixture(scope="module")
def snap() -> cf.Snapshot:
    return cf.open(str(FIXTURE_EXPORT))


@pytest.mark.parametrize("options", CASES,
                         ids=[f"case{index}" for index in range(len(CASES))])
def test_write_lines_prints_what_tail_prints(capsys: pytest.CaptureFixture[str],
                                             snap: cf.Snapshot, options: dict) -> None:
    code, expected, _ = cli(capsys, *_argv(options))
    assert code == 0
    out = io.StringIO()
    matched = snap.write_lines(out, **options)
    assert out.getvalue() == expected
    assert (matched == 0) == ("no such type" in options.get("query", ""))  # nothing matched


def test_write_lines_to_a_file_and_to_stdout(tmp_path: Path, snap: cf.Snapshot,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with (tmp_path / "denies.jsonl").open("w", encoding="utf-8") as handle:
        written = snap.write_lines(handle, decision="deny", limit=0)
    text = (tmp_path / "denies.jsonl").read_text(encoding="utf-8")
    assert written == text.count("\n") > 0  # (a value may hold U+2028: not splitlines)
    snap.write_lines(decision="deny", limit=0)  # no out: stdout
    assert capsys.readouterr().out == text


def test_write_lines_speaks_of_parameters(snap: cf.Snapshot) -> None:
    with pytest.raises(UsageError, match=r"^query '\[\[' is not valid JMESPath"):
        snap.write_lines(io.StringIO(), query="[[")
    with pytest.raises(UsageError, match="limit"):
        snap.write_lines(io.StringIO(), limit=-1)
    with pytest.raises(UsageError, match="^out must be a path or a file opened for writing"):
        snap.write_lines(3, limit=0)


def test_the_library_names_the_event_and_the_parameter(snap: cf.Snapshot) -> None:
    """An expression failing on an event (see test_query_errors.py) names ``query``."""
    with pytest.raises(InputError) as error:
        snap.write_lines(io.StringIO(), query="length(metadata.latency_ms)", limit=0)
    assert error.value.path.endswith("db.csv") and error.value.where.startswith("line ")
    assert "event 'ev-" in str(error.value) and "query failed: " in str(error.value)
    assert "--query" not in str(error.value)


# --- out as a path: whole or not at all, never over the evidence ----------------------------


def test_a_path_or_a_binary_file_gets_the_same_bytes(tmp_path: Path, snap: cf.Snapshot,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, expected, _ = cli(capsys, *_argv({"limit": 0}))
    target = tmp_path / "all.jsonl"
    target.write_text("an earlier run\n")
    assert snap.write_lines(str(target), limit=0) > 0
    assert target.read_text(encoding="utf-8") == expected
    with (tmp_path / "binary.jsonl").open("wb") as handle:
        snap.write_lines(handle, limit=0)
        assert not handle.closed  # the caller's file stays the caller's
    assert (tmp_path / "binary.jsonl").read_text(encoding="utf-8") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.jsonl", "binary.jsonl"]


def test_an_input_is_never_the_output(tmp_path: Path) -> None:
    source = tmp_path / "db.csv"
    source.write_bytes((FIXTURE_EXPORT / "db.csv").read_bytes())
    before = source.read_bytes()
    opened = cf.open(str(source))
    with pytest.raises(UsageError, match=r"^out .*db\.csv is the input; inputs are never"):
        opened.write_lines(str(source), limit=0)
    assert source.read_bytes() == before
    snapshot = tmp_path / "snap"
    opened.ingest(str(snapshot))
    with pytest.raises(UsageError, match=r"is inside the input"):
        cf.open(str(snapshot)).write_lines(snapshot / "events" / "more.jsonl", limit=0)
    assert not (snapshot / "events" / "more.jsonl").exists()


def test_a_failure_leaves_the_previous_file_as_it_was(tmp_path: Path,
                                                      snap: cf.Snapshot) -> None:
    target = tmp_path / "lengths.jsonl"
    target.write_text("the previous run\n")
    with pytest.raises(InputError, match="query failed"):  # on an event, midway
        snap.write_lines(target, query="length(metadata.latency_ms)", limit=0)
    assert target.read_text() == "the previous run\n"
    assert os.listdir(tmp_path) == [target.name]
    with small_tmpfs(tmp_path / "disk") as disk:  # a real full disk
        full = disk / "all.jsonl"
        full.write_text("the previous run\n")
        fill(disk)
        with pytest.raises(UsageError,
                           match=f"^{full}: cannot write it: No space left on device"):
            snap.write_lines(full, limit=0)
        assert full.read_text() == "the previous run\n"
        assert sorted(p.name for p in disk.iterdir()) == ["all.jsonl", "filler"]
