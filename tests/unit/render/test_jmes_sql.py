"""The JMESPath-to-SQL compiler (render/jmes_sql.py) against the evaluator (render/query.py):
generated expressions over the events of every export shape, plus odd events, print the
same lines byte for byte; so do the seed's recipes and the README's examples."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.paths import FIXTURE_EXPORT, ROOT, VECTOR_API, VECTOR_EXPORT, VECTORS
from support.tail import RECIPES

from caracal_forensics.errors import ForensicsError, InputError, UsageError
from caracal_forensics.render.jmes_sql import compile_query, compiled_lines
from caracal_forensics.render.query import Query
from caracal_forensics.render.records import OCCURRED_AT_SQL, OCCURRED_AT_TEXT
from caracal_forensics.snapshot import open_sources

#: Every shape the readers know, as the bundled vectors and fixtures hold them.
SOURCES = [
    VECTOR_EXPORT / "db.csv", VECTOR_EXPORT / "db.jsonl", VECTOR_EXPORT / "cli.jsonl",
    VECTOR_EXPORT / "ocsf", VECTOR_EXPORT / "search", VECTOR_API, FIXTURE_EXPORT,
]

#: jsonb values no export of the vectors holds: decimals as stored, escapes, big and
#: special numbers, booleans against 0 and 1, nesting, empty keys and containers.
ODD_JSON = [
    '{"note": "tab\\tnl\\nbell\\u0007 us\\u001f vt\\u000b del\x7f", "risk": 1.50}',
    '{"note": "caf\u00e9 \U0001f600 \u2028", "latency_ms": 0.000000001, "n": -0.0}',
    '{"note": "comma, \\"quoted\\" back\\\\slash \\\\u001F", "principal_id": 7}',
    '{"big": 12345678901234567890123, "near": 9007199254740993, "principal_id": true}',
    '{"": "empty key", "B": false, "z": [1.0, {"x": true, "y": null}], "principal_id": null}',
    '[[1, [2, [3]]], null, 0, 1, true, false, "x", "", {}, [], {"a": 1}, 2.50]',
    '[{"step_up_required": 0}, {"step_up_required": false}, {"step_up_required": ""}]',
    '[{"step_up_required": [1, 1.5]}, {"step_up_required": {"k": "v"}}, null, 3]',
    '[{"policy": "p1"}, {"policy": null}, {}, {"policy": ["a", "b"]}, "policy"]',
    '[{"a\\"b": 1, "policy": "[x"}, [{"a\\"b": 2}, []], {"a\\"b": "\\\\"}, [[{"policy": 3}]]]',
    '{"requested_scopes": [], "principal_id": "", "latency_ms": 0}',
    '{"requested_scopes": ["a:b", 1, true, null, ["x"]], "principal_id": "app-0007"}',
    '"just text"', "12.50", "0", "true", "null", "[]", "{}",
]


def _odd_events(path: Path) -> Path:
    """A db.jsonl export: the vector events with odd jsonb and text spliced in."""
    lines = (VECTOR_EXPORT / "db.jsonl").read_text(encoding="utf-8").split("\n")
    pairs = [json.loads(line)["input"].replace("\n", " ")
             for line in (VECTORS / "jsonb.jsonl").read_text(encoding="utf-8").split("\n")
             if line.strip()]
    values = ODD_JSON + pairs
    rng = random.Random(20)
    out = []
    for i, line in enumerate(lines[:120]):
        event = json.loads(line)
        parts = {}
        for name in ("metadata_json", "diagnostics_json", "determining_policies_json"):
            parts[name] = rng.choice(values) if rng.random() < 0.6 else json.dumps(event[name])
            event[name] = None
        if i % 7 == 0:
            event["decision"] = rng.choice(["deny", "", "d\u00e9ny \"x\" \\ \x01\x1f", None])
        if i % 11 == 0:
            event["evaluation_status"] = None
        text = json.dumps(event, ensure_ascii=False)
        for name, raw in parts.items():
            text = text.replace(f'"{name}": null', f'"{name}": {raw}', 1)
        out.append(text)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """A connection with the table ``ev``: every event of every shape and the odd events,
    in a fixed order; and the same rows as the evaluator's Arrow table."""
    odd = _odd_events(tmp_path_factory.mktemp("odd") / "db.jsonl")
    snap = open_sources([str(p) for p in [*SOURCES, odd]])
    con = snap.duckdb
    con.sql("CREATE TEMP TABLE ev AS SELECT *, row_number() OVER (ORDER BY source_file, "
            "source_line, id) AS n FROM events ORDER BY n")
    # the generated expressions run on a sample: 40 events of each file, the odd ones all
    con.sql("CREATE TEMP TABLE sample AS SELECT * EXCLUDE (k) FROM (SELECT *, row_number() "
            "OVER (PARTITION BY source_file ORDER BY n) AS k FROM ev) "
            "WHERE k <= 40 OR source_file LIKE '%odd%' ORDER BY n")
    tables = {name: con.sql(f"SELECT *, {OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT} FROM {name} "
                            "ORDER BY n").to_arrow_table() for name in ("ev", "sample")}
    yield con, tables
    con.close()


def _evaluated(query: Query, table) -> list[str] | tuple[str, str]:
    try:
        return list(query.lines(table))
    except (ForensicsError, InputError) as error:
        return ("error", str(error))


def _compiled(con, expression: str, query: Query, relation: str = "ev",
              per_text: bool = False) -> list[str] | tuple[str, str] | None:
    compiled = compile_query(expression)
    if compiled is None:
        return None
    try:
        order = "n" if relation in ("ev", "sample") else "source_line"
        return list(compiled_lines(con, compiled, query, relation, order_by=order,
                                   per_text=per_text))
    except (ForensicsError, InputError) as error:
        return ("error", str(error))


def _same(con, tables, expression: str, relation: str = "ev") -> bool:
    """Assert both paths print the same; False when the compiler declined."""
    try:
        query = Query(expression)
    except UsageError:  # not JMESPath: the evaluator says so, the compiler declines
        assert compile_query(expression) is None
        return False
    got = _compiled(con, expression, query, relation)
    if got is None:
        return False
    expected = _evaluated(query, tables[relation])
    assert got == expected, expression
    compiled = compile_query(expression)
    if compiled is not None and isinstance(got, list):
        # prints_sql holds wherever a line is printed (what tail sorts only: the rest
        # is left out before the sort), unless the evaluator decides the event
        missed = con.sql(f"SELECT count(*) FROM {compiled.relation(relation)} WHERE "
                         f"({compiled.line_sql}) IS NOT NULL AND NOT ({compiled.prints_sql}) "
                         f"AND NOT ({compiled.fallback_sql})").fetchall()[0][0]
        assert missed == 0, expression
    if compiled is not None and compiled.per_text_lets is not None:
        # the lists computed once per distinct text of their field, joined back
        assert _compiled(con, expression, query, relation, per_text=True) == expected, \
            expression
    return True


# --- generated expressions over real field names ----------------------------------------

_TOP = ["id", "zone_id", "event_type", "request_id", "decision", "policy_set_version_id",
        "evaluation_status", "determining_policies", "diagnostics", "metadata", "occurred_at",
        "chain_seq", "chain_hmac", "nosuch"]
_NESTED = ["metadata.principal_id", "metadata.latency_ms", "metadata.requested_scopes",
           "metadata.note", "metadata.risk", "metadata.z", "metadata.big", "metadata.near",
           "metadata.requested_scopes[0]", "metadata.requested_scopes[-1]", "metadata.z[1].x",
           "diagnostics[0]", "diagnostics[-1]", "diagnostics[].step_up_required",
           "diagnostics[*].step_up_required", "diagnostics[?step_up_required]",
           "diagnostics[?step_up_required != null].step_up_required", "diagnostics[]",
           "diagnostics[][]", "determining_policies[].policy",
           "determining_policies[*].policy[]", "determining_policies[0].policy",
           "metadata.requested_scopes[?@ == 'payments:read']", "diagnostics[].scopes[]",
           "diagnostics[?risk > `0.5`].risk", "diagnostics[].{s: step_up_required, r: risk}",
           "diagnostics[?contains(@, 'x')]", "[id, decision][1]", "{a: id}.a", "@",
           "metadata.B", "metadata.\"a b\"", "metadata.note"]
_LITERALS = ["'deny'", "'allow'", "'app-0007'", "''", "'webauthn'", "`1`", "`0`", "`3`",
             "`0.75`", "`12.50`", "`1.5`", "`true`", "`false`", "`null`", "`[]`", "`{}`",
             "`\"deny\"`", "`[\"payments:read\"]`", "`{\"a\": 1}`", "`-1`",
             "`12345678901234567890123`"]
_ELEMENT = ["step_up_required", "risk", "reason", "policy", "@", "scopes", "attempt",
            "step_up_required == 'webauthn'", "!step_up_required", "@ == `1`",
            "length(@) > `0`", "contains(scopes, 'payments:write')"]


@st.composite
def expressions(draw, depth: int = 2) -> str:
    if depth == 0:
        return draw(st.one_of(st.sampled_from(_TOP), st.sampled_from(_NESTED),
                              st.sampled_from(_LITERALS)))
    sub = expressions(depth=depth - 1)
    a, b = draw(sub), draw(sub)
    element = draw(st.sampled_from(_ELEMENT))
    field = draw(st.sampled_from(["diagnostics", "determining_policies",
                                  "metadata.requested_scopes", "metadata.z"]))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    return draw(st.sampled_from([
        f"{a} {op} {b}", f"{a} && {b}", f"{a} || {b}", f"!{a}", f"({a})",
        f"{{x: {a}, y: {b}}}", f"{{x: {a}, x: {b}}}", f"[{a}, {b}]", f"{a} | [0]",
        f"{field}[?{element}]", f"{field}[?{element}].{draw(st.sampled_from(_ELEMENT[:6]))}",
        f"length({a})", f"contains({a}, {b})", f"starts_with({a}, {b})",
        f"ends_with({a}, 'x')", f"not_null({a}, {b})", f"{field}[*].{element}",
        f"{field}[]", f"{a}.principal_id", f"{a}[0]",
        # not compiled: the compiler must decline, never differ
        f"sort_by({field}, &policy)", f"type({a})", f"{a}[1:]", "metadata.*",
    ]))


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(expression=expressions())
def test_generated_expressions_print_what_the_evaluator_prints(events, expression):
    con, tables = events
    _same(con, tables, expression, "sample")


# --- fixed cases ----------------------------------------------------------------------

_RECIPES = json.loads(RECIPES.read_text(encoding="utf-8"))["recipes"]


def _readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r'--query "([^"]+)"', text)]


@pytest.mark.parametrize("expression", [
    *(r["jmespath"].replace("APP", "app-0007") for r in _RECIPES),
    *_readme_queries(),
    "{policy_set_version_id: policy_set_version_id, decision: decision, "
    "determining_policies: determining_policies}",
])
def test_recipes_and_readme_examples_compile_and_print_the_same(events, expression):
    con, tables = events
    assert _same(con, tables, expression)
    compiled = compile_query(expression)
    assert compiled is not None
    # the seed's recipes run in SQL alone on events like the vectors' (no decimal is
    # printed from inside a jsonb field)
    relation = compiled.relation("(SELECT * FROM events WHERE source_file NOT LIKE '%odd%')")
    fallback = con.sql(f"SELECT count(*) FILTER (WHERE {compiled.fallback_sql}) "
                       f"FROM {relation}").fetchall()[0][0]
    assert fallback == 0


@pytest.mark.parametrize("expression", [
    "metadata", "metadata.risk", "metadata.note", "metadata.z", "diagnostics[].step_up_required",
    "diagnostics[?step_up_required]", "determining_policies[].policy", "metadata.big > `1`",
    "metadata.near == `9007199254740992`", "metadata.principal_id == `1`",
    "contains(metadata.requested_scopes, `true`)", "contains(metadata.requested_scopes, `1`)",
    "metadata.requested_scopes == `[\"a:b\", 1, true, null, [\"x\"]]`", "length(metadata)",
    "decision", "{d: decision, i: id}", "@", "[@, `1.50`]", "metadata.latency_ms < `1`",
    "!metadata.latency_ms", "metadata.principal_id || 'none'", "diagnostics && decision",
    "decision < 'e'", "metadata.principal_id < `8`", "length(decision)",
    "starts_with(decision, 'd')", "contains(decision, '\"')", "metadata.z[0]", "metadata.B",
    "{x: length(request_id), x: id == id}",
    "diagnostics[?step_up_required] && id == id", "decision == 'deny' && diagnostics[].risk",
    # members read by one path from the stored text, nested arrays flattened as before
    "determining_policies[*].policy", "diagnostics[].\"a\\\"b\"", "metadata[*].\"a\\\"b\"",
    "determining_policies[].\"a\\\"b\"", "metadata[].policy", "diagnostics[*].policy",
])
def test_odd_values_print_the_same(events, expression):
    con, tables = events
    assert _same(con, tables, expression, "sample")


@pytest.mark.parametrize("expression", [
    "sort_by(diagnostics, &risk)", "metadata.*", "diagnostics[1:]", "to_string(id)",
    "not_null()", "length(id, id)", "keys(metadata)", "'unterminated", "metadata.\"\"",
])
def test_what_is_not_compiled_is_declined(expression):
    assert compile_query(expression) is None


@pytest.mark.parametrize("depth", [900, 10_000])
def test_a_jsonb_field_nested_too_deeply_is_left_to_the_evaluator(tmp_path, depth):
    """The evaluator cannot parse (10,000 levels) or print (900) it and says so, naming
    the event; the SQL must neither print a line instead nor fail otherwise."""
    lines = (VECTOR_EXPORT / "db.csv").read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    row = next(csv.reader(io.StringIO(lines[1].decode())))
    row[header.index("metadata_json")] = '{"a": ' + "[" * depth + "]" * depth + "}"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    lines[1] = buffer.getvalue().encode()
    (tmp_path / "db.csv").write_bytes(b"\n".join(lines))
    con = open_sources([str(tmp_path / "db.csv")]).duckdb
    table = con.sql(f"SELECT *, {OCCURRED_AT_SQL} AS {OCCURRED_AT_TEXT} FROM events "
                    "ORDER BY source_line").to_arrow_table()
    for expression in ("decision == 'allow' && metadata", "{m: metadata.a}", "id",
                       "metadata.a[0]", "decision == 'allow'", "metadata.a[]",
                       "length(metadata.a[][]) > `0`"):
        query = Query(expression)
        expected = _evaluated(query, table)
        assert _compiled(con, expression, query, "events") == expected
        assert ("error" in expected) == ("metadata" in expression)
