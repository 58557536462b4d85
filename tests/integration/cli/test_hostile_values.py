"""Values no reader or writer foresaw are still one line on stderr and exit 2: numbers past
BIGINT, OCSF columns of another type, an --out the system refuses, and (the safety net)
any error no check names."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.cli import cli, one_error_line
from support.paths import VECTOR_EXPORT as VECTORS

from caracal_forensics.queries import load_queries
from caracal_forensics.sources._lines import RowError, int64_of

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(INT64, st.integers(min_value=0, max_value=30))
def test_int64_of_takes_every_bigint_with_any_leading_zeros(value: int, zeros: int) -> None:
    digits = ("-" if value < 0 else "") + "0" * zeros + str(abs(value))
    assert int64_of(digits, "chain_seq") == value


@given(st.one_of(st.integers(min_value=2**63, max_value=10**60),
                 st.integers(min_value=-(10**60), max_value=-(2**63) - 1)))
def test_int64_of_refuses_what_bigint_cannot_hold(value: int) -> None:
    with pytest.raises(RowError, match="out of range for a 64-bit integer"):
        int64_of(str(value), "chain_seq")


def test_int64_of_refuses_more_digits_than_python_converts() -> None:
    with pytest.raises(RowError, match=r"\(5000 digits\)"):
        int64_of("9" * 5000, "chain_seq")


def _with_chain_seq(tmp_path: Path, line: int, raw: str) -> Path:
    lines = (VECTORS / "db.jsonl").read_bytes().split(b"\n")  # not splitlines(): U+2028
    seq = json.loads(lines[line - 1])["chain_seq"]
    edited = lines[line - 1].replace(f'"chain_seq":{seq},'.encode(), f'"chain_seq":{raw},'.encode())
    assert edited != lines[line - 1]
    lines[line - 1] = edited
    path = tmp_path / "db.jsonl"
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize("raw", [str(10**40), "9" * 5000, str(2**63), f'"{-(2**63) - 1}"'])
@pytest.mark.parametrize("command", [["stats"], ["verify", "--key-file",
                                                 str(VECTORS / "key.hex")]])
def test_json_lines_chain_seq_past_bigint_is_a_bad_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, raw: str, command: list[str]
) -> None:
    path = _with_chain_seq(tmp_path, 5, raw)
    code, out, err = cli(capsys, *command, "--source", str(path))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"{path}: line 5: chain_seq" in line and "out of range for a 64-bit integer" in line
    code, out, err = cli(capsys, "stats", "--source", str(path), "--on-bad-line", "skip",
                         "--json")
    assert code == 0 and "skipped 1 malformed line(s)" in err
    assert json.loads(out)["rows"] == 240 - 1  # the vectors' 240 events, but line 5


def test_search_page_chain_seq_past_bigint(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    page = json.loads((VECTORS / "search" / "page-000.json").read_text(encoding="utf-8"))
    page["events"][2]["ChainSeq"] = str(10**30)
    path = tmp_path / "page-000.json"
    path.write_text(json.dumps(page), encoding="utf-8")
    code, _, err = cli(capsys, "stats", "--source", str(path))
    line = one_error_line(err)
    assert code == 2 and str(path) in line and "ChainSeq" in line and "out of range" in line


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("time", lambda n: pa.array(["x"] * n), "column 'time' (string) does not hold "
                                                "milliseconds (int64) values"),
        ("event_id", lambda n: pa.array([[1]] * n), "column 'event_id' (list<element: int64>) "
                                                    "does not hold string values"),
        ("chain_seq", lambda n: pa.array([2.0**70] * n), "column 'chain_seq' (double)"),
    ],
)
def test_ocsf_column_of_another_type(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     column: str, values, message: str) -> None:
    source = next((VECTORS / "ocsf").rglob("*.parquet"))
    table = pq.read_table(source)
    index = table.schema.get_field_index(column)
    table = table.set_column(index, column, values(table.num_rows))
    path = tmp_path / source.name
    pq.write_table(table, path)
    for command in (["stats"], ["verify", "--key-file", str(VECTORS / "key.hex")]):
        code, out, err = cli(capsys, *command, "--source", str(path))
        line = one_error_line(err)
        assert code == 2 and out == "" and f"{path}: rows 1-{table.num_rows}: " in line
        assert message in line


def test_report_out_a_directory_or_unwritable(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    key = str(VECTORS / "key.hex")
    code, _, err = cli(capsys, "report", "--source", str(VECTORS / "db.csv"), "--key-file", key,
                       "--out", str(tmp_path))
    assert code == 2 and "is a directory; name the file to write" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["/proc/caracal-forensics-test", "{file}/snapshot"])
def test_ingest_out_the_system_refuses(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       out: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    target = out.format(file=blocker)
    code, _, err = cli(capsys, "ingest", "--source", str(VECTORS / "db.csv"), "--out", target)
    line = one_error_line(err)
    assert code == 2 and f"--out {target}: cannot create it: " in line


def test_an_error_no_check_names_is_still_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The net under every check: whatever escapes them (here a failure injected where the
    # sources are resolved) is one line and exit 2, with the traceback on request.
    import caracal_forensics.cli.options as options

    def broken(_sources):
        raise RuntimeError("something no check foresaw\nsecond line")

    monkeypatch.setattr(options, "resolve_sources", broken)
    code, out, err = cli(capsys, "stats", "--source", str(VECTORS / "db.csv"))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert re.fullmatch(r"caracal-forensics: error: unexpected RuntimeError: something no "
                        r"check foresaw \(set CARACAL_FORENSICS_DEBUG=1 for the traceback\)",
                        line)
    monkeypatch.setenv("CARACAL_FORENSICS_DEBUG", "1")
    code, out, err = cli(capsys, "stats", "--source", str(VECTORS / "db.csv"))
    assert code == 2 and out == "" and "Traceback" in err
    assert err.rstrip().endswith("RuntimeError: something no check foresaw\nsecond line")


def test_an_os_error_names_its_file(tmp_path: Path) -> None:
    # A directory where the key file should be: the OS refuses it; no check names it first.
    proc = subprocess.run(
        [sys.executable, "-m", "caracal_forensics", "verify", "--source",
         str(VECTORS / "db.csv"), "--key-file", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and str(tmp_path) in line
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize(
    "name, rename",
    [("db.csv", ("decision", "zone_id")), ("db.csv", (None, "id")),
     ("alerts.csv", (None, "zone_id"))],
)
def test_a_csv_header_naming_a_column_twice(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             name: str, rename: tuple) -> None:
    # Which copy is the column? Another reader (a spreadsheet, DuckDB) may take the other.
    old, new = rename
    lines = (VECTORS / name).read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    if old is None:  # a second column of that name at the end of every row
        lines = [lines[0] + f",{new}".encode()] + [row + b",x" if row else row
                                                    for row in lines[1:]]
    else:
        header[header.index(old)] = new
        lines[0] = ",".join(header).encode()
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines))
    code, out, err = cli(capsys, "stats", "--source", str(path))
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.endswith(f"{path}: line 1: CSV header names {new} more than once")


def test_jsonb_text_that_is_not_json_leaves_the_queries_and_report_standing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Only a tampered or corrupt dump holds such text; verify names the row, and the
    # queries (and the report built on them) still run over the rest.
    lines = (VECTORS / "db.csv").read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    column = header.index("metadata_json")
    row = next(csv.reader(io.StringIO(lines[5].decode())))
    row[column] = "{not json"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    lines[5] = buffer.getvalue().encode()
    path = tmp_path / "db.csv"
    path.write_bytes(b"\n".join(lines))
    for name, query in load_queries().items():
        params = [f"{p.name}={p.example}" for p in query.params]
        code, _, err = cli(capsys, "query", name, "--source", str(path), "--json",
                           *[arg for param in params for arg in ("-p", param)])
        assert code == 0, (name, err)
    key = str(VECTORS / "key.hex")
    code, out, _ = cli(capsys, "report", "--source", str(path), "--key-file", key,
                       "--out", str(tmp_path / "evidence.html"))
    assert code == 1 and "tampered" in out and (tmp_path / "evidence.html").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit", "tail", "-n", "abc"], "Invalid value for '--limit' / '-n': 'abc' is not a "
                                         "valid int. (see 'caracal-forensics audit tail --help')"),
        (["verify", "--bogus"], "No such option: --bogus (see 'caracal-forensics verify --help')"),
        (["nosuch"], "No such command 'nosuch'. (see 'caracal-forensics --help')"),
        (["explain"], "Missing argument"),
    ],
)
def test_flag_errors_are_one_line_too(capsys: pytest.CaptureFixture[str], argv: list[str],
                                      message: str) -> None:
    code, out, err = cli(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and out == "" and line.startswith("caracal-forensics: error: ")
    assert message in line


def test_a_group_called_with_nothing_still_shows_its_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["audit"]):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and "Usage: caracal-forensics" in out + err and "Commands" in out + err
