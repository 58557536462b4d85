"""``--anchor`` takes zone heads however they were kept (issue 15.4): a verification
report, a snapshot's manifest.json (or its directory), a minimal ``{"zones": ...}``
object, JSON lines from ``sql --json``, a CSV of zone_id,last_seq. Each catches a
cut-off tail; what holds no heads is one error line saying what an anchor must hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import cli
from support.paths import FIXTURE_EXPORT as EXPORT
from support.paths import FIXTURE_KEY_FILE as KEY_FILE

import caracal_forensics as cf
from caracal_forensics.chain.anchor import load_anchor
from caracal_forensics.chain.files import verify_files
from caracal_forensics.errors import InputError

DUMP = EXPORT / "db.csv"
KEY = KEY_FILE.read_text(encoding="ascii").strip()
ZONE = "zone-alpha"


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each zone's head in the fixtures' table dump: last_seq and its content hash."""
    report = verify_files([str(DUMP)], key=KEY).report
    return {z.zone_id: {"last_seq": z.last_seq, "last_content_sha256": z.last_content_sha256}
            for z in report.zones}


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dump without zone-alpha's last event: a cut-off tail no export shows."""
    rows = DUMP.read_text("utf-8").split("\n")
    last = max(i for i, row in enumerate(rows) if f",{ZONE}," in row)
    path = tmp_path_factory.mktemp("cut") / "db.csv"
    path.write_text("\n".join(rows[:last] + rows[last + 1:]), "utf-8")
    return path


def write_forms(folder: Path, heads: dict[str, dict]) -> dict[str, Path]:
    """The same heads kept in every form an anchor may take."""
    folder.mkdir(exist_ok=True)
    forms: dict[str, Path] = {}
    report = folder / "report.json"
    verify_files([str(DUMP)], key=KEY).report.write(report)
    forms["report"] = report
    snapshot = folder / "snapshot"
    cf.open(str(DUMP)).ingest(str(snapshot))
    forms["manifest"] = snapshot / "manifest.json"
    forms["snapshot directory"] = snapshot
    forms["minimal"] = folder / "minimal.json"
    forms["minimal"].write_text(json.dumps({"zones": heads}), "utf-8")
    forms["seq only"] = folder / "seq-only.json"
    forms["seq only"].write_text(
        json.dumps({"zones": {z: {"last_seq": h["last_seq"]} for z, h in heads.items()}}),
        "utf-8")
    forms["list"] = folder / "list.json"
    forms["list"].write_text(json.dumps([{"zone_id": z, **h} for z, h in heads.items()]),
                             "utf-8")
    forms["csv"] = folder / "heads.csv"
    forms["csv"].write_text("zone_id,max(chain_seq)\n" + "".join(
        f"{z},{h['last_seq']}\n" for z, h in heads.items()), "utf-8")
    return forms


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory, heads: dict[str, dict]) -> dict[str, Path]:
    return write_forms(tmp_path_factory.mktemp("forms"), heads)


FORMS = ["report", "manifest", "snapshot directory", "minimal", "seq only", "list", "csv"]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_anchors_a_run(
    capsys: pytest.CaptureFixture[str], forms: dict[str, Path], cut: Path, form: str
) -> None:
    anchor = str(forms[form])
    code, out, err = cli(capsys, "verify", "-s", str(DUMP), "--key-file", str(KEY_FILE),
                         "--anchor", anchor)
    assert code == 0 and out.startswith("INTACT"), err
    code, out, _ = cli(capsys, "verify", "-s", str(cut), "--key-file", str(KEY_FILE),
                       "--anchor", anchor)
    assert code == 1 and "FAIL truncated" in out and ZONE in out
    assert verify_files([str(cut)], key=KEY, anchor=anchor).report.findings_of("truncated")


def test_sql_json_lines_are_an_anchor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cut: Path
) -> None:
    code, out, _ = cli(capsys, "sql", "SELECT zone_id, max(chain_seq), "
                       "arg_max(content_sha256, chain_seq) AS content_sha256 FROM events "
                       "GROUP BY zone_id", "-s", str(DUMP), "--json")
    assert code == 0
    anchor = tmp_path / "heads.jsonl"
    anchor.write_text(out, "utf-8")
    assert verify_files([str(DUMP)], key=KEY, anchor=str(anchor)).report.status == "intact"
    report = verify_files([str(cut)], key=KEY, anchor=str(anchor)).report
    assert report.status == "tampered" and report.findings_of("truncated")
    assert "zone head(s) from" in report.checks["anchor"]


def test_a_different_head_hash_is_an_anchor_mismatch(
    tmp_path: Path, heads: dict[str, dict]
) -> None:
    changed = {z: dict(h) for z, h in heads.items()}
    changed[ZONE]["last_content_sha256"] = "ab" * 32
    anchor = tmp_path / "heads.json"
    anchor.write_text(json.dumps({"zones": changed}), "utf-8")
    report = verify_files([str(DUMP)], key=KEY, anchor=str(anchor)).report
    assert [f.zone_id for f in report.findings_of("anchor_mismatch")] == [ZONE]


def test_a_head_without_a_hash_says_so(forms: dict[str, Path]) -> None:
    report = verify_files([str(DUMP)], key=KEY, anchor=str(forms["csv"])).report
    assert report.status == "intact"
    assert "seq only for 3 zone(s)" in report.checks["anchor"]
    manifest = load_anchor(forms["manifest"])
    assert "snapshot manifest" in manifest.anchor_origin  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "no zone heads found"),
        ('{"status": "intact", "events_checked": 3}', "no zone heads found"),
        ('{"zones": {}}', "no zone heads found"),
        ('{"zones": {"z": {"last_content_sha256": "' + "a" * 64 + '"}}}', "no last_seq"),
        ('{"zones": {"z": {"last_seq": "12"}}}', "last_seq must be a whole number"),
        ('{"zones": {"z": {"last_seq": 12, "last_content_sha256": "xyz"}}}',
         "64 lowercase hex digits"),
        ('{"zones": {"z": "12"}}', "neither a head object nor a last_seq"),
        ('[{"last_seq": 3}]', "no zone_id"),
        ("zone,seq\nz,1\n", "no zone_id and last_seq columns"),
        ("zone_id,last_seq\nz,twelve\n", "line 2: last_seq 'twelve' is not a whole number"),
        # a digit to str.isdigit, not to int(): was "unexpected ValueError"
        ("zone_id,last_seq\nz,\u00b2\n", "line 2: last_seq '\u00b2' is not a whole number"),
        # past a bigint: was "unexpected TypeError" where Arrow compared it with chain_seq
        ('{"zones": {"z": {"last_seq": 123456789012345678901234567890}}}',
         "last_seq must be a whole number up to 9223372036854775807"),
        ("zone_id,last_seq\nz,1\nz,2\n", "second head"),
        ("", "empty"),
        ('{"zones": ', "malformed JSON"),
    ],
)
def test_what_holds_no_heads_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, problem: str
) -> None:
    anchor = tmp_path / "anchor.json"
    anchor.write_text(text, "utf-8")
    with pytest.raises(InputError, match="anchor.json") as error:
        load_anchor(anchor)
    assert problem in str(error.value)
    code, out, err = cli(capsys, "verify", "-s", str(DUMP), "--anchor", str(anchor))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert problem in err and "Traceback" not in err


def test_the_refusal_says_what_an_anchor_holds(tmp_path: Path) -> None:
    anchor = tmp_path / "notes.json"
    anchor.write_text('{"note": "heads were fine"}', "utf-8")
    with pytest.raises(InputError) as error:
        load_anchor(anchor)
    message = str(error.value)
    assert "an anchor holds zone heads" in message and "manifest.json" in message
    assert "last_seq" in message and "\n" not in message
    with pytest.raises(InputError, match="no such file"):
        load_anchor(tmp_path / "absent.json")
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError, match="manifest.json: no such file"):
        load_anchor(tmp_path / "dir")


def test_the_evidence_report_takes_any_anchor(
    capsys: pytest.CaptureFixture[str], forms: dict[str, Path], cut: Path, tmp_path: Path
) -> None:
    page = tmp_path / "evidence.html"
    code, out, err = cli(capsys, "report", "-s", str(cut), "--key-file", str(KEY_FILE),
                         "--anchor", str(forms["csv"]), "--out", str(page))
    assert code == 1, err
    assert "truncated" in page.read_text("utf-8")


def test_snap_verify_takes_an_anchor_path(forms: dict[str, Path], cut: Path) -> None:
    report = cf.open(str(cut)).verify(key=KEY, anchor=str(forms["manifest"]))
    assert report.status == "tampered" and report.findings_of("truncated")
