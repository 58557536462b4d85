"""What the SQL render/jmes_sql.py compiles costs: it stays short (DuckDB parses, binds
and plans it in every statement, however few events it reads: a record's line took 50 ms
of planning in a statement that read nothing, when each text field's escaping was 34
nested replace() calls), and it computes a list only for the events that read it. The
lines themselves are held to the evaluator's in test_jmes_sql.py."""

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


def test_a_later_operand_s_lists_are_computed_only_where_it_is_read() -> None:
    """In ``a && b && c`` the evaluator reads ``c`` only for events where ``a`` and ``b``
    are truthy: the lists ``c`` splits (its lets) are computed for those events alone,
    NULL for the rest (step_up's ``diagnostics[].step_up_required`` after
    ``diagnostics[?...]``: for the denies with such a diagnostic, not every deny)."""
    from support.paths import VECTOR_EXPORT

    import caracal_forensics as cf

    expression = ("decision == 'deny' && diagnostics[?step_up_required != null] && "
                  "{s: diagnostics[].step_up_required}")
    compiled = compile_query(expression)
    assert compiled is not None
    last = compiled.lets[-1][0]
    con = cf.open(str(VECTOR_EXPORT / "db.csv")).duckdb
    computed, printed, denies = con.sql(
        f"SELECT count({last}), count({compiled.line_sql}), count(*) FILTER "
        f"(decision = 'deny') FROM {compiled.relation('unique_events')}").fetchall()[0]
    assert 0 < printed == computed < denies


def test_members_of_a_stored_array_are_read_by_one_path() -> None:
    """``determining_policies[].policy`` (a seed recipe, every event): where no element is
    an array, one ``json_extract`` of the stored text with ``$[*]."policy"``, not the
    elements extracted and each parsed again (the flatten is computed only where an
    element may be an array)."""
    compiled = compile_query("determining_policies[].policy")
    assert compiled is not None
    sql = " ".join(text for _, text in compiled.lets)
    assert "json_extract(determining_policies_json, '$[*].\"policy\"')" in sql
    nested = "contains(substr(determining_policies_json, 2), '[')"
    assert sql.count("flatten(") == 1 and f"WHEN {nested} THEN list_transform(flatten(" in sql
