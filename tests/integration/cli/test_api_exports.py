"""The commands over the Admin API's exports (FORMAT.md 6): read, explained, counted, and
never called intact by verify (they carry no hash, no HMAC)."""

from __future__ import annotations

import json

import pytest
from support.cli import run_cli
from support.paths import VECTOR_API, VECTOR_KEY_FILE

SOURCES = ["audit-zone-alpha-page0.json", "audit-zone-alpha.csv", "explain-trace.json"]


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("keyed", [False, True])
def test_verify_ends_partial_never_intact(name: str, keyed: bool) -> None:
    key = ["--key-file", VECTOR_KEY_FILE] if keyed else []
    code, out, err = run_cli("verify", "-s", VECTOR_API / name, *key, "--json")
    report = json.loads(out)
    assert code == 3, err
    assert report["status"] == "partial"
    assert all(zone["status"] == "partial" for zone in report["zones"])
    assert not any(f["severity"] == "fail" for f in report["findings"])


def test_stats_counts_a_page_and_its_csv_alike() -> None:
    counts = []
    for name in ("audit-zone-beta-page0.json", "audit-zone-beta.csv"):
        code, out, err = run_cli("stats", "-s", VECTOR_API / name, "--json")
        assert code == 0, err
        stats = json.loads(out)
        counts.append((stats["events"], stats["by_decision"], stats["by_event_type"]))
    assert counts[0] == counts[1]
    assert counts[0][0] == 51 and counts[0][1] == {"allow": 41, "deny": 10}


def test_explain_over_the_explain_trace_gives_its_final_decision() -> None:
    trace = json.loads((VECTOR_API / "explain-trace.json").read_text())
    source = VECTOR_API / "explain-trace.json"
    code, out, err = run_cli("explain", trace["request_id"], "-s", source, "--json")
    assert code == 0, err
    assert trace["final_decision"] in out
    for event in trace["events"]:
        assert event["id"] in out


def test_tail_filters_the_csv_export() -> None:
    code, out, err = run_cli("audit", "tail", "-s", VECTOR_API / "audit-zone-gamma.csv",
                             "--decision", "deny", "-n", "0", "--json")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    page = json.loads((VECTOR_API / "audit-zone-gamma-page0.json").read_text())
    assert sorted(r["id"] for r in records) == sorted(
        item["id"] for item in page["items"] if item["decision"] == "deny")


def test_a_snapshot_of_api_exports_is_still_partial(tmp_path) -> None:
    """``ingest`` keeps what the exports lack: the snapshot cannot be proven either."""
    out = tmp_path / "snap"
    code, _, err = run_cli("ingest", "-s", VECTOR_API / "audit-zone-gamma-page0.json",
                           "-s", VECTOR_API / "audit-zone-gamma.csv", "-o", out)
    assert code == 0, err
    code, text, err = run_cli("verify", "-s", out, "--key-file", VECTOR_KEY_FILE, "--json")
    report = json.loads(text)
    assert code == 3 and report["status"] == "partial", err
    code, text, err = run_cli("stats", "-s", out, "--json")
    assert code == 0 and json.loads(text)["events"] == 56, err  # the page and its CSV: one
