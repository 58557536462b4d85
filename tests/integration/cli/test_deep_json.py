"""jsonb nested thousands deep (PostgreSQL takes it; Python's parser stops near 1000
levels) is one input error naming the file and line wherever it must be parsed (explain's
text, --query), and is printed as stored where it need not be (--json, the table)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support.cli import cli, one_error_line
from support.paths import VECTOR_EXPORT as VECTORS


def dump_with_deep_metadata(tmp_path: Path, depth: int) -> tuple[Path, str]:
    """db.csv whose first event (line 2, request req-000003) holds metadata nested
    ``depth`` deep; returns the file and that metadata text."""
    lines = (VECTORS / "db.csv").read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    row = next(csv.reader(io.StringIO(lines[1].decode())))
    deep = '{"a": ' + "[" * depth + "]" * depth + "}"
    row[header.index("metadata_json")] = deep
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    lines[1] = buffer.getvalue().encode()
    path = tmp_path / f"db{depth}.csv"
    path.write_bytes(b"\n".join(lines))
    return path, deep


DEEP_PREFIX = "caracal-forensics: error: {path}: line 2: event 'ev-0000002': "


@pytest.mark.parametrize("argv, what", [
    (["explain", "req-000003"], "its JSON"),
    (["audit", "tail", "--request-id", "req-000003", "--query", "metadata.a"],
     "metadata_json"),
    (["audit", "tail", "-n", "0", "--query", "decision == 'allow'"], None),  # not read
])
def test_ten_thousand_deep_jsonb_is_one_input_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], what: str | None
) -> None:
    path, _ = dump_with_deep_metadata(tmp_path, 10_000)
    code, out, err = cli(capsys, *argv, "--source", str(path))
    if what is None:
        assert code == 0 and err == "" and '"id" : "ev-0000002"' in out
        return
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line == DEEP_PREFIX.format(path=path) + (
        f"{what} is nested too deeply to parse or show here (Python follows fewer than "
        "1000 levels); --json prints it as stored")


def test_json_and_table_views_print_it_as_stored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, deep = dump_with_deep_metadata(tmp_path, 10_000)
    for argv in (["explain", "req-000003", "--json"],
                 ["audit", "tail", "--request-id", "req-000003", "--json"]):
        code, out, err = cli(capsys, *argv, "--source", str(path))
        assert code == 0 and err == "" and f'"metadata" : {deep}' in out
    code, out, err = cli(capsys, "audit", "tail", "--request-id", "req-000003",
                         "--source", str(path))
    assert code == 0 and err == "" and "req-000003" in out


def test_a_value_parsed_but_too_deep_to_print_or_compare(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 900 levels parse, but printing them (or sorting them) goes deeper than Python follows
    path, _ = dump_with_deep_metadata(tmp_path, 900)
    for argv in (["audit", "tail", "--request-id", "req-000003", "--query", "metadata"],
                 ["explain", "req-000003"]):
        code, out, err = cli(capsys, *argv, "--source", str(path))
        line = one_error_line(err)
        assert code == 2 and line.startswith(DEEP_PREFIX.format(path=path))
        assert "is nested too deeply to parse or show here" in line


def test_a_deeply_nested_expression_is_a_usage_error(
    capsys: pytest.CaptureFixture[str]
) -> None:
    expression = "(" * 5000 + "id" + ")" * 5000
    code, _, err = cli(capsys, "audit", "tail", "--query", expression,
                       "--source", str(VECTORS / "db.csv"))
    assert code == 2
    assert one_error_line(err) == ("caracal-forensics: error: --query is nested too deeply "
                                   "(10002 characters)")
