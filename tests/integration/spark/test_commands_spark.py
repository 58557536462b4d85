"""``--engine spark`` on the command line: verify, audit tail, stats and a named query
print what the local engine prints, with the same exit code; without pyspark the flag
is one line and exit 2."""

from __future__ import annotations

import os
import sys

import pytest
from support.cli import cli, one_error_line
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE

OCSF = FIXTURE_EXPORT / "ocsf"

COMMANDS = {
    "verify": ["verify", "--source", OCSF, "--key-file", FIXTURE_KEY_FILE, "--json"],
    "tail": ["audit", "tail", "--source", OCSF, "--limit", "7"],
    "tail json": ["audit", "tail", "--source", OCSF, "--decision", "deny", "--limit", "0",
                  "--json"],
    "stats": ["stats", "--source", OCSF, "--json"],
    "query": ["query", "deny_policies", "--source", OCSF, "--json"],
}


def _without_time(text: str) -> str:
    """A verify report without the moment it was made."""
    return "\n".join(line for line in text.splitlines() if '"generated_at"' not in line)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_spark_prints_what_local_prints(spark, capsys, name):
    argv = COMMANDS[name]
    local = cli(capsys, *argv)
    remote = cli(capsys, *argv, "--engine", "spark")
    assert remote[0] == local[0] == 0, remote[2]
    assert _without_time(remote[1]) == _without_time(local[1])
    assert local[1].strip()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """The whole fixture export (every shape, alerts too) ingested as a snapshot."""
    from caracal_forensics.snapshot import open_sources

    out = tmp_path_factory.mktemp("snap") / "case"
    open_sources([str(FIXTURE_EXPORT)], by_zone=True).ingest(str(out))
    return out


@pytest.mark.parametrize("argv", [["stats", "--json"], ["audit", "tail", "-n", "5", "--json"],
                                  ["query", "ingest_alerts", "--json"]])
def test_spark_over_a_snapshot(spark, capsys, snapshot, argv):
    local = cli(capsys, *argv, "--source", snapshot)
    remote = cli(capsys, *argv, "--source", snapshot, "--engine", "spark")
    assert remote[:2] == local[:2] and local[0] == 0 and local[1].strip(), remote[2]


def test_spark_tampered_exit_code(spark, capsys, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "ocsf"
    shutil.copytree(OCSF, root)
    path = next(root.rglob("*T09.parquet"))
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table.slice(0, 40), table.slice(41)]), path)
    code, out, err = cli(capsys, "verify", "--source", root, "--key-file", FIXTURE_KEY_FILE,
                         "--engine", "spark")
    assert code == 1 and "sequence_gap" in out


def test_unknown_engine_is_a_usage_error(capsys):
    code, _, err = cli(capsys, "stats", "--source", OCSF, "--engine", "flink")
    assert code == 2 and "--engine" in one_error_line(err)


def test_without_pyspark_one_line(capsys, monkeypatch):
    """pyspark not importable (a None in sys.modules makes ``import pyspark`` fail)."""
    monkeypatch.setitem(sys.modules, "pyspark", None)
    for argv in (COMMANDS["verify"], COMMANDS["stats"], COMMANDS["tail"]):
        code, out, err = cli(capsys, *argv, "--engine", "spark")
        assert code == 2 and not out
        assert "install caracal-forensics[spark]" in one_error_line(err)


def test_a_local_session_says_nothing_of_itself_on_stderr():
    """A fresh process: Spark's default logging printed 7 lines about itself (its log4j
    profile, the level, this machine's hostname and Hadoop libraries) before the answer.
    What remains is the JVM's one line about the vector module Spark's launcher adds."""
    import subprocess

    pytest.importorskip("pyspark")
    proc = subprocess.run([sys.executable, "-m", "caracal_forensics", *COMMANDS["stats"],
                           "--engine", "spark"], capture_output=True, text=True,
                          env={**os.environ, "CARACAL_FORENSICS_SPARK_MASTER": "local[2]"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    noise = [line for line in proc.stderr.splitlines()
             if line != "WARNING: Using incubator modules: jdk.incubator.vector"]
    assert noise == []
