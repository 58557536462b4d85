"""Named query parameters with a default may be left out (issue 15.20)."""

from __future__ import annotations

import json

import pytest
from support.cli import run_cli as cli
from support.paths import VECTOR_EXPORT as VECTORS

import caracal_forensics as cf
from caracal_forensics import queries
from caracal_forensics.errors import InputError, UsageError


def test_the_header_declares_a_default() -> None:
    query = queries.parse_query(
        "-- name: demo\n-- description: d\n-- param: n = 10 (default)\n"
        "-- param: m = 3 (default: 5)\n-- param: who = app-1\n"
        "SELECT $n, $m, $who\n"
    )
    assert [(p.name, p.example, p.default) for p in query.params] == [
        ("n", "10", "10"), ("m", "3", "5"), ("who", "app-1", None)
    ]
    assert queries.bind_params(query, {"who": "x"}) == {"n": "10", "m": "5", "who": "x"}
    assert queries.bind_params(query, {"who": "x", "n": "2"})["n"] == "2"
    with pytest.raises(UsageError, match="needs who=app-1"):
        queries.bind_params(query, {})


def test_an_empty_default_is_a_header_error() -> None:
    with pytest.raises(InputError, match=r"line 3.*NAME = EXAMPLE \(default: VALUE\)"):
        queries.parse_query("-- name: x\n-- description: d\n-- param: n = 1 (default: )\n"
                            "SELECT $n\n", "q.sql")


def test_top_denied_principals_runs_without_params() -> None:
    snap = cf.open(str(VECTORS))
    assert snap.query("top_denied_principals").height == min(
        10, snap.query("top_denied_principals", limit="1000").height
    )
    code, out, err = cli("query", "top_denied_principals", "--json",
                         "--source", str(VECTORS))
    assert (code, err) == (0, "") and 0 < len(out.splitlines()) <= 10
    assert json.loads(out.splitlines()[0])["denies"] > 0


def test_the_list_shows_defaults() -> None:
    code, out, _ = cli("query", "--list")
    assert code == 0
    assert "limit=10 (default)" in out
    assert "principal_id=app-0010 (required)" in out
