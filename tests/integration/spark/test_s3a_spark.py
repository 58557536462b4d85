"""``s3a://`` sources on Spark: the hourly tree read from a real S3-compatible server
(moto's server mode on the loopback address), verified to the report of the same files
on disk; inputs carry the object URLs, sizes and SHA-256."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE

import caracal_forensics as cf

OCSF = FIXTURE_EXPORT / "ocsf"
KEY = FIXTURE_KEY_FILE.read_text().strip()


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("moto")
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto's server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """The fixture's hourly files uploaded under s3a://audit-exports/audit/..."""
    from pyarrow import fs

    for name, value in (("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", "test"),
                        ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    s3 = fs.S3FileSystem(endpoint_override=s3_endpoint.removeprefix("http://"), scheme="http",
                         region="us-east-1", access_key="test", secret_key="test",
                         allow_bucket_creation=True)
    s3.create_dir("audit-exports")
    for path in sorted(OCSF.rglob("*.parquet")):
        with s3.open_output_stream(f"audit-exports/{path.relative_to(OCSF)}") as out:
            out.write(path.read_bytes())
    return "s3a://audit-exports/audit/2026/05/"


def test_verify_s3a_tree_on_spark(spark, bucket):
    remote = cf.Verifier(key=KEY, engine="spark").verify_paths([bucket])
    local = cf.Verifier(key=KEY).verify_paths([OCSF])
    assert remote.status == local.status == "intact"
    assert [z.to_dict() for z in remote.zones] == [z.to_dict() for z in local.zones]
    assert remote.checks == local.checks
    assert [(i.path.split("/audit/")[1], i.bytes, i.sha256, i.rows) for i in remote.inputs] == \
        [(i.path.split("/audit/")[1], i.bytes, i.sha256, i.rows) for i in local.inputs]
    assert all(i.path.startswith("s3a://audit-exports/audit/") for i in remote.inputs)


def test_stats_s3a_tree_on_spark(spark, bucket):
    from caracal_forensics.spark.sources import SparkSources

    assert SparkSources([bucket]).stats() == cf.open(str(OCSF)).stats()
