"""Narrow terminals: say what was left out, keep the request id, alerts stay readable
(issue 15.9)."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from support.cli import run_cli
from support.paths import FIXTURE_EXPORT as EXPORT

import caracal_forensics as cf
from caracal_forensics.render.table import Column, fit_columns, hidden_note

DB_CSV = str(EXPORT / "db.csv")


def cli(columns: int, *argv: str) -> list[str]:
    """The output lines of a command run at ``columns`` columns (none wider)."""
    result = run_cli(*argv, env={"COLUMNS": str(columns)})
    assert (result.code, result.err) == (0, "")
    lines = result.out.rstrip("\n").split("\n")
    assert all(cell_len(line) <= columns for line in lines), result.out
    return lines


def _caption(lines: list[str]) -> str:
    """The caption's words, however rich wrapped them."""
    body = [i for i, line in enumerate(lines) if line.startswith("2026-")]
    return " ".join(" ".join(lines[body[-1] + 1:]).split())


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_tail_keeps_the_request_id_and_names_what_it_left_out(columns: int) -> None:
    lines = cli(columns, "audit", "tail", "-s", DB_CSV, "-n", "5")
    assert "REQUEST" in lines[0] and "OCCURRED AT (UTC)" in lines[0]
    body = [line for line in lines if line.startswith("2026-")]
    requests = cf.open(DB_CSV).tail(limit=5)["request_id"].to_list()
    assert requests[1:] == [f"req-0001{n}" for n in range(56, 60)]  # the first has none
    for line, request in zip(body, requests, strict=True):
        assert line.split()[-1] == request if request else not line.endswith("req-")
    caption = _caption(lines)
    assert "newest 5 of 300 matches" in caption
    assert "not shown (too narrow, see --json): " in caption
    shown = {"ZONE", "EVENT TYPE", "DECISION", "PRINCIPAL", "POLICY VERSION",
             "DETERMINING POLICIES", "EVENT ID"}
    named = caption.split("see --json): ")[1].split(", ")
    # every column is either in the header or named as left out
    assert {h for h in shown if h not in lines[0]} == set(named)
    if columns == 80:
        assert "ZONE" in lines[0] and "EVENT TYPE" in lines[0] and "DECISION" in lines[0]


def test_a_wide_terminal_shows_everything_without_a_note() -> None:
    lines = cli(200, "audit", "tail", "-s", DB_CSV, "-n", "5")
    assert "EVENT ID" in lines[0] and "not shown" not in "\n".join(lines)


@pytest.mark.parametrize("columns", [80, 60])
def test_stats_keeps_allow_and_deny(columns: int) -> None:
    lines = cli(columns, "stats", "-s", DB_CSV)
    header = next(line for line in lines if line.startswith("zone "))
    assert header.split()[-2:] == ["allow", "deny"]
    assert "zone:prod/eu-1" in "\n".join(lines)  # ids are never cut
    text = " ".join(" ".join(lines).split())
    assert "not shown (too narrow, see --json): first occurred_at, last occurred_at" in text


@pytest.mark.parametrize("columns", [80, 60])
def test_alerts_read_whole_at_80_columns(columns: int) -> None:
    lines = cli(columns, "alerts", "-s", str(EXPORT / "alerts.csv"))
    text = "\n".join(lines)
    for value in ("2026-05-11T08:03:22.312354Z", "zone-alpha", "content_mismatch_on_replay",
                  "ev-0000007", "stored=a2dbc83f incoming=0badc0de", "ev-0000042"):
        assert value in text
    assert lines[-1] == "2 alert(s)"


def test_alerts_are_a_table_when_they_fit() -> None:
    lines = cli(160, "alerts", "-s", str(EXPORT / "alerts.csv"))
    assert lines[0].split() == ["observed_at", "zone", "kind", "event", "id", "detail"]


def test_columns_squeeze_before_they_are_dropped() -> None:
    columns = [
        Column("ID", "id", priority=9, shrink=False),
        Column("NAME", "name", priority=5, min_width=6),
        Column("NOTE", "note", priority=1, min_width=6),
    ]
    cells = [["abcdefghij", "x" * 20, "y" * 20]]
    # natural 10 + 20 + 20 + 2 gaps: squeezed lowest priority first
    assert fit_columns(columns, cells, 56) == ([0, 1, 2], [10, 20, 20])
    assert fit_columns(columns, cells, 50) == ([0, 1, 2], [10, 20, 14])
    assert fit_columns(columns, cells, 40) == ([0, 1, 2], [10, 18, 6])
    # below the floors a column goes; the id is never cut
    assert fit_columns(columns, cells, 27) == ([0, 1], [10, 14])
    assert fit_columns(columns, cells, 12) == ([0], [10])
    assert hidden_note(columns, [0]) == "not shown (too narrow, see --json): NAME, NOTE"
    assert hidden_note(columns, [0, 1, 2]) is None


def test_the_query_list_reads_at_80_columns() -> None:
    lines = cli(80, "query", "--list")
    text = "\n".join(lines)
    assert "name         top_denied_principals" in text
    assert "parameters   limit=10 (default)" in text
