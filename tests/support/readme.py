"""The README's examples as runnable commands, and a folder laid out the way they assume.

The README shows commands over ``export/`` (an export directory), ``audit/`` and
``audit-q4/`` (hourly OCSF trees), ``key.hex`` and ``case-1234/`` (a snapshot written by
an earlier example). :func:`lay_out` makes those from the bundled fixtures, so every
example runs as printed, from a folder outside the repository, with whichever
``caracal-forensics`` comes first on PATH (the checkout's, or an installed wheel's).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.paths import FIXTURES, ROOT

README = ROOT / "README.md"

#: Examples that cannot run here as printed, and the tests that cover what they show.
SKIPPED = {
    "--follow": "runs until Ctrl-C (integration/cli/test_follow.py follows a growing export)",
    "snapshot --dsn": "needs a live Caracal database (integration/postgres/test_pgsnapshot.py)",
    "s3://": "needs an S3-compatible server (integration/s3/test_s3_sources.py runs every "
             "command over one)",
    "--engine spark": "starts Spark (integration/spark/ runs these commands on both engines)",
}
#: Paths in the examples that stand for the reader's own.
STAND_INS = {"/evidence/caracal-export": "export/"}

_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
_OPTIONAL = re.compile(r"\s*\[[^\]]*\]")  # a synopsis' [--flag VALUE]


@dataclass(frozen=True)
class Example:
    """One command line of a README code block (continuation lines joined)."""

    line: int  # 1-based, in README.md
    text: str

    @property
    def skipped(self) -> str | None:
        return next((why for key, why in SKIPPED.items() if key in self.text), None)

    def runnable(self) -> str:
        """The command with synopsis brackets dropped and stand-in paths replaced."""
        text = _OPTIONAL.sub("", self.text)
        for stand_in, here in STAND_INS.items():
            text = text.replace(stand_in, here)
        return text


def code_blocks(text: str) -> list[list[tuple[int, str]]]:
    """The README's indented code blocks, as (line number, line without indent) lists."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("    "):
            current.append((number, line[4:]))
        elif current and not line.strip():
            current.append((number, ""))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def shell_examples(text: str | None = None) -> list[list[Example]]:
    """Per code block, its caracal-forensics command lines (an ``export`` line included)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found = []
    for block in code_blocks(text):
        commands: list[Example] = []
        pending: tuple[int, str] | None = None
        for number, line in block:
            if pending is not None:
                start, head = pending
                joined = head + " " + line.strip()
                pending = (start, joined[:-1].rstrip()) if joined.endswith("\\") else None
                if pending is None:
                    commands.append(Example(start, joined))
                continue
            if not _is_command(line):
                continue
            command = line.split("  #")[0].rstrip()  # a trailing comment
            if command.endswith("\\"):
                pending = (number, command[:-1].rstrip())
            else:
                commands.append(Example(number, command))
        if commands:
            found.append(commands)
    return found


def python_examples(text: str | None = None) -> list[Example]:
    """The code blocks that are Python (they start with ``import caracal_forensics``)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    return [
        Example(block[0][0], "\n".join(line for _, line in block))
        for block in code_blocks(text)
        if block[0][1].startswith("import caracal_forensics")
    ]


def _is_command(line: str) -> bool:
    words = line.split()
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words[:1] == ["export"] and len(words) == 2 and _ASSIGNMENT.match(words[1]):
        return True
    return words[:1] == ["caracal-forensics"]


def lay_out(folder: Path) -> Path:
    """Make ``folder`` hold what the examples name: export/, audit/, audit-q4/, key.hex,
    admin/ (the admin chain fixtures), case/ (an export with a stray ``notes.json``, for
    ``--exclude``), incident/ (admin changes beside events), and admin-api/ and wire/ (the
    same events as the Admin API exports them and as producers sent them)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(FIXTURES / "export", folder / "export")
    shutil.copytree(FIXTURES / "export", folder / "case")
    (folder / "case" / "notes.json").write_text('{"note": "called the on-call at 10:02"}\n')
    shutil.copytree(FIXTURES / "export" / "ocsf" / "audit", folder / "audit")
    shutil.copytree(FIXTURES / "export" / "ocsf" / "audit", folder / "audit-q4")
    shutil.copy(FIXTURES / "key.hex", folder / "key.hex")
    shutil.copytree(FIXTURES / "admin", folder / "admin")  # the admin chain's shapes
    shutil.copytree(FIXTURES / "incident", folder / "incident")  # both chains, one incident
    for name in ("admin-api", "wire"):
        shutil.copytree(FIXTURES / name, folder / name)
    return folder


def run_block(
    commands: list[Example], cwd: Path, env: dict[str, str], timeout: float = 60
) -> list[tuple[Example, subprocess.CompletedProcess[str]]]:
    """Run a block's commands in order in ``cwd`` through bash (pipes as printed);
    ``export NAME=VALUE`` lines carry on to the block's later commands."""
    env = dict(env)
    results = []
    for example in commands:
        text = example.runnable()
        words = shlex.split(text)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            continue
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        results.append((example, done))
    return results


def clean_env(bin_dir: Path) -> dict[str, str]:
    """The environment an example runs in: ``bin_dir`` first on PATH, none of the
    toolkit's own variables, no PYTHONPATH (the package comes from where it is installed)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARACAL_FORENSICS_", "AUDIT_HMAC_KEY")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "120"
    return env


def check_block(block: list[Example], cwd: Path, bin_dir: Path) -> None:
    """Run a block's examples; each must exit 0 and print something."""
    runnable = [example for example in block if not example.skipped]
    if not runnable:
        pytest.skip("; ".join(f"line {e.line}: {e.skipped}" for e in block))
    for example, done in run_block(runnable, cwd, clean_env(bin_dir)):
        where = f"README.md line {example.line}: `{example.text}`"
        assert done.returncode == 0, f"{where} exited {done.returncode}: {done.stderr.strip()}"
        assert done.stdout.strip(), f"{where} printed nothing: {done.stderr.strip()}"
