"""``--source s3://bucket/prefix/``: every command reads a bucket as it reads the same
files on disk, against a real S3-compatible server on 127.0.0.1 (moto, with request
authentication on; ``support/s3server.py``)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from support.cli import one_error_line, run_cli
from support.paths import FIXTURE_EXPORT, FIXTURE_KEY_FILE
from support.s3server import BUCKET, S3Server

LOCAL = FIXTURE_EXPORT / "ocsf"
HOURS = sorted(LOCAL.rglob("*.parquet"))
KEY = str(FIXTURE_KEY_FILE)

pytestmark = pytest.mark.usefixtures("s3_env")


def _same(text: str, url: str) -> str:
    """Output over the bucket with its URL where the local root was."""
    return text.replace(url, f"{LOCAL}/")


COMMANDS = [
    ["stats"],
    ["stats", "--json"],
    ["audit", "tail", "--limit", "0", "--json"],
    ["audit", "tail", "--limit", "5"],
    ["explain", "req-000157", "--json"],
    ["verify", "--key-file", KEY],
    ["verify", "--key-file", KEY, "--json"],
    ["query", "deciding_policy_version"],
    ["sql", "SELECT zone_id, count(*) FROM events GROUP BY 1 ORDER BY 1"],
    ["alerts"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a[:2]) for a in COMMANDS])
def test_every_command_reads_the_bucket_as_the_local_copy(argv, ocsf_url):
    local = run_cli(*argv, "--source", LOCAL)
    remote = run_cli(*argv, "--source", ocsf_url)
    assert remote.err == local.err and remote.code == local.code == 0, remote.err
    if "--json" in argv and argv[0] == "verify":
        mine, theirs = json.loads(remote.out), json.loads(local.out)
        for item in mine["inputs"]:
            assert item.pop("etag")
        for report in (mine, theirs):
            report.pop("generated_at", None)
        assert json.loads(_same(json.dumps(mine), ocsf_url)) == theirs
    else:
        assert _same(remote.out, ocsf_url) == local.out
    assert remote.out


def test_the_source_environment_variable_takes_a_url(ocsf_url):
    local = run_cli("stats", "--json", env={"CARACAL_FORENSICS_SOURCE": str(LOCAL)})
    remote = run_cli("stats", "--json", env={"CARACAL_FORENSICS_SOURCE": ocsf_url})
    assert remote.code == 0, remote.err
    assert remote.out == local.out


def test_the_report_inputs_carry_url_size_sha256_and_etag(ocsf_url, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli("verify", "--key-file", KEY, "--source", ocsf_url, "--report", out)
    assert result.code == 0, result.err
    inputs = json.loads(out.read_text())["inputs"]
    assert [i["path"] for i in inputs] == [
        f"{ocsf_url}{p.relative_to(LOCAL).as_posix()}" for p in HOURS]
    for item, path in zip(inputs, HOURS, strict=True):
        data = path.read_bytes()
        assert item["bytes"] == len(data)
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["etag"] == hashlib.md5(data).hexdigest()  # a single-part upload's ETag


def test_html_report_lists_the_objects_with_their_etags(ocsf_url, tmp_path):
    local = run_cli("report", "--key-file", KEY, "--source", LOCAL, "--out",
                    tmp_path / "local.html")
    remote = run_cli("report", "--key-file", KEY, "--source", ocsf_url, "--out",
                     tmp_path / "remote.html")
    assert remote.code == local.code == 0, remote.err
    html = (tmp_path / "remote.html").read_text()
    assert f"{ocsf_url}audit/2026/05/11/2026-05-11T08.parquet" in html
    assert "<th>ETag</th>" in html and hashlib.md5(HOURS[0].read_bytes()).hexdigest() in html
    assert "<th>ETag" not in (tmp_path / "local.html").read_text()


def test_ingest_from_the_bucket_makes_the_same_snapshot(ocsf_url, tmp_path):
    for name, source in (("local", LOCAL), ("remote", ocsf_url)):
        result = run_cli("ingest", "--source", source, "--out", tmp_path / name)
        assert result.code == 0, result.err
    local = run_cli("audit", "tail", "--limit", "0", "--json", "--source", tmp_path / "local")
    remote = run_cli("audit", "tail", "--limit", "0", "--json", "--source",
                     tmp_path / "remote")
    assert remote.out == local.out and local.out.count("\n") == 300
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert ocsf_url in json.dumps(manifest)


def test_the_python_api_opens_a_url(ocsf_url):
    import caracal_forensics

    remote = caracal_forensics.open(ocsf_url)
    local = caracal_forensics.open(str(LOCAL))
    assert remote.duckdb.execute("SELECT count(*) FROM events").fetchone() == (300,)
    assert remote.verify(KEY_TEXT()).to_dict()["zones"] == local.verify(KEY_TEXT()).to_dict()[
        "zones"]


def KEY_TEXT() -> str:  # noqa: N802 - reads like the constant it stands for
    return FIXTURE_KEY_FILE.read_text().strip()


def test_other_shapes_in_a_bucket_read_as_on_disk(s3: S3Server):
    """Table dumps (CSV, gzip JSON lines), CLI JSON lines (zstd), search pages, alerts:
    streamed through the same readers."""
    names = ["db.csv", "db.jsonl.gz", "cli.jsonl.zst", "search", "alerts.csv"]
    s3.upload(FIXTURE_EXPORT / "search", "shapes/search")
    for name in names:
        path = FIXTURE_EXPORT / name
        if path.is_file():
            s3.put(f"shapes/{name}", path.read_bytes())
    url = f"s3://{BUCKET}/shapes/"
    for argv in (["stats", "--json"], ["alerts", "--json"]):
        local = run_cli(*argv, *sum((["--source", FIXTURE_EXPORT / n] for n in names), []))
        remote = run_cli(*argv, "--source", url)
        assert remote.code == local.code == 0, remote.err
        assert remote.out.replace(url, f"{FIXTURE_EXPORT}/") == local.out


# --- credentials ----------------------------------------------------------------------


def test_credentials_from_a_profile_file(s3: S3Server, ocsf_url, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[investigator]\naws_access_key_id = {s3.access_key}\n"
                           f"aws_secret_access_key = {s3.secret_key}\n")
    result = run_cli("stats", "--json", "--source", ocsf_url, env={
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "investigator"})
    assert result.code == 0, result.err
    assert json.loads(result.out)["events"] == 300


def test_the_endpoint_option_overrides_aws_endpoint_url(s3: S3Server, ocsf_url):
    result = run_cli("stats", "--json", "--source", ocsf_url, env={
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "CARACAL_FORENSICS_S3_ENDPOINT": s3.endpoint})
    assert result.code == 0, result.err


@pytest.mark.parametrize("env, url, said", [
    ({"AWS_SECRET_ACCESS_KEY": "wrong"}, None, "signature does not match"),
    ({"AWS_ACCESS_KEY_ID": "AKIANOTAUSER", "AWS_SECRET_ACCESS_KEY": "x"}, None,
     "invalid access key id"),
    ({}, f"s3://no-such-bucket-{BUCKET}/audit/", "no such bucket"),
    ({}, f"s3://{BUCKET}/no/such/prefix/", "no objects under this prefix"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, None, "is the endpoint right"),
], ids=["wrong-secret", "unknown-key", "absent-bucket", "empty-prefix", "no-server"])
def test_a_store_that_refuses_is_one_line_and_exit_2(env, url, said, ocsf_url):
    result = run_cli("verify", "--source", url or ocsf_url, env=env)
    line = one_error_line(result.err)
    assert result.code == 2
    assert said in line.lower() and (url or ocsf_url) in line, line


# --- an object that changes while it is read ------------------------------------------


def test_an_object_uploaded_again_while_read_is_refused(s3: S3Server):
    """A text export (streamed) and a Parquet file (read by row group), each replaced by
    another upload under its key after it was found: the ETag says so, and the read is
    refused, not half of one object and half of another."""
    from caracal_forensics.errors import InputError
    from caracal_forensics.sources import BadLines, read_events, scan

    for name, path in (("db.csv", FIXTURE_EXPORT / "db.csv"), ("hour.parquet", HOURS[0])):
        data = path.read_bytes()
        s3.put(f"changing/{name}", data)
        url = f"s3://{BUCKET}/changing/{name}"
        [found] = scan([url], fingerprint=False)
        batches = read_events(found, BadLines())
        next(batches)  # reading has begun
        s3.put(f"changing/{name}", data[: len(data) // 2] + data[len(data) // 2:].upper()
               if name.endswith(".csv") else HOURS[1].read_bytes())
        with pytest.raises(InputError, match="changed while it was read") as error:
            list(batches)
        assert error.value.path == url


def test_a_stream_that_meets_a_new_upload_is_refused(s3: S3Server):
    from caracal_forensics.errors import InputError
    from caracal_forensics.sources._io import open_binary

    s3.put("changing/stream.jsonl", b'{"a": 1}\n' * 1000)
    url = f"s3://{BUCKET}/changing/stream.jsonl"
    with open_binary(url) as stream:
        stream.read(5)
        s3.put("changing/stream.jsonl", b'{"a": 2}\n' * 1000)
        with pytest.raises(InputError, match=r"ETag is \w+ now"):
            stream.read()


# --- hours --------------------------------------------------------------------------


def test_a_missing_hour_inside_through_is_named(s3: S3Server, tmp_path):
    """The tree without its 09:00 file: through 11:00 names 09 and 11, not 12 on; the
    same over the local copy of that tree."""
    for path in HOURS:
        if "T09" not in path.name:
            s3.put(f"gappy/{path.relative_to(LOCAL).as_posix()}", path.read_bytes())
    local = tmp_path / "gappy"
    shutil.copytree(LOCAL, local)
    (local / "audit/2026/05/11/2026-05-11T09.parquet").unlink()
    for source in (f"s3://{BUCKET}/gappy/", str(local)):
        root = source.rstrip("/") + "/audit/2026/05/11/"
        result = run_cli("verify", "--key-file", KEY, "--json", "--through", "2026-05-11T11",
                         "--source", source)
        report = json.loads(result.out)
        missing = [f for f in report["findings"] if f["kind"] == "missing_hour"]
        assert [(f["source"], f["severity"]) for f in missing] == [
            (f"{root}2026-05-11T09.parquet", "warning"),
            (f"{root}2026-05-11T11.parquet", "warning")], result.err
        assert "hour 2026-05-11T09" in missing[0]["detail"]
        assert "1 hour(s)" not in report["checks"]["hours"]
        assert "2 hour(s) without a file" in report["checks"]["hours"]
        # the same events lost make the chain fail: the hour is why
        assert report["status"] == "tampered"
        human = run_cli("verify", "--key-file", KEY, "--through", "2026-05-11T11",
                        "--source", source).out
        assert f"WARN missing_hour  at {root}2026-05-11T09.parquet" in human
        without = json.loads(run_cli("verify", "--key-file", KEY, "--json",
                                     "--source", source).out)
        assert not [f for f in without["findings"] if f["kind"] == "missing_hour"]
        assert "hours" not in without["checks"]


def test_no_hour_is_missing_through_the_last_file(ocsf_url):
    result = run_cli("verify", "--key-file", KEY, "--json", "--through", "2026-05-11T10",
                     "--source", ocsf_url)
    report = json.loads(result.out)
    assert result.code == 0 and report["status"] == "intact"
    assert report["checks"]["hours"].endswith("none missing")


def test_following_a_bucket_is_a_usage_error(ocsf_url):
    result = run_cli("audit", "tail", "--follow", "--follow-max-seconds", "0",
                     "--source", ocsf_url)
    assert result.code == 2
    assert "--source in object storage (s3://) cannot be followed" in one_error_line(
        result.err)


@pytest.mark.parametrize("argv", [
    ["ingest", "--out", f"s3://{BUCKET}/snapshot/"],
    ["verify", "--report", f"s3://{BUCKET}/report.json"],
    ["report", "--out", f"s3://{BUCKET}/evidence.html"],
], ids=["ingest", "verify", "report"])
def test_outputs_are_not_written_to_a_bucket(argv, ocsf_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*argv, "--source", ocsf_url)
    assert result.code == 2
    assert "not to object storage" in one_error_line(result.err)
    assert list(tmp_path.iterdir()) == []  # no local "s3:" directory either


def test_an_object_uploaded_again_after_it_was_found_is_refused(s3: S3Server):
    """Found (its shape detected from the first upload's footer), then replaced before
    its reading began: the new upload is read whole, and still refused at the end."""
    from caracal_forensics.errors import InputError
    from caracal_forensics.sources import BadLines, read_events, scan

    s3.put("found/hour.parquet", HOURS[0].read_bytes())
    url = f"s3://{BUCKET}/found/hour.parquet"
    [found] = scan([url], fingerprint=False)
    s3.put("found/hour.parquet", HOURS[2].read_bytes())
    now = f"{HOURS[2].stat().st_size:,}"
    with pytest.raises(InputError, match=f"changed while it was read: .* it has {now} now"):
        list(read_events(found, BadLines()))


@pytest.mark.parametrize("pattern", ["2026-05-11T09.parquet", "11/*T1?.parquet", "05"])
def test_exclude_leaves_out_objects_as_files(pattern, ocsf_url):
    local = run_cli("stats", "--json", "--source", LOCAL, "--exclude", pattern)
    remote = run_cli("stats", "--json", "--source", ocsf_url, "--exclude", pattern)
    assert (remote.code, remote.out) == (local.code, local.out)
    assert remote.err.replace(ocsf_url, str(LOCAL)) == local.err
