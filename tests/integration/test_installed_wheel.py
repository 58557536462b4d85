"""The toolkit as users install it: an sdist of the checkout, a wheel built from that
sdist, installed into a fresh virtualenv outside the checkout, then every command once,
every named query, the README's examples, the evidence report and the notebook, all run
from a folder outside the repository.

The editable install the other tests use hid a wheel without its named queries (issue
15.1): here nothing of the checkout is importable. Built once per session (about a
minute: the C kernels compile, the dependencies install from the package index or pip's
cache); the wheel is built without build isolation, with the setuptools of the running
environment (the dev extra requires one that reads an SPDX ``license``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.readme import ROOT, check_block, clean_env, lay_out, python_examples, shell_examples

from caracal_forensics import queries
from caracal_forensics.errors import InputError

BUNDLED = sorted(p.stem for p in (ROOT / "queries").glob("*.sql"))
#: Left out of the copy the sdist is built from: what a fresh clone does not have.
UNTRACKED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "demo-out", "*.so",
)  # fmt: skip


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv holding the wheel, and a folder laid out for the examples."""

    venv: Path
    sdist: Path
    wheel: Path
    build_log: str
    case: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120):
        """The installed console script, from the laid-out folder."""
        return subprocess.run(
            [str(self.bin / "caracal-forensics"), *args],
            cwd=cwd or self.case,
            env=clean_env(self.bin),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def python(self, code: str, cwd: Path | None = None):
        return subprocess.run(
            [str(self.bin / "python"), "-c", code],
            cwd=cwd or self.case,
            env=clean_env(self.bin),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _step(args: list[str], cwd: Path, what: str, timeout: float = 600) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{output[-4000:]}")
    return output


def _copy_checkout(dest: Path) -> None:
    """The files a fresh clone has (tracked, or new and not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout: copy, leaving out what is built
        shutil.copytree(ROOT, dest, ignore=UNTRACKED)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(f"setuptools {setuptools.__version__} cannot build this: run `make setup`")
    base = tmp_path_factory.mktemp("installed")
    source, dist, wheels, venv = base / "source", base / "dist", base / "wheels", base / "venv"
    source.mkdir()
    _copy_checkout(source)
    log = _step(
        [sys.executable, "-c",
         f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
        source, "building the sdist",
    )  # fmt: skip
    (sdist,) = dist.glob("*.tar.gz")
    log += _step(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(sdist)],
        base, "building the wheel from the sdist",
    )  # fmt: skip
    (wheel,) = wheels.glob("*.whl")
    _step([sys.executable, "-m", "venv", str(venv)], base, "creating a virtualenv")
    _step(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), "ipykernel"],
        base, "installing the wheel",
    )  # fmt: skip
    case = lay_out(base / "case")
    return Installed(venv, sdist, wheel, log, case)


def test_nothing_of_the_checkout_is_used(installed: Installed) -> None:
    done = installed.python(
        "import caracal_forensics as cf, caracal_forensics.queries as q; "
        "print(cf.__file__); print(q.BUILTIN_DIR)"
    )
    assert done.returncode == 0, done.stderr
    package, builtin = done.stdout.split()
    assert Path(package).is_relative_to(installed.venv)
    assert Path(builtin).is_relative_to(installed.venv)
    assert not Path(builtin).is_relative_to(ROOT)


def test_the_build_is_clean(installed: Installed) -> None:
    """No setuptools deprecation (15.19: `project.license` as a table), SPDX metadata."""
    warned = [
        line for line in installed.build_log.lower().splitlines()
        if "license" in line and ("deprecat" in line or "warn" in line)
    ]  # fmt: skip
    assert not warned
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: Apache-2.0" in wheel.read(metadata).decode()
    shipped = {Path(n).stem for n in names if n.startswith("caracal_forensics/queries_sql/")}
    assert set(BUNDLED) <= shipped
    assert "caracal_forensics/queries_sql/README.md" in names
    assert not [n for n in names if n.endswith(".c")]
    with tarfile.open(installed.sdist) as sdist:
        inside = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"docs/FORMAT.md", "queries/README.md", "setup.py", "MANIFEST.in"} <= inside
    assert {f"queries/{name}.sql" for name in BUNDLED} <= inside


def test_query_list_shows_the_bundled_queries(installed: Installed) -> None:
    done = installed.run("query", "--list", "--json")
    assert done.returncode == 0, done.stderr
    assert [q["name"] for q in json.loads(done.stdout)] == BUNDLED
    table = installed.run("query", "--list")
    assert table.returncode == 0, table.stderr
    assert "top_denied_principals" in table.stdout


@pytest.fixture(scope="session")
def listed(installed: Installed) -> list[dict]:
    return json.loads(installed.run("query", "--list", "--json").stdout)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_named_query_runs(installed: Installed, listed: list[dict], name: str) -> None:
    (query,) = [q for q in listed if q["name"] == name]
    params = [f"--param={p['name']}={p['example']}" for p in query["params"]]
    done = installed.run("query", name, *params, "--json", "-s", "export/")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def snapshot_dir(installed: Installed) -> Path:
    out = installed.case.parent / "snap"
    done = installed.run("ingest", "-s", "export/", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


SMOKE = {
    "help": ["--help"],
    "version": ["--version"],
    "stats": ["stats", "-s", "export/"],
    "audit-tail": ["audit", "tail", "-s", "export/", "--limit", "5"],
    "explain": ["explain", "req-000027", "-s", "export/", "--key-file", "key.hex"],
    "verify": ["verify", "-s", "export/db.csv", "--key-file", "key.hex"],
    "alerts": ["alerts", "-s", "export/alerts.csv"],
    "sql": ["sql", "SELECT count(*) AS n FROM unique_events", "-s", "export/db.csv"],
    "snapshot-help": ["snapshot", "--help"],
    "query-on-snapshot": ["query", "jti_collisions", "-s", "{snap}"],
    "stats-on-snapshot": ["stats", "-s", "{snap}", "--json"],
    "verify-snapshot": ["verify", "-s", "{snap}", "--key-file", "key.hex"],
}


@pytest.mark.parametrize("args", SMOKE.values(), ids=SMOKE.keys())
def test_every_command_runs(installed: Installed, snapshot_dir: Path, args: list[str]) -> None:
    done = installed.run(*(a.replace("{snap}", str(snapshot_dir)) for a in args))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_the_report(installed: Installed, tmp_path: Path) -> None:
    out = tmp_path / "evidence.html"
    done = installed.run(
        "report", "--out", str(out), "-s", "export/", "--key-file", "key.hex"
    )
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "Top denied principals" in html and "<svg" in html
    assert "docs/FORMAT.md" in html


def test_the_python_api(installed: Installed) -> None:
    done = installed.python(
        "import caracal_forensics as cf\n"
        "snap = cf.open('export/')\n"
        "print(snap.query('top_denied_principals', limit=3).height)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]


@pytest.fixture(scope="session")
def readme_folder(installed: Installed) -> Path:
    return lay_out(installed.case.parent / "readme")


@pytest.mark.parametrize(
    "block", shell_examples(), ids=[f"line-{block[0].line}" for block in shell_examples()]
)
def test_readme_commands_run_installed(installed: Installed, readme_folder: Path, block) -> None:
    check_block(block, readme_folder, installed.bin)


def test_readme_python_runs_installed(installed: Installed, tmp_path: Path) -> None:
    for block in python_examples():
        done = installed.python(block.text, cwd=lay_out(tmp_path / f"line-{block.line}"))
        assert done.returncode == 0, f"README.md line {block.line}: {done.stderr[-2000:]}"


def test_the_notebook_runs_installed(
    installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook, copied beside the fixtures (it reads them), on the venv's kernel."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    folder = tmp_path / "walkthrough"
    shutil.copytree(ROOT / "fixtures", folder / "fixtures")
    (folder / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "investigation.ipynb", folder / "notebooks")
    spec = tmp_path / "jupyter" / "kernels" / "installed"
    spec.mkdir(parents=True)
    argv = [str(installed.bin / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    notebook = nbformat.read(folder / "notebooks" / "investigation.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="installed",
        timeout=300,
        resources={"metadata": {"path": str(folder / "notebooks")}},
    )
    client.execute()
    text = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert "status: intact" in text
    assert str(ROOT) not in text  # the checkout was never imported


# --- the bundled queries are found, or their absence is an error -----------------------------


def test_missing_bundled_queries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install without them said nothing: `query --list` printed an empty table."""
    monkeypatch.delenv(queries.QUERIES_ENV, raising=False)
    monkeypatch.setattr(queries, "BUILTIN_DIR", tmp_path / "missing")
    with pytest.raises(InputError, match="bundled named queries are missing"):
        queries.load_queries()
    (tmp_path / "missing").mkdir()
    with pytest.raises(InputError, match="no \\*.sql file"):
        queries.load_queries()


def test_cli_without_bundled_queries_fails_with_one_line(installed: Installed) -> None:
    """Exit 2 and one line, never an empty list with exit 0."""
    builtin = Path(installed.python(
        "import caracal_forensics.queries as q; print(q.BUILTIN_DIR)"
    ).stdout.strip())  # fmt: skip
    hidden = builtin.with_name("queries_sql.hidden")
    builtin.rename(hidden)
    try:
        done = installed.run("query", "--list")
    finally:
        hidden.rename(builtin)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bundled named queries are missing" in lines[0], done.stderr
    assert not done.stdout.strip()


def test_checkout_queries_are_the_bundled_ones_here() -> None:
    """In the checkout (editable install or none) the top-level queries/ is read."""
    assert queries.BUILTIN_DIR == ROOT / "queries"
    assert os.path.isdir(queries.BUILTIN_DIR)
