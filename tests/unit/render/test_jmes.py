"""The compiled JMESPath evaluator (render/jmes.py) against jmespath's own interpreter:
random expressions over event records and odd values give the same results and errors."""

from __future__ import annotations

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError

from caracal_forensics.render.jmes import compile_parsed
from caracal_forensics.render.records import LiteralFloat

RECORDS = [
    {"id": "ev-1", "decision": "deny", "chain_seq": 3,
     "metadata": {"principal_id": "app-7", "n": LiteralFloat("1.50"), "tags": ["a", "b"]},
     "diagnostics": [{"step_up_required": "mfa"}, {"risk": 0.9}, None, [1, [2]]],
     "determining_policies": [{"policy": "p1"}, {"policy": "p2"}]},
    {"id": "ev-2", "decision": None, "chain_seq": 0, "metadata": None, "diagnostics": {},
     "determining_policies": []},
    {"id": "", "decision": "allow", "metadata": {"principal_id": 7, "flag": False},
     "diagnostics": "x", "determining_policies": [{"policy": None}, {}]},
    [1, 2, {"a": 1}], "text", 0, None, True, [],
]

_PATH = st.sampled_from(["id", "decision", "chain_seq", "metadata", "metadata.principal_id",
                         "metadata.tags", "metadata.n", "diagnostics", "determining_policies",
                         "diagnostics[0]", "diagnostics[-1]", "diagnostics[1:3]",
                         "diagnostics[::-1]", "determining_policies[].policy",
                         "determining_policies[*].policy", "diagnostics[]", "*", "*.tags",
                         "metadata.*", "@", "[0]", "[*].a", "a"])
_LITERAL = st.sampled_from(["'deny'", "`1`", "`0`", "`1.5`", "`true`", "`false`", "`null`",
                            "`[]`", "`{}`", "''", "`\"app-7\"`"])


@st.composite
def expressions(draw, depth: int = 2) -> str:
    if depth == 0:
        return draw(st.one_of(_PATH, _LITERAL))
    sub = expressions(depth=depth - 1)
    kind = draw(st.integers(0, 11))
    a, b = draw(sub), draw(sub)
    return [
        f"{a} == {b}", f"{a} != {b}", f"{a} < {b}", f"{a} >= {b}", f"{a} && {b}",
        f"{a} || {b}", f"!{a}", f"{{x: {a}, y: {b}}}", f"[{a}, {b}]", f"{a} | {b}",
        f"diagnostics[?{a}]", draw(st.sampled_from([
            f"length({a})", f"not_null({a}, {b})", f"to_string({a})", f"type({a})",
            f"contains({a}, {b})", "sort_by(determining_policies, &policy)",
            f"keys({a})", "max_by(diagnostics, &risk)"])),
    ][kind]


def _outcome(function, value):
    try:
        return ("value", function(value))
    except (JMESPathError, TypeError, ValueError) as error:  # str < int raises TypeError
        return ("error", type(error).__name__)


@settings(max_examples=400, deadline=None)
@given(expressions(), st.sampled_from(range(len(RECORDS))))
def test_compiled_equals_the_interpreter(expression, index) -> None:
    try:
        parsed = jmespath.compile(expression)
    except JMESPathError:
        return
    value = RECORDS[index]
    expected = _outcome(parsed.search, value)
    got = _outcome(compile_parsed(parsed.parsed), value)
    assert got == expected
    if expected[0] == "value":
        assert type(got[1]) is type(expected[1])


@pytest.mark.parametrize("expression", [
    "decision == 'deny' && metadata.principal_id == 'app-7'",
    "{occurred_at: occurred_at, policies: not_null(determining_policies[].policy, `[]`)}",
    "diagnostics[?step_up_required != null]", "sort_by(determining_policies, &policy)[0]",
    "metadata.n == `1.50`", "!chain_seq", "diagnostics[1:]",
])
def test_recipes_and_edge_cases(expression) -> None:
    parsed = jmespath.compile(expression)
    for record in RECORDS:
        assert _outcome(compile_parsed(parsed.parsed), record) == _outcome(parsed.search, record)
