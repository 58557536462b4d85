"""The library's environment variables are read in one place, ``settings.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support.paths import PACKAGE as ROOT

from caracal_forensics import engine
from caracal_forensics.errors import UsageError
from caracal_forensics.settings import (
    MEMORY_LIMIT_ENV,
    NATIVE_ENV,
    QUERIES_ENV,
    WORKERS_ENV,
    Settings,
    settings,
)

#: Modules that may touch ``os.environ``, and why.
ALLOWED = {
    "settings.py": "the library's settings",
    "keys.py": "the HMAC key's variables (environment-injectable, never echoed)",
    "outputs.py": "$AUDIT_HMAC_KEY_FILE: the key file no output may overwrite (keys.py's)",
    "sources/_parallel.py": "takes the key's variables out while a worker starts",
    "cli/options.py": "$CARACAL_FORENSICS_SOURCE, the CLI's own",
    "cli/app.py": "$CARACAL_FORENSICS_DEBUG, the CLI's own",
    "cli/ingest.py": "sets Arrow's allocator before pyarrow loads",
    "spark/__init__.py": "pyspark's launcher reads JAVA_HOME, PYSPARK_PYTHON, SPARK_REMOTE "
                         "and the master from the process environment",
}


def test_defaults_and_an_environment_of_ones_own() -> None:
    assert settings({}) == Settings()
    given = settings({MEMORY_LIMIT_ENV: " 512MB ", WORKERS_ENV: "3", NATIVE_ENV: "0",
                      QUERIES_ENV: "/a" + ":" + "/b"})
    assert given == Settings(memory_limit="512MB", workers=3, native=False,
                             queries_dirs=("/a", "/b"))
    assert settings({WORKERS_ENV: "0"}).workers is None  # not positive: one per core
    assert settings({WORKERS_ENV: "many"}).workers is None
    with pytest.raises(AttributeError):
        given.workers = 1  # type: ignore[misc]  # frozen


# "0" (no unit) and a size past int64 were DuckDB's parser errors, said as "reading the
# data failed ... (`verify` checks a snapshot's files)"
@pytest.mark.parametrize("value", ["lots", "0", "512", "99999999999999999999GB"])
def test_a_bad_memory_limit_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                               value: str) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, value)
    settings()  # reading never fails: only the connection that uses it does
    with pytest.raises(UsageError, match=f"^{MEMORY_LIMIT_ENV} must look like 1GB"):
        engine.connect()


def _reads_environment(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        elif isinstance(node, ast.alias) and node.name in ("environ", "getenv"):
            lines.append(node.lineno)
    return lines


def test_environment_is_read_in_one_place() -> None:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        lines = _reads_environment(path)
        if lines and name not in ALLOWED:
            found[name] = lines
    assert not found, f"os.environ read outside settings.py: {found}"
