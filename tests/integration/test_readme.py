"""The README's examples run as printed, and the text a user gets stands alone.

Every ``caracal-forensics`` line of the README's code blocks runs, in README order, from
a folder outside the repository laid out as the examples assume (tests/support/readme.py),
and must exit 0 and print something; the Python API block runs too. An example that
cannot run here (``--follow``, a live database) is named in ``SKIPPED`` with the test
that covers it. tests/integration/test_installed_wheel.py runs the same examples with an installed
wheel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.readme import (
    README,
    ROOT,
    Example,
    check_block,
    clean_env,
    lay_out,
    python_examples,
    run_block,
    shell_examples,
)

import caracal_forensics as cf
from caracal_forensics.report_html import build_report

BIN = Path(sys.executable).parent
BLOCKS = shell_examples()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every block: a later example reads what an earlier one wrote."""
    return lay_out(tmp_path_factory.mktemp("readme") / "case")


def test_the_examples_are_found() -> None:
    texts = [example.text for block in BLOCKS for example in block]
    assert len(texts) >= 12
    assert any("--since" in text and "--until" in text for text in texts)
    assert any("| jq" in text for text in texts)
    assert python_examples(), "the Python API block"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line-{block[0].line}" for block in BLOCKS])
def test_readme_commands_run(block: list[Example], folder: Path) -> None:
    assert (BIN / "caracal-forensics").exists(), "run the tests with the venv's python"
    check_block(block, folder, BIN)


def test_the_time_window_example_holds_events(folder: Path) -> None:
    """--since 08:00Z --until 09:00+01:00 was the same instant: an empty window (15.10)."""
    (example,) = [e for block in BLOCKS for e in block if "--until" in e.text]
    (done,) = [done for _, done in run_block([example], folder, clean_env(BIN))]
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) >= 2


@pytest.mark.parametrize("block", python_examples(), ids=lambda e: f"line-{e.line}")
def test_readme_python_runs(block: Example, tmp_path: Path) -> None:
    folder = lay_out(tmp_path / "case")
    done = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=folder,
        env=clean_env(BIN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"README.md line {block.line}: {done.stderr[-2000:]}"


# --- shipped text stands alone -------------------------------------------------------------

#: Paths that exist only on the machines the toolkit was written on.
INTERNAL = re.compile(r"\.\./shared|/work/|shared/FORMAT|shared/vectors")
LINK = re.compile(r"\]\(([^)#\s]+)")


def test_readme_points_only_to_what_a_user_has() -> None:
    text = README.read_text(encoding="utf-8")
    assert not INTERNAL.findall(text)
    for target in LINK.findall(text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which is not shipped"
    assert "(docs/FORMAT.md)" in text
    # no notes about how the docs were written
    assert "was not available to us" not in text
    assert "seed guide" not in text.lower()


def test_format_doc_is_shipped_and_stands_alone() -> None:
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    assert not INTERNAL.findall(text)
    assert "## 5. What verification reports" in text
    for mention in re.findall(r"`((?:tests|fixtures|docs)/[^`]+)`", text):
        assert (ROOT / mention.rstrip("/")).exists(), mention


def test_report_footer_names_what_a_user_has() -> None:
    snap = cf.open(str(ROOT / "fixtures" / "export" / "db.csv"))
    _, html = build_report(snap)
    footer = html[html.index("<footer>") :]
    assert "docs/FORMAT.md" in footer
    assert "of the toolkit" not in footer
    assert not INTERNAL.findall(footer)
