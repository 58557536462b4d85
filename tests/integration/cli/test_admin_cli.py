"""``admin tail``, ``timeline`` and explain's admin changes as a user runs them: output,
stderr lines, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_error_line, run_cli
from support.paths import FIXTURE_EXPORT, FIXTURE_INCIDENT

INCIDENT = str(FIXTURE_INCIDENT)


def test_admin_tail_table() -> None:
    result = run_cli("admin", "tail", "-s", INCIDENT, env={"COLUMNS": "200"})
    assert result.code == 0, result.err
    header, rule, *rows = result.lines
    assert header.split()[:4] == ["OCCURRED", "AT", "(UTC)", "CHAIN"]
    assert len(rows) == 9
    assert rows[5].split()[:6] == ["2026-05-12T10:02:00.250Z", "zone-pay", "4",
                                  "alice@example.com", "POST", "200"]


def test_admin_tail_filters_json_and_query() -> None:
    result = run_cli("admin", "tail", "-s", INCIDENT, "--actor", "bob@example.com",
                     "--status", "4xx", "--zone", "zone-pay", "--json")
    assert result.code == 0 and result.err == ""
    records = [json.loads(line) for line in result.lines]
    assert [(r["method"], r["status_code"], r["chain_seq"]) for r in records] == [
        ("DELETE", 403, 5), ("DELETE", 403, 6)]
    result = run_cli("admin", "tail", "-s", INCIDENT, "--limit", "0", "--query",
                     "entity_type == 'policy-sets' && {at: occurred_at, kind: change_kind}")
    assert [json.loads(line) for line in result.lines] == [
        {"at": "2026-05-12T09:30:00.000Z", "kind": "create"},
        {"at": "2026-05-12T10:02:00.250Z", "kind": "activate"},
        {"at": "2026-05-12T10:09:40.000Z", "kind": "activate"},
    ]
    result = run_cli("admin", "tail", "-s", INCIDENT, "--since", "2026-05-12T10:04Z",
                     "--until", "2026-05-12T10:05Z", "--method", "delete", "--json")
    assert len(result.lines) == 1


def test_admin_tail_says_why_nothing_is_listed() -> None:
    result = run_cli("admin", "tail", "-s", INCIDENT, "--zone", "zone-py")
    assert result.code == 0 and result.out == ""
    assert "did you mean 'zone-pay'?" in one_error_line(result.err)
    result = run_cli("admin", "tail", "-s", str(FIXTURE_EXPORT))
    assert result.code == 0
    assert "none of the sources holds admin changes" in one_error_line(result.err)


@pytest.mark.parametrize(("args", "words"), [
    (["--status", "teapot"], "--status"),
    (["--limit", "-3"], "--limit"),
    (["--since", "soon"], "--since"),
    (["--query", "status_code =="], "--query"),
])  # fmt: skip
def test_admin_tail_usage_errors_are_one_line(args: list[str], words: str) -> None:
    result = run_cli("admin", "tail", "-s", INCIDENT, *args)
    assert result.code == 2 and result.out == ""
    assert words in one_error_line(result.err)


def test_timeline_command() -> None:
    result = run_cli("timeline", "-s", INCIDENT, "--zone", "zone-pay",
                     "--since", "2026-05-12T10:00Z", "--until", "2026-05-12T10:15Z")
    assert result.code == 0, result.err
    head, *lines = result.lines
    assert head == ("Timeline of zone zone-pay: 4 admin change(s), 47 decision event(s) in "
                    "9 line(s)")
    assert [line.split()[1] for line in lines] == [
        "allow", "allow", "change", "deny", "allow", "failed", "failed", "change", "allow"]
    assert [line.split()[2] for line in lines if line.split()[1] in ("allow", "deny")] == [
        "6x", "2x", "27x", "7x", "5x"]
    result = run_cli("timeline", "-s", INCIDENT, "--zone", "zone-pay", "--json")
    entries = [json.loads(line) for line in result.lines]
    assert {e["kind"] for e in entries} == {"change", "decisions"}
    assert sum(e["count"] for e in entries if e["kind"] == "decisions") == 67
    every = run_cli("timeline", "-s", INCIDENT, "--zone", "zone-pay", "--every-event")
    assert len(every.lines) == 1 + 67 + 8


def test_timeline_errors_and_warnings() -> None:
    result = run_cli("timeline", "-s", INCIDENT)
    assert result.code == 2 and "--zone" in one_error_line(result.err)
    result = run_cli("timeline", "-s", str(FIXTURE_EXPORT / "db.csv"), "--zone", "zone-beta")
    assert result.code == 0 and "only decisions are shown" in one_error_line(result.err)
    result = run_cli("timeline", "-s", INCIDENT, "--zone", "zone-nowhere")
    assert result.code == 0 and result.out == ""
    assert "nothing in zone 'zone-nowhere'" in one_error_line(result.err)


def test_explain_lists_the_admin_changes_before_the_request() -> None:
    result = run_cli("explain", "req-pay-0029", "-s", INCIDENT)
    assert result.code == 0, result.err
    out = result.out
    assert "Admin changes in the 24 hours before (policy set ps-pay, policy set version " \
           "psv-7, application app-12, resource res-ledger):" in out
    assert "psv-7/activate -> 200 (policy set ps-pay; policy set version psv-7; " \
           "zone-pay seq 4)" in out
    data = json.loads(run_cli("explain", "req-pay-0029", "-s", INCIDENT, "--json").out)
    assert [c["request_id"] for c in data["admin_changes"]] == [
        "req-adm-002", "req-adm-003", "req-adm-004", "req-adm-006"]


def test_event_commands_read_a_directory_with_both_chains(tmp_path: Path) -> None:
    """audit tail and stats read the events beside the admin dump, which they leave out."""
    result = run_cli("audit", "tail", "-s", INCIDENT, "--limit", "0", "--json")
    assert result.code == 0 and len(result.lines) == 67


def test_help_lists_the_commands_and_stays_light() -> None:
    result = run_cli("--help")
    assert "admin" in result.out and "timeline" in result.out
    code = ("import sys; from caracal_forensics.cli import admin, timeline; "
            "print(sorted(m for m in ('duckdb', 'pyarrow', 'polars') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
