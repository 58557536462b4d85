"""Running the CLI in-process from a test, as a user runs it: exit code, stdout, stderr.

Two forms over the one entry point (``caracal_forensics.cli.app.run``):

- ``cli(capsys, *argv)``: (exit code, stdout, stderr) through pytest's ``capsys``;
- ``run_cli(*argv, env=...)``: a :class:`Result` (which unpacks as ``code, out, err``),
  with environment variables set (or, given None, unset) for the run only.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def _exit_code(code: object) -> int:
    """The process exit status ``SystemExit(code)`` stands for."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``caracal-forensics ARGV``."""
    from caracal_forensics.cli.app import run

    with pytest.raises(SystemExit) as exit_info:
        run([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return _exit_code(exit_info.value.code), out, err


def one_error_line(err: str) -> str:
    """The one line an error is, asserting there is one and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.out.split("\n") if line]

    def __iter__(self) -> Iterator[int | str]:
        """``code, out, err = run_cli(...)``."""
        return iter((self.code, self.out, self.err))


def run_cli(*args: str | os.PathLike[str], env: dict[str, str | None] | None = None) -> Result:
    """Run ``caracal-forensics ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from caracal_forensics.cli.app import run

    saved = {}
    for name, value in (env or {}).items():
        saved[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run([str(a) for a in args])
            except SystemExit as done:
                code = _exit_code(done.code)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Result(code, out.getvalue(), err.getvalue())
