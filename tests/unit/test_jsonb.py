"""caracal_forensics.jsonb against PostgreSQL's own jsonb::text (vectors and a live server)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.jsonb_strategies import (
    REJECTED,
    VALID,
    compare_with_postgres,
    fuzz_doc,
    maybe_broken,
    reference,
    try_jsonb_database,
    vector_pairs,
)
from support.pgserver import PgServer

from caracal_forensics.jsonb import (
    JsonbNumber,
    canonical_or_none,
    dumps,
    jsonb_text,
    loads,
)


@pytest.mark.parametrize("raw,expected", vector_pairs())
def test_vectors(raw: str, expected: str) -> None:
    assert jsonb_text(raw) == expected


# -- examples ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("1.50", "1.50"),
        ("1e2", "100"),
        ("1.0e2", "100"),
        ("1E-2", "0.01"),
        ("1.50e1", "15.0"),
        ("1.5e1", "15"),
        ("-0", "0"),
        ("-0.0", "0.0"),
        ("-0e-3", "0.000"),
        ("0e5", "0"),
        ("0.0e5", "0"),
        ("100e-2", "1.00"),
        ("1e-20", "0.00000000000000000001"),
        ("123.456e-10", "0.0000000123456"),
        ("-123.456e+10", "-1234560000000"),
        ("1e0000000000000000000000001", "10"),
        ("12345678901234567890123", "12345678901234567890123"),
        ("-1.0e-0", "-1.0"),
    ],
)
def test_numbers(raw: str, expected: str) -> None:
    assert jsonb_text(raw) == expected


def test_loads_types() -> None:
    value = loads('{"a": [1, 2.50, "x", true, false, null], "a": {"b": 1e3}}')
    assert value == {"a": {"b": "1e3"}}  # repeated key: the last value wins
    assert type(value["a"]["b"]) is JsonbNumber  # type: ignore[index]
    arr = loads('[1, 2.50, "x", true, false, null]')
    assert arr == ["1", "2.50", "x", True, False, None]
    assert [type(v) for v in arr] == [JsonbNumber, JsonbNumber, str, bool, bool, type(None)]


def test_duplicate_keys_keep_last_even_when_spelled_differently() -> None:
    assert jsonb_text('{"é": 1, "\\u00e9": 2, "e": 3}') == '{"e": 3, "é": 2}'


def test_key_order_is_utf8_bytes() -> None:
    # U+FFFF (3 bytes) sorts before U+10000 (4 bytes), which UTF-16 order would invert.
    assert jsonb_text('{"\U00010000": 1, "\uffff": 2, "\u00e9": 3, "zz": 4}') == (
        '{"zz": 4, "é": 3, "\uffff": 2, "\U00010000": 1}'
    )


def test_strings_escaping() -> None:
    raw = '"\\u0001\\u001f\\u007f\\u2028\\/\\b\\f\\n\\r\\t\\"\\\\ \\uD83D\\uDE00"'
    assert jsonb_text(raw) == '"\\u0001\\u001f\x7f\u2028/\\b\\f\\n\\r\\t\\"\\\\ \U0001f600"'


def test_dumps_convenience_values() -> None:
    value = {"b": 1.5e-7, "a": (True, None, 10**30), "é": -0.0, "aa": 1e22, "s": "x\n"}
    assert dumps(value) == (
        '{"a": [true, null, 1000000000000000000000000000000], "b": 0.00000015, '
        '"s": "x\\n", "aa": 10000000000000000000000, "é": 0.0}'
    )
    with pytest.raises(ValueError):
        dumps(float("nan"))
    with pytest.raises(TypeError):
        dumps({1: 2})
    with pytest.raises(TypeError):
        dumps(object())


def test_canonical_or_none() -> None:
    assert canonical_or_none(None) is None
    assert canonical_or_none("") is None
    assert canonical_or_none(' { "b":1,"a" :2 } ') == '{"a": 2, "b": 1}'


@pytest.mark.parametrize("raw", REJECTED)
def test_invalid_inputs_raise_value_error(raw: str) -> None:
    with pytest.raises(ValueError):
        jsonb_text(raw)


def test_nesting() -> None:
    assert jsonb_text("[" * 300 + "]" * 300) == "[" * 300 + "]" * 300
    for depth in (600, 5000):  # deeper than we support: an error, never a wrong answer
        with pytest.raises(ValueError, match="nested too deeply"):
            jsonb_text('{"a":' * depth + "1" + "}" * depth)


def test_numeric_limits_accepted() -> None:
    assert jsonb_text("1e131071") == "1" + "0" * 131071
    assert jsonb_text("0e-16383") == "0." + "0" * 16383
    assert jsonb_text("0e1073741822") == "0"


# -- generated JSON text (jsonb_strategies) ----------------------------------------------


@given(VALID)
@settings(max_examples=200, deadline=None)
def test_idempotent(raw: str) -> None:
    once = jsonb_text(raw)
    assert jsonb_text(once) == once
    assert dumps(loads(once)) == once


@pytest.fixture(scope="module")
def pg_jsonb(pg: PgServer) -> Iterator[object]:
    """A connection to a database with jsonb_text_or_null(text) (NULL when PG rejects)."""
    with try_jsonb_database(pg, "jsonb_reference") as conn:
        yield conn


@given(st.lists(VALID, min_size=10, max_size=40))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_postgres(pg_jsonb: object, texts: list[str]) -> None:
    compare_with_postgres(pg_jsonb, texts, reference)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(st.lists(maybe_broken(), min_size=10, max_size=40))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_postgres_including_rejections(pg_jsonb: object, texts: list[str]) -> None:
    compare_with_postgres(pg_jsonb, texts, reference)


def test_vectors_match_postgres(pg_jsonb: object) -> None:
    pairs = vector_pairs()
    compare_with_postgres(pg_jsonb, [raw for raw, _ in pairs], reference)


# -- volume: a plain seeded fuzzer (cheaper per document than Hypothesis) ----------------


@pytest.mark.parametrize("seed", range(4))
def test_matches_postgres_fuzz(pg_jsonb: object, seed: int) -> None:
    rng = random.Random(seed)
    compare_with_postgres(pg_jsonb, [fuzz_doc(rng) for _ in range(2000)], reference)
