"""The SQL render/jmes_sql.py compiles stays short: DuckDB parses, binds and plans it in
every statement, however few events it reads (a --json record's line took 50 ms of
planning in a statement that read nothing, when each text field's escaping was 34 nested
replace() calls). The lines themselves are held to the evaluator's in test_jmes_sql.py."""

from __future__ import annotations

from caracal_forensics.render.jmes_sql import compile_query


def _line_length(expression: str) -> int:
    compiled = compile_query(expression)
    assert compiled is not None
    return len(compiled.line_sql)


def test_a_text_field_adds_a_few_hundred_characters_of_sql() -> None:
    one = _line_length("{d: decision}")
    three = _line_length("{d: decision, z: zone_id, r: request_id}")
    assert (three - one) / 2 < 700


def test_a_whole_record_line_stays_under_ten_thousand_characters() -> None:
    assert _line_length("decision == 'deny'") < 10_000
