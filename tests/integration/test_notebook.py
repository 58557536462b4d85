"""notebooks/investigation.ipynb runs top to bottom without an error, from two folders.

The kernel is this interpreter (the venv's), declared in a private kernel spec found
through $JUPYTER_PATH, so neither a user's own "python3" kernel nor an installed
kernel spec is needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support.paths import FIXTURE_EXPORT, ROOT
from support.s3server import S3Server

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = ROOT / "notebooks" / "investigation.ipynb"
KERNEL = "caracal-forensics-test"


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "caracal-forensics tests",
                "language": "python",
            }
        )
    )
    return root


def run_notebook(cwd: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=300,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return notebook


@pytest.mark.parametrize("folder", [".", "notebooks"], ids=["repo-root", "notebook-folder"])
def test_notebook_runs(folder: str, kernel_path: Path, monkeypatch: pytest.MonkeyPatch,
                       s3: S3Server) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # the bucket cell reads the hourly files from the session's S3 server (moto, loopback)
    for name, value in s3.env().items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CARACAL_FORENSICS_NOTEBOOK_S3",
                       s3.upload(FIXTURE_EXPORT / "ocsf" / "audit", "notebook/audit"))
    notebook = run_notebook(ROOT / folder)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    text = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    # the charts were drawn inline as SVG, and the verdict printed
    assert "image/svg+xml" in text
    assert "status: intact" in text
    assert "bucket status: intact" in text and "missing_hour s3://" in text


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), "clear the notebook's outputs before committing"
            assert cell.get("execution_count") is None


def test_write_lines_prints_into_the_cell(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``snap.write_lines()`` to stdout in a notebook: the lines are the cell's output.
    Jupyter's stdout has the descriptor of the server's terminal behind it (fileno), where
    the fast path of a text file wrote them: the cell showed nothing. (ipykernel does not
    capture descriptors under pytest, PYTEST_CURRENT_TEST set: this kernel runs without
    it, as a user's does.)"""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["env", "-u", "PYTEST_CURRENT_TEST", sys.executable, "-m",
                 "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "caracal-forensics tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import caracal_forensics as cf\n"
        f"snap = cf.open({str(FIXTURE_EXPORT / 'db.csv')!r})\n"
        "matched = snap.write_lines(limit=3)\n"
        "matched += snap.write_lines(limit=2, query='{d: decision}')\n"
        "print('matched', matched)")]
    nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=120).execute()
    text = "".join(output.get("text", "") for output in notebook.cells[0].outputs)
    lines = text.splitlines()
    assert lines[-1] == "matched 5" and len(lines) == 6
    assert all(line.startswith('{"id" : "ev-') for line in lines[:3])
    assert all(line.startswith('{"d": "') for line in lines[3:5])
