"""The library speaks of its parameters, the CLI of its flags; exit 4 is "not found".

A library error names the parameter the caller passed (``limit must be ...``) and carries
it in ``UsageError.parameter``; the CLI says the flag instead (``cli.app.FLAGS``). Exit
code 1 means tampered and nothing else: a request or event id that is not there is 4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import cli, one_error_line
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics import errors, queries
from caracal_forensics.errors import NotFoundError, UsageError
from caracal_forensics.filters import Filters, parse_time
from caracal_forensics.follow import Follower
from caracal_forensics.ingest import prepare_out_dir

CSV = str(VECTORS / "db.csv")


def _query(text: str) -> queries.NamedQuery:
    return queries.parse_query("-- name: q\n-- description: d\n" + text, "q.sql")


LIBRARY_CALLS = {
    "limit": lambda: Filters.build(limit=-1),
    "decision": lambda: Filters.build(decision="maybe"),
    "request_id": lambda: Filters.build(request_id=""),
    "zone": lambda: Filters.build(zone=[""]),
    "event_type": lambda: Filters.build(event_type=""),
    "since": lambda: Filters.build(since="yesterday"),
    "until": lambda: Filters.build(until=3),
    "since-until": lambda: Filters.build(since="2026-02-01", until="2026-01-01"),
    "interval": lambda: Follower([CSV], Filters.build(), interval=0),
    "paths": lambda: Follower([], Filters.build()),
    "on_bad_line": lambda: cf.open(CSV, on_bad_line="ignore"),
    "follow on_bad_line": lambda: Follower([CSV], Filters.build(), on_bad_line="ignore"),
    "param": lambda: queries.parse_param_args(["nothing"]),
    "param twice": lambda: queries.parse_param_args(["a=1", "a=2"]),
    "params": lambda: queries.bind_params(_query("-- param: who = app-1\nSELECT $who"), {}),
    "query name": lambda: queries.get_query("no_such_query"),
    "time": lambda: parse_time("2026-13-01", "until"),
    "exclude": lambda: cf.open(CSV, exclude=[""]),
    "open paths": lambda: cf.open(),
    "reconcile against": lambda: cf.reconcile(CSV, 5),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_CALLS))
def test_library_messages_name_parameters_not_flags(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        LIBRARY_CALLS[name]()
    message = str(caught.value)
    assert "--" not in message, message
    assert caught.value.parameter, message
    names = caught.value.parameter
    for parameter in (names,) if isinstance(names, str) else names:
        if parameter != "params":  # the missing values themselves: who=app-1
            assert parameter in message


def test_tail_limit_says_limit() -> None:
    snap = cf.open(CSV)
    with pytest.raises(UsageError, match=r"^limit must be a whole number >= 0") as caught:
        snap.tail(limit=-1)
    assert caught.value.parameter == "limit"


def test_out_dir_says_out_dir(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="^out_dir .* is not an empty directory"):
        prepare_out_dir(str(tmp_path / "full"), [])


@pytest.mark.parametrize(("argv", "said"), [
    (["audit", "tail", "--limit", "-1"], "--limit must be a whole number >= 0"),
    # past a bigint: was DuckDB's "query failed: Conversion Error: Type INT128 ..."
    (["audit", "tail", "--limit", "99999999999999999999999"],
     "--limit must be a whole number >= 0 (0 = all) and below 2**63"),
    (["audit", "tail", "--decision", "maybe"], "--decision must be one of"),
    (["audit", "tail", "--since", "yesterday"], "--since 'yesterday' is not an ISO 8601"),
    (["audit", "tail", "--since", "2026-02-01", "--until", "2026-01-01"],
     "--since (2026-02-01T00:00:00.000000Z) must be before --until (2026-01"),
    (["audit", "tail", "--follow", "--interval", "0"], "--interval must be a positive"),
    (["stats", "--on-bad-line", "ignore"], "--on-bad-line must be 'error' or 'skip'"),
    (["query", "no_such_query"], "(see `caracal-forensics query --list`)"),
    (["query", "denies_for_principal"], "needs --param principal_id=app-0010"),
    (["sql", "SELECT 1", "--param", "x"], "--param must look like NAME=VALUE"),
    (["stats", "--exclude", ""], "--exclude needs non-empty glob patterns"),
])
def test_the_cli_says_flags(capsys: pytest.CaptureFixture[str], argv: list[str],
                            said: str) -> None:
    code, out, err = cli(capsys, *argv, "--source", CSV)
    assert code == 2 and out == ""
    assert said in one_error_line(err)


def test_the_cli_says_out_for_out_dir(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    code, _, err = cli(capsys, "ingest", "--source", CSV, "--out", tmp_path)
    assert code == 2 and f"--out {tmp_path} exists" in one_error_line(err)


def test_on_bad_line_is_checked_by_one_function() -> None:
    assert errors.check_on_bad_line("skip") == "skip"
    with pytest.raises(UsageError, match="^on_bad_line must be 'error' or 'skip'"):
        errors.check_on_bad_line("ignore")


def test_not_found_has_its_own_exit_code() -> None:
    others = [errors.ForensicsError("x"), UsageError("x"), errors.HmacKeyError("x"),
              errors.InputError("f", "bad"), errors.DatabaseError("x")]
    assert NotFoundError("x").exit_code == 4
    assert {error.exit_code for error in others} == {2}  # 1 tampered, 3 partial: not errors


def test_unknown_request_exits_4_not_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "explain", "req-nope", "--source", CSV)
    assert code == 4 and out == "" and "req-nope" in one_error_line(err)
    code, out, err = cli(capsys, "verify", "--source", CSV, "--show-preimage", "no-such-id")
    assert code == 4 and out == "" and "no-such-id" in one_error_line(err)
