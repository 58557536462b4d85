"""Running the CLI in-process from a test: its exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from caracal_forensics.cli.app import run


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``caracal-forensics ARGV``."""
    with pytest.raises(SystemExit) as exit_info:
        run([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def one_error_line(err: str) -> str:
    """The one line an error is, asserting there is one and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
