"""``caracal-forensics verify``: flags, output, exit codes, and the key staying secret."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from support.paths import ROOT
from support.verify import EXPORT, KEY_HEX

from caracal_forensics.cli.app import run

KEY_FILE = str(EXPORT / "key.hex")
CSV = str(EXPORT / "db.csv")


def cli(argv: list[str], capsys, monkeypatch, env: dict[str, str] | None = None):
    for name in ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE", "CARACAL_FORENSICS_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        run(["verify", *argv])
    out, err = capsys.readouterr()
    return caught.value.code or 0, out, err


def test_intact_exit_0(capsys, monkeypatch) -> None:
    code, out, err = cli(["-s", CSV, "--key-file", KEY_FILE], capsys, monkeypatch)
    assert code == 0, err
    assert out.startswith("INTACT: 240 event(s) in 4 zone(s)")
    assert "zone-alpha" in out and "1..67" in out
    assert KEY_HEX not in out + err


def test_no_key_exit_3(capsys, monkeypatch) -> None:
    code, out, _ = cli(["-s", CSV], capsys, monkeypatch)
    assert code == 3
    assert out.startswith("PARTIAL") and "no key given" in out


def test_key_from_environment(capsys, monkeypatch) -> None:
    code, out, err = cli(["-s", CSV], capsys, monkeypatch, env={"AUDIT_HMAC_KEY": KEY_HEX})
    assert code == 0 and KEY_HEX not in out + err
    code, _, _ = cli(["-s", CSV], capsys, monkeypatch, env={"AUDIT_HMAC_KEY_FILE": KEY_FILE})
    assert code == 0


@pytest.mark.parametrize("bad", ["not-hex", "abcd", KEY_HEX[:40]])
def test_bad_key_exit_2_without_echo(capsys, monkeypatch, bad: str) -> None:
    code, out, err = cli(["-s", CSV], capsys, monkeypatch, env={"AUDIT_HMAC_KEY": bad})
    assert code == 2
    assert "AUDIT_HMAC_KEY" in err and bad not in out + err


def test_tampered_exit_1_names_file_and_line(tmp_path, capsys, monkeypatch) -> None:
    content = (EXPORT / "db.csv").read_text(encoding="utf-8").split("\n")
    content[5] = content[5].replace("req-", "req-9", 1)
    path = tmp_path / "db.csv"
    path.write_text("\n".join(content), encoding="utf-8")
    code, out, _ = cli(["-s", str(path), "--key-file", KEY_FILE], capsys, monkeypatch)
    assert code == 1
    assert out.startswith("TAMPERED")
    assert "FAIL content_mismatch" in out and f"{path}:6" in out


def test_json_output_and_report_anchor(tmp_path, capsys, monkeypatch) -> None:
    code, out, _ = cli(["-s", CSV, "--key-file", KEY_FILE, "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == 0 and data["status"] == "intact" and data["events_checked"] == 240
    assert data["inputs"][0]["shape"] == "db_csv" and data["inputs"][0]["rows"] == 240
    assert data["key_fingerprint"].startswith("sha256:")
    report = tmp_path / "r.json"
    code, out, _ = cli(["-s", CSV, "--key-file", KEY_FILE, "--report", str(report)],
                       capsys, monkeypatch)
    assert code == 0 and out.startswith("INTACT") and json.loads(report.read_text())["zones"]
    # the report is the anchor of a later run: a cut-off tail is now caught
    rows = (EXPORT / "db.jsonl").read_text(encoding="utf-8").split("\n")
    cut = tmp_path / "cut.jsonl"
    last_alpha = max(i for i, line in enumerate(rows) if '"zone-alpha"' in line)
    cut.write_text("\n".join(rows[:last_alpha] + rows[last_alpha + 1:]), encoding="utf-8")
    code, out, _ = cli(["-s", str(cut), "--key-file", KEY_FILE, "--anchor", str(report)],
                       capsys, monkeypatch)
    assert code == 1 and "FAIL truncated" in out


def test_bad_anchor_is_input_error(tmp_path, capsys, monkeypatch) -> None:
    bad = tmp_path / "anchor.json"
    bad.write_text("{}")
    code, _, err = cli(["-s", CSV, "--anchor", str(bad)], capsys, monkeypatch)
    assert code == 2 and "anchor.json" in err


def test_report_never_overwrites_an_input(tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "db.csv"
    path.write_bytes((EXPORT / "db.csv").read_bytes())
    code, _, err = cli(["-s", str(path), "--report", str(path)], capsys, monkeypatch)
    assert code == 2 and "never written" in err
    assert path.read_bytes() == (EXPORT / "db.csv").read_bytes()


def test_zone_filter(capsys, monkeypatch) -> None:
    code, out, _ = cli(["-s", CSV, "--key-file", KEY_FILE, "--zone", "zone-beta", "--json"],
                       capsys, monkeypatch)
    data = json.loads(out)
    assert code == 0 and [z["zone_id"] for z in data["zones"]] == ["zone-beta"]


def test_no_recover_microseconds(capsys, monkeypatch) -> None:
    ocsf = str(EXPORT / "ocsf")
    code, out, _ = cli(["-s", ocsf, "--key-file", KEY_FILE], capsys, monkeypatch)
    assert code == 0
    code, out, _ = cli(["-s", ocsf, "--key-file", KEY_FILE, "--no-recover-microseconds"],
                       capsys, monkeypatch)
    assert code == 3 and "recovery was skipped" in out


def test_show_preimage(capsys, monkeypatch) -> None:
    code, out, _ = cli(["-s", CSV, "--show-preimage", "ev-0000002"], capsys, monkeypatch)
    assert code == 0
    assert "\u241f" in out
    assert "d28bba8faa059aeb43d8549c9ee6e0299541fe9109373ffd1c06aa9dc9857119" in out
    code, _, err = cli(["-s", CSV, "--show-preimage", "nope"], capsys, monkeypatch)
    assert code == 4 and "nope" in err  # not found: not 1, which says tampered


def test_real_process_keeps_key_out_of_argv_and_output() -> None:
    """The key travels by environment only; the command line and output never hold it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_HMAC")}
    env["AUDIT_HMAC_KEY"] = KEY_HEX
    root = ROOT
    proc = subprocess.run(
        [sys.executable, "-m", "caracal_forensics", "verify", "-s", CSV, "--json"],
        capture_output=True, text=True, env=env, cwd=root, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert KEY_HEX not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["status"] == "intact"


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_closed_pipe_keeps_the_verdict_exit_code(flag: list[str]) -> None:
    """`verify | head`: exit 3 (partial) must not become 0 or 1 when the reader goes away."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_HMAC")}
    root = ROOT
    proc = subprocess.Popen(
        [sys.executable, "-m", "caracal_forensics", "verify", "-s", CSV, *flag],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=root,
    )
    proc.stdout.close()  # the reader is gone before the first byte
    assert proc.wait(timeout=300) == 3


# --- what the text output leads with (issues 15.7, 15.13) -----------------------------


def test_copies_across_shapes_are_one_line_per_pair(tmp_path, capsys, monkeypatch) -> None:
    """The same export as CSV, JSON lines, CLI lines, OCSF and search pages: one WARN line
    per pair of shapes, not one per copy; a copy within one shape (a second CSV file) and
    an altered copy still show one by one; --json keeps every copy."""
    root = tmp_path / "export"
    shutil.copytree(EXPORT, root, ignore=shutil.ignore_patterns("key.hex", "alerts.*"))
    lines = (EXPORT / "db.csv").read_text(encoding="utf-8").split("\n")
    (root / "more").mkdir()
    (root / "more" / "again.csv").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    code, out, _ = cli(["-s", str(root), "--key-file", KEY_FILE], capsys, monkeypatch)
    assert code == 0, out
    assert len(out.splitlines()) < 40  # was 1,922
    pairs = [x for x in out.splitlines() if x.startswith("WARN duplicate_event  240 event(s)")]
    assert len(pairs) == 4
    assert {x.split(" are also in ")[1].split(" ")[0] for x in pairs} == {
        "cli_jsonl", "db_jsonl", "ocsf_parquet", "search_page",
    }
    assert all("kept from db_csv (1 file)" in x for x in pairs)
    single = [x for x in out.splitlines() if "again.csv:2" in x]
    assert len(single) == 1 and single[0].startswith("WARN duplicate_event  ")
    code, out, _ = cli(["-s", str(root), "--key-file", KEY_FILE, "--json"], capsys, monkeypatch)
    assert len(json.loads(out)["findings"]) == 4 * 240 + 1
    changed = lines[2].replace(",req-000003,allow,", ",req-000003,deny,", 1)
    assert changed != lines[2]
    (root / "more" / "changed.csv").write_text(f"{lines[0]}\n{changed}\n", encoding="utf-8")
    code, out, _ = cli(["-s", str(root), "--key-file", KEY_FILE], capsys, monkeypatch)
    assert code == 1 and "FAIL content_mismatch" in out and "changed.csv:2" in out


def test_wrong_key_leads_with_the_key(tmp_path, capsys, monkeypatch) -> None:
    wrong = tmp_path / "wrong.hex"
    wrong.write_text("ab" * 32 + "\n")
    code, out, _ = cli(["-s", CSV, "--key-file", str(wrong)], capsys, monkeypatch)
    assert code == 1  # not proven: a wrong key and a full re-chain look the same
    first, second = out.splitlines()[:2]
    assert first.startswith("WRONG KEY? every HMAC fails and nothing else does: the key is "
                            "probably wrong (key sha256:")
    assert second.startswith("TAMPERED: 240 event(s)")
    code, out, _ = cli(["-s", CSV, "--key-file", str(wrong), "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert data["likely_wrong_key"] is True and data["verdict"].startswith("every HMAC fails")
    # something else failing too: no wrong-key lead, the gap is reported
    rows = (EXPORT / "db.csv").read_text(encoding="utf-8").split("\n")
    gap = tmp_path / "gap.csv"
    gap.write_text("\n".join(rows[:5] + rows[6:]), encoding="utf-8")
    code, out, _ = cli(["-s", str(gap), "--key-file", str(wrong)], capsys, monkeypatch)
    assert code == 1 and out.startswith("TAMPERED") and "WRONG KEY?" not in out
    assert "FAIL sequence_gap" in out
