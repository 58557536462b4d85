"""``--query`` does less work than it reads like: its ``field == 'text'`` conditions run
in SQL, only the nested fields it names are parsed, and ``--json`` lines are built only
for the events it selects. None of that may change a single output line: random
expressions are compared with the plain reading (every event, every field parsed), and
an expression that fails must fail alike."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.tail import SHAPES

import caracal_forensics as cf
from caracal_forensics.errors import ForensicsError
from caracal_forensics.filters import Filters, run_query, select_sql
from caracal_forensics.render.jsonl import dumps
from caracal_forensics.render.query import Query, is_truthy
from caracal_forensics.render.records import (
    EVENT_COLUMNS,
    OCCURRED_AT_SQL,
    OCCURRED_AT_TEXT,
    json_lines,
    records,
)

EXTRA = (f"{OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT}",)


@pytest.fixture(scope="module", params=["db_csv", "cli_jsonl", "ocsf"])
def snap(request) -> cf.Snapshot:
    return cf.open(str(SHAPES[request.param]))


def plain(snap: cf.Snapshot, expression: str) -> list[str]:
    """The reference: every event, every field parsed, each line built."""
    sql, params = select_sql(Filters.build(limit=0), columns=EVENT_COLUMNS, extra=EXTRA)
    table = run_query(snap.duckdb, sql, params)
    query = Query(expression)
    out = []
    for record, line in zip(records(table), json_lines(table), strict=True):
        value = query.search(record)
        if value is True:
            out.append(line)
        elif is_truthy(value):
            out.append(dumps(value))
    return out


def lean(snap: cf.Snapshot, expression: str) -> list[str]:
    query = Query(expression)
    sql, params = select_sql(Filters.build(limit=0), columns=EVENT_COLUMNS, extra=EXTRA,
                             guard=query.guard())
    return list(query.lines(run_query(snap.duckdb, sql, params)))


_TEXT = st.sampled_from(["decision", "event_type", "zone_id", "request_id", "id",
                         "evaluation_status", "chain_hmac"])
_VALUE = st.sampled_from(["'deny'", "'allow'", "'DENY'", "'token_exchange'", "'zone-beta'",
                          "'complete'", "''", "'app-0010'", "'mfa'", "`\"deny\"`", "`1`",
                          "'a\"b'"])
_NESTED = st.sampled_from(["metadata.principal_id", "metadata.jti", "diagnostics[0].risk",
                           "diagnostics[].step_up_required", "determining_policies[0].policy",
                           "metadata"])


#: Filters over a jsonb field, which the guard requires keys of (``_filter_guard``), and
#: some it must not: equal paths (both missing is equal), ``!=`` a text, a function.
FILTER_EXPRESSIONS = (
    "diagnostics[?step_up_required != null]", "diagnostics[?step_up_required == 'mfa']",
    "diagnostics[?risk > `0.5`]", "diagnostics[?attempt == `2` || cooldown_s]",
    "diagnostics[?step_up_required != risk].step_up_required", "diagnostics[?!risk]",
    "diagnostics[?reason == 'scope_not_allowed' && scopes]", "determining_policies[?policy]",
    "diagnostics[?step_up_required == attempt]", "diagnostics[?step_up_required != 'mfa']",
    "diagnostics[?to_string(attempt) == '2']", "diagnostics[?scopes[0] == 'payments:write']",
    "diagnostics[][?step_up_required]", "metadata.scopes[?@ == 'payments:write']",
    # a text looked for and not needed, then two text clauses: each keeps its own name
    "diagnostics[?attempt == `null` && cooldown_s] && decision == 'deny' && "
    "metadata.principal_id == 'app-0010'",
)
_FILTERS = st.sampled_from(FILTER_EXPRESSIONS)


@st.composite
def expressions(draw) -> str:
    atoms = st.one_of(
        st.builds(lambda f, v: f"{f} == {v}", _TEXT, _VALUE),
        st.builds(lambda f, v: f"{v} == {f}", _TEXT, _VALUE),
        st.builds(lambda f, v: f"{f} == {v}", _NESTED, _VALUE),
        st.builds(lambda f, v: f"{f} != {v}", st.one_of(_TEXT, _NESTED), _VALUE),
        _NESTED, _TEXT,
        st.sampled_from(["{id: id, p: metadata.principal_id}", "@", "*", "keys(@)",
                         "length(@) > `3`", "diagnostics[?step_up_required]",
                         "to_string(@)", "* | [0]"]),
        _FILTERS,
    )
    parts = draw(st.lists(atoms, min_size=1, max_size=3))
    joiner = draw(st.sampled_from([" && ", " || "]))
    return joiner.join(parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(expression=expressions())
@example(expression="* | [0] && keys(@)")  # raised: keys() of a list (issue 15.2)
def test_lean_query_prints_what_the_plain_reading_prints(snap, expression) -> None:
    assert outcome(lean, snap, expression) == outcome(plain, snap, expression)


@pytest.mark.parametrize("prefix", ["", "decision == 'deny' && ", "event_type && "])
def test_every_filter_guard_keeps_what_the_plain_reading_prints(snap, prefix) -> None:
    """Each filter of ``_FILTERS``, alone and after other conditions: those that are a
    guard drop only events the expression drops, those that must not be one are not."""
    for expression in FILTER_EXPRESSIONS:
        for suffix in ("", " && {id: id}"):
            full = prefix + expression + suffix
            assert outcome(lean, snap, full) == outcome(plain, snap, full), full


def outcome(read, snap: cf.Snapshot, expression: str) -> list[str] | str:
    """The lines a reading prints, or the error it stops with: an expression that fails
    on some event (``keys()`` of a list) must fail the same way, on the same event,
    however little the reading parses."""
    try:
        return read(snap, expression)
    except ForensicsError as error:  # the event named (by id in search's message, by
        # file, line and id in lines'), and what the evaluator said
        text = str(error)
        found = (re.search(r"event ('[^']*'): --query failed: (.*)$", text)
                 or re.search(r"--query failed on event ('[^']*'): (.*)$", text))
        return f"error on event {found[1]}: {found[2]}" if found else f"error: {text}"


def test_the_guard_and_the_fields_are_what_the_expression_names() -> None:
    query = Query("decision == 'deny' && metadata.principal_id == 'app-7' && {id: id}")
    sql, params = query.guard()
    assert sql == '"decision" = $q0 AND contains("metadata_json", $q1)'
    assert params == {"q0": "deny", "q1": '"app-7"'}
    assert query.fields == {"decision", "metadata", "id"}
    # the text column's clause alone sizes tail's slices (the jsonb one is never scanned
    # for that): its own params only, or DuckDB refuses the excess one
    assert query.guard().plain == ('"decision" = $q0', {"q0": "deny"})
    assert Query("metadata.principal_id == 'app-7'").guard().plain is None
    assert Query("decision == 'deny' || id == 'x'").guard() is None  # an || is not a guard
    assert Query("metadata.note == 'a\"b'").guard() is None  # jsonb escapes the quote
    # a filter over a jsonb field finds an element only where the keys its condition
    # needs are in the field's text (either side of `!=` between two paths)
    query = Query("decision == 'deny' && diagnostics[?step_up_required != null] && {id: id}")
    assert query.guard()[0] == ('"decision" = $q0 AND (contains("diagnostics_json", $f1_0) '
                                'OR contains("diagnostics_json", $f1_1))')
    assert query.guard()[1] == {"q0": "deny", "f1_0": '"step_up_required"', "f1_1": '"null"'}
    assert tuple(Query("diagnostics[?a.b == 'x' && c > `1`].d").guard()) == (
        'contains("diagnostics_json", $f0_0) AND contains("diagnostics_json", $f0_1) AND '
        'contains("diagnostics_json", $f0_2) AND contains("diagnostics_json", $f0_3)',
        {"f0_0": '"a"', "f0_1": '"b"', "f0_2": '"x"', "f0_3": '"c"'})
    # a text looked for and then not needed (`a == null` needs nothing) leaves its name
    # unused: the next clause's name is still its own (it took the unused one's number)
    sql, params = Query("decision == 'deny' && diagnostics[?a == `null` && c] && "
                        "metadata.x == 'p' && event_type == 'y'").guard()
    assert sql == ('"decision" = $q0 AND contains("diagnostics_json", $f1_1) AND '
                   'contains("metadata_json", $q2) AND "event_type" = $q3')
    assert params == {"q0": "deny", "f1_1": '"c"', "q2": '"p"', "q3": "y"}
    for truthy_without_the_keys in ("diagnostics[?a == b]", "diagnostics[?a != 'x']",
                                    "diagnostics[?!a]", "diagnostics[?to_string(a) == '5']",
                                    "merge(metadata, `{}`)[?a]", "diagnostics[?a || !b]"):
        assert Query(truthy_without_the_keys).guard() is None, truthy_without_the_keys
    # a text jsonb writes escaped is not looked for; the key still is
    assert tuple(Query("diagnostics[?a == 'q\"x']").guard()) == (
        'contains("diagnostics_json", $f0_0)', {"f0_0": '"a"'})
    assert Query("keys(@)").fields is None and Query("*").fields is None
    assert Query("id").fields == {"id"}


def test_cli_uses_the_guard_only_when_every_match_is_wanted(snap) -> None:
    from support.cli import run_cli

    source = snap.inputs[0].path
    newest = run_cli("audit", "tail", "-s", source, "--limit", "5", "--query",
                     "decision == 'deny'")
    # the newest 5 events, of which the expression keeps the denies: not the newest 5 denies
    assert newest.code == 0
    assert len(newest.lines) <= 5
    everything = run_cli("audit", "tail", "-s", source, "--limit", "0", "--query",
                         "decision == 'deny'")
    assert everything.lines == lean(snap, "decision == 'deny'")


def test_property_tests_are_deterministic(request) -> None:
    """tests/conftest.py's profile: the same examples on every run and every machine, no
    example database (issue 15.2); HYPOTHESIS_PROFILE=explore opts out."""
    from hypothesis import settings as current

    chosen = request.config.getoption("hypothesis_profile", None)
    if chosen or os.environ.get("HYPOTHESIS_PROFILE"):
        pytest.skip("a Hypothesis profile was chosen explicitly")
    assert current.default.derandomize is True
    assert current.default.database is None
