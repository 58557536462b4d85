"""``tail --json`` written by the C kernel (``render/_lines.c``) prints what DuckDB's SQL
lines print, on every bundled shape and a canonical snapshot, with and without a limit
and filters; without the kernel (not built, ``CARACAL_FORENSICS_NATIVE=0``) the SQL lines
are printed, and `| head` still ends a child at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_cli
from support.paths import ROOT
from support.tail import EXPORT, SHAPES

from caracal_forensics.render import bulk, native_lines

pytestmark = pytest.mark.skipif(native_lines._native is None, reason="C kernel not built")

CASES = {
    "all": ["--limit", "0"],
    "newest": ["--limit", "7"],
    "denies": ["--limit", "0", "--decision", "deny"],
    "window": ["--limit", "0", "--since", "2026-05-11T08:05:00Z", "--zone", "zone-alpha"],
}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A canonical snapshot of the vectors' db.csv, written by ingest."""
    out = tmp_path_factory.mktemp("native") / "snap"
    result = run_cli("ingest", "--source", EXPORT / "db.csv", "--out", out)
    assert result.code == 0, result.err
    return out


def _tail(source: Path, args: list[str]) -> str:
    result = run_cli("audit", "tail", "--source", source, "--json", *args)
    assert (result.code, result.err) == (0, ""), result.err
    return result.out


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", [*SHAPES, "snapshot"])
def test_kernel_lines_are_the_sql_lines(shape: str, case: str, snapshot: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bytes from the kernel and from DuckDB's lines, and the kernel wrote them."""
    source = snapshot if shape == "snapshot" else SHAPES[shape]
    calls = []
    native = bulk._write_native
    monkeypatch.setattr(bulk, "_write_native", lambda *a: calls.append(a) or native(*a))
    printed = _tail(source, CASES[case])
    assert calls, "the kernel did not write the lines"
    monkeypatch.setattr(native_lines, "AVAILABLE", False)
    assert printed == _tail(source, CASES[case])
    assert printed.count("\n") == 7 if case == "newest" else printed.count("\n") > 10


def test_without_the_kernel_in_a_child(snapshot: Path) -> None:
    """CARACAL_FORENSICS_NATIVE=0 turns the kernel off in a fresh process, and the child's
    output (written to its stdout's file descriptor) is the same."""
    args = [sys.executable, "-m", "caracal_forensics", "audit", "tail", "--source",
            str(snapshot), "--json", "--limit", "0"]
    env = {k: v for k, v in os.environ.items() if k != "CARACAL_FORENSICS_DEBUG"}
    native = subprocess.run(args, capture_output=True, cwd=ROOT, env=env, check=True)
    sql = subprocess.run(args, capture_output=True, cwd=ROOT, check=True,
                         env={**env, "CARACAL_FORENSICS_NATIVE": "0"})
    assert native.stdout == sql.stdout and native.stdout.count(b"\n") > 100
    assert native.stderr == sql.stderr == b""
