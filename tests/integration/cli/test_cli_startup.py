"""`caracal-forensics --help` stays instant: no heavy library is imported to print help.

Speed itself is measured in bench/; this checks the cause (imports), which cannot flake.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("duckdb", "pyarrow", "polars", "psycopg", "jmespath", "zstandard", "numpy")

PROBE = """
import sys

import pytest
from caracal_forensics.cli.app import run
try:
    run({argv!r})
except SystemExit:
    pass
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _heavy_modules_after(argv: list[str]) -> list[str]:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])  # a list literal we printed


def test_help_imports_no_heavy_library() -> None:
    assert _heavy_modules_after(["--help"]) == []


def test_every_command_help_imports_no_heavy_library() -> None:
    from caracal_forensics.cli.app import _register_commands, app, audit_app

    _register_commands()
    def name(command) -> str:
        return command.name or command.callback.__name__.replace("_", "-")

    commands = [[name(c)] for c in app.registered_commands]
    commands += [["audit", name(c)] for c in audit_app.registered_commands]
    assert len(commands) >= 2
    for argv in commands:
        assert _heavy_modules_after([*argv, "--help"]) == [], argv


def test_a_command_parses_its_options_without_pydantic() -> None:
    """typer 0.29 and later validate every option through pydantic, 0.15-0.2 s at each
    command's start; pyproject pins below it. A real command must not pull it in."""
    from support.tail import KEY_FILE, SHAPES

    code = PROBE.format(
        argv=["verify", "--source", str(SHAPES["db_csv"]), "--key-file", str(KEY_FILE)],
        heavy=("pydantic", "pyarrow"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout.strip().splitlines()[-1]) == ["pyarrow"]  # it did run


POOL_PROBE = """
import os, sys
from caracal_forensics.cli.app import run
try:
    run({argv!r})
except SystemExit:
    pass
import pyarrow as pa
print(pa.default_memory_pool().backend_name, "ARROW_DEFAULT_MEMORY_POOL" in os.environ)
"""


def _arrow_pool_after(argv: list[str], env: dict[str, str]) -> str:
    import os

    code = POOL_PROBE.format(argv=argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_ingest_runs_on_jemalloc_unless_the_user_chose_an_allocator(tmp_path,
                                                                    monkeypatch) -> None:
    """Ingest picks Arrow's jemalloc (on Linux), without leaving the variable set for
    what it starts; the user's choice wins; the other commands keep pyarrow's default."""
    from support.tail import SHAPES

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    default = _arrow_pool_after(["--version"], {})
    assert default.endswith(" False")
    ingest = ["ingest", "--source", str(SHAPES["db_csv"]), "--out"]
    expected = "jemalloc False" if sys.platform.startswith("linux") else default
    assert _arrow_pool_after([*ingest, str(tmp_path / "a")], {}) == expected
    chosen = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
    assert _arrow_pool_after([*ingest, str(tmp_path / "b")], chosen) == "system True"
    tail = ["audit", "tail", "--source", str(SHAPES["db_csv"]), "--limit", "1"]
    assert _arrow_pool_after(tail, {}) == default



def test_reading_a_snapshot_does_not_import_pandas(tmp_path) -> None:
    """DuckDB imports pandas (when installed, as with the spark extra) the first time it is
    handed an Arrow object: 0.13 s at every command, as long as the statement the
    recipes are compared with (bench/). Opening a snapshot and printing its events hand
    it none; the empty tables are made in SQL. (pyarrow too imports pandas for some
    conversions, which the text readers make: not checked there.)"""
    from support.tail import SHAPES

    snapshot = tmp_path / "snapshot"
    ingest = ["ingest", "--source", str(SHAPES["db_csv"]), "--out", str(snapshot)]
    subprocess.run([sys.executable, "-m", "caracal_forensics", *ingest], check=True,
                   capture_output=True)
    for extra in (["--json"], ["--query", "decision == 'deny' && id"]):
        argv = ["audit", "tail", "--source", str(snapshot), "--limit", "0", *extra]
        code = PROBE.format(argv=argv, heavy=("pandas", "duckdb"))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert eval(proc.stdout.strip().splitlines()[-1]) == ["duckdb"], extra


def test_a_run_builds_only_its_own_command() -> None:
    """typer builds the options of every registered command at each start (14 ms for all
    of them): a run registers the command it names, help and a typo every one."""
    from support.tail import SHAPES

    code = PROBE.format(argv=["audit", "tail", "--source", str(SHAPES["db_csv"]), "-n", "1"],
                        heavy=("caracal_forensics.cli.audit", "caracal_forensics.cli.verify"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout.strip().splitlines()[-1]) == ["caracal_forensics.cli.audit"]


def test_which_command_a_command_line_names() -> None:
    from caracal_forensics.cli.app import _invoked

    assert _invoked(["audit", "tail", "--zone", "verify"]) == ("audit", "audit", "tail")
    assert _invoked(["--version", "verify", "--source", "x"]) == (None, "verify", "verify")
    assert _invoked(["admin", "tail"]) == ("admin", "admin", "tail")
    assert _invoked(["sql", "SELECT 1"]) == (None, "query", "sql")
    for argv in (None, [], ["--help"], ["audit"], ["audit", "--help", "tail"], ["tial"],
                 ["audit", "verify"], ["tail"]):
        assert _invoked(argv) is None, argv


def test_help_after_a_run_lists_every_command_in_order(capsys) -> None:
    """A process that ran one command (a notebook, the tests) and then asks for help gets
    the whole list, in COMMANDS' order."""
    import pytest

    from caracal_forensics.cli.app import COMMANDS, _register_commands, app, run

    _register_commands(["stats", "--source", "x"])
    with pytest.raises(SystemExit):
        run(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.split("Commands:")[1]
              .splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert listed == [*(f for g, _, f in COMMANDS if g is None), "audit", "admin"]
    assert len(app.registered_commands) == len([g for g, _, _ in COMMANDS if g is None])


#: Prepended to a probe: the process finds no pandas, as a default install has none.
WITHOUT_PANDAS = """
import importlib.abc, sys
class NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoPandas())
"""


def test_tail_and_explain_of_a_snapshot_do_not_import_pyarrow_compute(tmp_path) -> None:
    """Importing pyarrow.compute builds its 286 function wrappers: 25 ms or more at each
    start. Printing a snapshot's events as a table, or explaining a request, needs none of
    it (occurred_at comes as text from the SQL). Checked as installed by default, without
    pandas: pyarrow imports pandas, when there is one, at nearly any conversion of Python
    values (``pa.array``, ``pa.scalar``, ``to_pylist``), and pandas pyarrow.compute."""
    from support.tail import SHAPES

    snapshot = tmp_path / "snapshot"
    ingest = ["ingest", "--source", str(SHAPES["db_csv"]), "--out", str(snapshot)]
    subprocess.run([sys.executable, "-m", "caracal_forensics", *ingest], check=True,
                   capture_output=True)
    for argv in (["audit", "tail"], ["explain", "req-000027"]):
        code = WITHOUT_PANDAS + PROBE.format(
            argv=[*argv, "--source", str(snapshot)], heavy=("pyarrow.compute", "duckdb"))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "req-000027" in proc.stdout or argv[0] == "audit", proc.stdout[:300]
        assert eval(proc.stdout.strip().splitlines()[-1]) == ["duckdb"], argv


def test_explain_and_admin_tail_of_a_snapshot_do_not_import_pandas(tmp_path) -> None:
    """pyarrow imports pandas, when installed (the spark extra), at its first conversion
    of a timestamp to a datetime: 0.13 s or more at a command's start. Explaining a
    request and listing admin changes show their times from text, so convert none."""
    from support.paths import FIXTURE_INCIDENT

    snapshot = tmp_path / "snapshot"
    ingest = ["ingest", "--source", str(FIXTURE_INCIDENT), "--out", str(snapshot)]
    subprocess.run([sys.executable, "-m", "caracal_forensics", *ingest], check=True,
                   capture_output=True)
    for argv in (["explain", "req-pay-0067"], ["admin", "tail"], ["admin", "tail", "--json"]):
        code = PROBE.format(argv=[*argv, "--source", str(snapshot)], heavy=("pandas", "duckdb"))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0 and len(proc.stdout.splitlines()) > 3, proc  # it ran
        assert eval(proc.stdout.strip().splitlines()[-1]) == ["duckdb"], argv


MAIN_PROBE = """
import sys

import pytest
from caracal_forensics.cli import main
sys.argv = ["caracal-forensics", *{argv!r}]
try:
    main()
except SystemExit:
    pass
print(sorted(m for m in ("pandas", "pyarrow") if m in sys.modules))
"""


def test_the_console_script_never_imports_pandas(tmp_path) -> None:
    """pyarrow imports pandas, where installed, at its first conversion of Python values,
    which the text readers, verify and explain make: 0.11-0.13 s a command
    (``pandas_gate``). The console script declines it; what it prints is unchanged."""
    pytest.importorskip("pandas")
    from support.tail import KEY_FILE, SHAPES

    runs = [["stats", "--source", str(SHAPES["db_csv"])],
            ["audit", "tail", "--source", str(SHAPES["cli_jsonl"]), "--limit", "3"],
            ["verify", "--source", str(SHAPES["db_csv"]), "--key-file", str(KEY_FILE)]]
    for argv in runs:
        proc = subprocess.run([sys.executable, "-c", MAIN_PROBE.format(argv=argv)],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        *printed, imported = proc.stdout.strip().splitlines()
        assert eval(imported) == ["pyarrow"], argv  # it read the export
        # the same words as a process where pandas was imported first
        code = f"import pandas\n{MAIN_PROBE.format(argv=argv)}"
        with_pandas = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, cwd=tmp_path)
        assert with_pandas.stdout.strip().splitlines()[:-1] == printed, argv


def test_a_step_that_needs_pandas_gets_it_back() -> None:
    """``pandas_gate.allow`` (the Spark engine's first step) undoes ``decline``, and
    pyarrow, told once that pandas is absent, converts to and from it when asked."""
    pytest.importorskip("pandas")
    code = """
import sys

import pytest
from caracal_forensics import pandas_gate
pandas_gate.decline()
import pyarrow as pa
pa.array([1, 2])  # pyarrow's check, declined
try:
    import pandas
except ImportError as error:
    print("declined:", error)
assert "pandas" not in sys.modules
pandas_gate.allow()
import pandas
print(pa.Table.from_pandas(pandas.DataFrame({"a": [1]})).to_pandas()["a"].tolist())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "declined: pandas is not imported by the command line (pandas_gate.allow lets it)",
        "[1]"]
