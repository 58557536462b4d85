"""``Snapshot.write_lines``: what ``audit tail --json`` and ``--query`` print, from Python
(the same bulk path, byte for byte); its errors speak of parameters."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from support.cli import cli
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


def test_the_library_names_the_event_and_the_parameter(snap: cf.Snapshot) -> None:
    """An expression failing on an event (see test_query_errors.py) names ``query``."""
    with pytest.raises(InputError) as error:
        snap.write_lines(io.StringIO(), query="length(metadata.latency_ms)", limit=0)
    assert error.value.path.endswith("db.csv") and error.value.where.startswith("line ")
    assert "event 'ev-" in str(error.value) and "query failed: " in str(error.value)
    assert "--query" not in str(error.value)
