"""``caracal-forensics reconcile`` as a user runs it (exit codes as verify: 0 agree,
1 findings, 2 usage or input error), and ``--zone`` naming the zone of an Admin API CSV
whose file name does not (tail, verify, reconcile)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.cli import one_error_line, run_cli
from support.paths import VECTOR_API, VECTOR_EXPORT

DUMP = VECTOR_EXPORT / "db.csv"
PAGE = VECTOR_API / "audit-zone-gamma-page0.json"


def test_two_exports_that_agree_exit_0_with_the_counts_per_hour() -> None:
    code, out, err = run_cli("reconcile", "-s", DUMP, "--against", PAGE,
                             "--zone", "zone-gamma")
    assert code == 0, err
    assert out.startswith("AGREE: 56 event(s) in source, 56 against, 56 on both")
    assert "zone-gamma" in out and "2026-05-11T08:00:00Z" in out
    assert "FAIL" not in out


def test_a_difference_exits_1_and_prints_like_verify(tmp_path: Path) -> None:
    page = json.loads(PAGE.read_text())
    target = page["items"][0]
    target["decision"] = "deny" if target["decision"] != "deny" else "allow"
    gone = page["items"].pop(1)
    edited = tmp_path / "page.json"
    edited.write_text(json.dumps(page))
    code, out, err = run_cli("reconcile", "-s", DUMP, "--against", edited,
                             "--zone", "zone-gamma")
    assert code == 1, err
    assert out.startswith("DIFFER:")
    lines = out.splitlines()
    mismatch = next(i for i, line in enumerate(lines)
                    if line.startswith("FAIL field_mismatch"))
    assert target["id"] in lines[mismatch] and f"at {DUMP}:" in lines[mismatch]
    assert lines[mismatch + 1].startswith("    decision: source ")
    missing = next(line for line in lines if line.startswith("FAIL missing_in_source"))
    assert gone["id"] in missing
    code, text, _ = run_cli("reconcile", "-s", DUMP, "--against", edited,
                            "--zone", "zone-gamma", "--json")
    data = json.loads(text)
    assert code == 1 and data["status"] == "differ"
    assert data["totals"] == {"missing_in_source": 1, "field_mismatch": 1}
    [finding] = [f for f in data["findings"] if f["kind"] == "missing_in_source"]
    assert finding["missing_from"] == "against" and finding["event_id"] == gone["id"]
    assert data["hours"][0]["against"] == 55 and data["hours"][0]["source"] == 56


def test_usage_errors_exit_2_on_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli("reconcile", "-s", DUMP)
    assert code == 2 and "--against" in one_error_line(err)
    code, _, err = run_cli("reconcile", "-s", DUMP, "--against", tmp_path / "nothing.csv")
    assert code == 2 and "nothing.csv" in one_error_line(err)
    code, _, err = run_cli("reconcile", "-s", DUMP, "--against", PAGE, "--since", "soon")
    assert code == 2 and "--since" in one_error_line(err)


def _unnamed_csv(tmp_path: Path) -> Path:
    """Caracal's CSV export of zone:prod/eu-1, saved under a name of one's own."""
    path = tmp_path / "export from the console.csv"
    shutil.copy(VECTOR_API / "audit-zone_prod_eu-1.csv", path)
    return path


def test_a_csv_without_its_zone_in_its_name_is_one_error_naming_zone(tmp_path: Path) -> None:
    csv = _unnamed_csv(tmp_path)
    code, _, err = run_cli("audit", "tail", "-s", csv)
    line = one_error_line(err)
    assert code == 2 and str(csv) in line and "pass --zone" in line
    code, _, err = run_cli("audit", "tail", "-s", csv, "--zone", "a", "--zone", "b")
    line = one_error_line(err)
    assert code == 2 and str(csv) in line and "2 zones are given (a, b)" in line
    assert "pass --zone only once" in line


def test_a_single_zone_given_is_the_csvs_zone(tmp_path: Path) -> None:
    csv = _unnamed_csv(tmp_path)
    code, out, err = run_cli("audit", "tail", "-s", csv, "--zone", "zone:prod/eu-1",
                             "-n", "0", "--json")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 66 and {r["zone_id"] for r in records} == {"zone:prod/eu-1"}
    code, out, err = run_cli("verify", "-s", csv, "--zone", "zone:prod/eu-1", "--json")
    assert code == 3 and json.loads(out)["events_checked"] == 66, err  # partial: no hashes
    code, out, err = run_cli("reconcile", "-s", DUMP, "--against", csv,
                             "--zone", "zone:prod/eu-1")
    assert code == 0 and out.startswith("AGREE: 66 event(s)"), err


def test_a_zone_given_names_back_the_zone_its_file_name_mangled() -> None:
    """``audit-zone_prod_eu-1.csv`` is zone:prod/eu-1 once that zone is given."""
    code, out, err = run_cli("reconcile", "-s", DUMP, "--against",
                             VECTOR_API / "audit-zone_prod_eu-1.csv",
                             "--zone", "zone:prod/eu-1")
    assert code == 0 and "66 on both" in out, err


def test_skipped_lines_are_said_on_stderr(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    page = json.loads(PAGE.read_text())
    items.write_text("".join(json.dumps(item) + "\n" for item in page["items"])
                     + '{"id": "broken\n')
    code, out, err = run_cli("reconcile", "-s", DUMP, "--against", items, "--zone",
                             "zone-gamma", "--on-bad-line", "skip")
    assert code == 0 and out.startswith("AGREE"), err
    assert "skipped 1 malformed line(s)" in err


def test_jsonb_nested_deeper_than_python_parses_is_a_difference(tmp_path: Path) -> None:
    """A dump's CSV keeps jsonb text as stored, however deep; comparing it by value
    stopped with "unexpected ValueError: invalid JSON: nested too deeply" (against a
    dump) or "unexpected RecursionError" (against the Admin API). The texts differ, so
    the field is a field_mismatch (shown cut short), as any other difference."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(DUMP.read_text(encoding="utf-8"), newline="")))
    column = rows[0].index("metadata_json")
    rows[1][column] = "[" * 100_000 + "]" * 100_000
    deep = tmp_path / "db.csv"
    with deep.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    for against in (DUMP, PAGE.parent):
        code, out, err = run_cli("reconcile", "-s", deep, "--against", against)
        assert code == 1 and err == "", err
        assert f"{rows[1][0]} at {deep}:2" in out
        assert "    metadata_json: source [[[[" in out and "(200000 character" in out
