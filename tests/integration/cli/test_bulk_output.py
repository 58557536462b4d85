"""``tail --json`` / ``--query`` written in bulk by DuckDB: `| head` on a larger input still
exits 0 at once, and events as long as the maximum line stay within memory, printed as
stored."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import ROOT, VECTOR_EXPORT
from support.peak import run_cli_measured

EVENTS = 40_000


@pytest.fixture(scope="module")
def many_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vectors' db.jsonl events repeated to ``EVENTS`` lines, each id made unique."""
    lines = [line for line in (VECTOR_EXPORT / "db.jsonl").read_bytes().split(b"\n") if line]
    path = tmp_path_factory.mktemp("many") / "db.jsonl"
    with path.open("wb") as out:
        for copy in range(EVENTS // len(lines)):
            for line in lines:
                record = json.loads(line)
                record["id"] = f"{record['id']}-{copy}"
                out.write(json.dumps(record).encode() + b"\n")
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CARACAL_FORENSICS_DEBUG"}


def _child(args: list[str], stdout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "caracal_forensics", *args], stdout=stdout,
                            stderr=subprocess.PIPE, cwd=ROOT, env=_env())


@pytest.mark.parametrize("output", [["--json"], ["--query", "{d: decision, m: metadata}"],
                                    ["--query", "decision == 'deny'"]],
                         ids=["json", "projection", "filter"])
def test_head_closing_the_pipe_stops_at_once(many_events: Path, output: list[str]) -> None:
    """Read one line, close the pipe: exit 0, stderr quiet, and the child ends well before
    it would have printed everything (it printed far less than the whole into the pipe)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    child = _child(["audit", "tail", "-n", "0", *output, "-s", str(many_events)], write_end)
    os.close(write_end)
    seen = b""
    while b"\n" not in seen:
        byte = os.read(read_end, 1)
        assert byte, "no line came"
        seen += byte
    json.loads(seen)
    closed = time.monotonic()
    os.close(read_end)
    _, stderr = child.communicate(timeout=120)
    assert (child.returncode, stderr.decode()) == (0, "")
    assert time.monotonic() - closed < 30


def test_events_as_long_as_a_line_may_be_stay_within_memory(tmp_path: Path) -> None:
    """12 events of 12 MiB each (144 MiB of JSON): printed byte for byte as stored, with
    the process well under 1 GiB (DuckDB sorts within its limit, Python holds one batch
    of finished lines, never a Python string per line)."""
    first = json.loads((VECTOR_EXPORT / "db.jsonl").read_bytes().split(b"\n")[0])
    path = tmp_path / "long.jsonl"
    pad = "x" * (12 << 20)
    with path.open("w", encoding="utf-8") as out:
        for index in range(12):
            record = dict(first, id=f"long-{index}",
                          metadata_json={"pad": pad, "n": "DECIMAL", "i": index})
            out.write(json.dumps(record).replace('"DECIMAL"', "1.50") + "\n")
    target, errors = tmp_path / "out.jsonl", tmp_path / "stderr"
    with target.open("wb") as stdout, errors.open("wb") as stderr:
        code, peak = run_cli_measured(["audit", "tail", "-n", "0", "--json", "-s", path],
                                      stdout=stdout, stderr=stderr, env=_env())
    assert code == 0, errors.read_text()
    lines = target.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 13
    assert all(b'"n": 1.50' in line and len(line) > 12 << 20 for line in lines[:-1])
    assert peak < 1 << 30  # its own peak, not the pytest process's (support/peak.py)


def test_a_compiled_expression_duckdb_refuses_is_left_to_the_evaluator() -> None:
    """``not_null(x, )`` (one argument) compiles to SQL DuckDB cannot parse: the evaluator
    answers instead, with the lines it always printed (no "query failed", exit 0)."""
    from support.cli import run_cli

    from caracal_forensics.render.jmes_sql import compile_query

    expression = "{p: not_null(determining_policies[].policy, )}"
    if compile_query(expression) is None:
        pytest.skip("the compiler leaves this expression to the evaluator itself now")
    result = run_cli("audit", "tail", "-s", str(VECTOR_EXPORT / "db.csv"), "-n", "3",
                     "--query", expression)
    assert (result.code, result.err) == (0, "")
    assert result.lines == ['{"p": ["baseline-resource-scope"]}', '{"p": ["payments-policy"]}',
                            '{"p": ["payments-policy"]}']


@pytest.mark.parametrize("expression", ["{m: metadata}", "metadata.latency_ms",
                                        "metadata.latency_ms == `10` && id"])
@pytest.mark.parametrize("limit", ["0", "2"])
def test_a_jsonb_field_holding_invalid_json_is_said_by_the_evaluator(
        tmp_path: Path, expression: str, limit: str) -> None:
    """A table dump whose metadata_json is cut short (its reader lets the text through):
    the evaluator's one line naming file, line and event, exit 2; not the stored text
    printed with exit 0, nor DuckDB's "Malformed JSON"."""
    import csv

    from support.cli import run_cli

    with (VECTOR_EXPORT / "db.csv").open(newline="") as source:
        rows = list(csv.reader(source))[:4]
    column = rows[0].index("metadata_json")
    rows[2][column] = '{"latency_ms": 10, "x": '
    corrupt = tmp_path / "db.csv"
    with corrupt.open("w", newline="") as out:
        csv.writer(out).writerows(rows)
    result = run_cli("audit", "tail", "-s", str(corrupt), "-n", limit, "--query", expression)
    assert result.code == 2
    assert result.err.splitlines() == [
        f"caracal-forensics: error: {corrupt}: line 3: event {rows[2][0]!r}: metadata_json "
        f"is not valid JSON (Expecting value: line 1 column 25 (char 24))"]
    assert '"x": }' not in result.out


@pytest.mark.parametrize("expression", ["diagnostics[].step_up_required",
                                        "decision == 'deny' && diagnostics[?step_up_required]",
                                        "metadata.latency_ms && diagnostics[0]"])
def test_a_jsonb_array_holding_invalid_json_is_said_by_the_evaluator(
        tmp_path: Path, expression: str) -> None:
    """As above for the diagnostics, an array whose elements a compiled query reads: a
    cut-short text is neither printed nor DuckDB's "Malformed JSON", whatever reads it
    first (the elements, a filter of them, a member of another field)."""
    import csv
    import json

    from support.cli import run_cli

    with (VECTOR_EXPORT / "db.csv").open(newline="") as source:
        rows = list(csv.reader(source))[:4]
    column = rows[0].index("diagnostics_json")
    cut = '[{"step_up_required": true}, '
    rows[2][column] = cut
    rows[2][rows[0].index("decision")] = "deny"
    corrupt = tmp_path / "db.csv"
    with corrupt.open("w", newline="") as out:
        csv.writer(out).writerows(rows)
    try:
        json.loads(cut)
    except ValueError as error:
        problem = str(error)
    result = run_cli("audit", "tail", "-s", str(corrupt), "-n", "0", "--query", expression)
    assert (result.code, result.err.splitlines()) == (2, [
        f"caracal-forensics: error: {corrupt}: line 3: event {rows[2][0]!r}: "
        f"diagnostics_json is not valid JSON ({problem})"])


def test_a_guard_on_text_and_jsonb_sizes_the_slices_by_its_text_clause(many_events: Path
                                                                       ) -> None:
    """``--limit 0`` with a guard of a text clause and a jsonb one, in slices of 50
    events: the first pass is sized by the text clause alone (with its own parameter
    only, or DuckDB refuses the excess one), and the lines are the evaluator's over
    every event, oldest first; the CLI prints them too."""
    import io

    from support.cli import run_cli

    from caracal_forensics import open as open_snapshot
    from caracal_forensics.filters import ORDER_ASC, Filters
    from caracal_forensics.render import bulk
    from caracal_forensics.render.query import Query

    expression = "decision == 'deny' && metadata.principal_id == 'app-0022' && id"
    query = Query(expression)
    snap = open_snapshot(str(many_events))
    table = snap.duckdb.sql(f"SELECT * FROM unique_events ORDER BY {ORDER_ASC}"
                            ).to_arrow_table()
    expected = "".join(line + "\n" for line in query.lines(table))
    compiled = query.to_sql()
    out = io.StringIO()
    batches = bulk.ordered_batches(snap.duckdb, Filters.build(limit=0),
                                   bulk.query_select(compiled), guard=query.guard(),
                                   wrap=compiled.relation, bucket_rows=50)
    bulk.write_query_lines(batches, query, out)
    assert out.getvalue() == expected and expected.count("\n") > 100
    result = run_cli("audit", "tail", "-n", "0", "-s", many_events, "--query", expression)
    assert (result.code, result.err, result.out) == (0, "", expected)
