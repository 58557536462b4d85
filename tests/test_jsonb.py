"""caracal_forensics.jsonb against PostgreSQL's own jsonb::text (vectors and a live server)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgserver import PgServer

from caracal_forensics.jsonb import (
    JsonbNumber,
    canonical_or_none,
    dumps,
    jsonb_text,
    loads,
)

VECTORS = Path(__file__).parent / "vectors" / "jsonb.jsonl"


def _vector_pairs() -> list[tuple[str, str]]:
    # split("\n"), not splitlines(): the latter also splits on U+2028/U+2029.
    text = VECTORS.read_text(encoding="utf-8")
    return [
        (d["input"], d["jsonb_text"])
        for d in (json.loads(line) for line in text.split("\n") if line.strip())
    ]


@pytest.mark.parametrize("raw,expected", _vector_pairs())
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


@pytest.mark.parametrize(
    "raw",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN]",
        "nan",
        "[1] x",
        "{} {}",
        '"\\ud800"',
        '"\\udc00"',
        '"\\ud83dx"',
        '"\\uDFFF\\uD800"',
        '{"\\ud800": 1}',
        '"\\u0000"',
        '{"a\\u0000": 1}',
        '{"a": 1',
        "[1,",
        '"abc',
        "",
        "   ",
        "[1,]",
        '{"a":1,}',
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        "TRUE",
        "'a'",
        '"\\x"',
        '"a\x01"',
        "\ufeff1",
        "\f1",
        "1e131072",
        "1e-16384",
        "0e-16384",
        "0.0e-16383",
        "1e99999999999",
        "0e1073741823",
        "1" * 131073,
        "0." + "1" * 16384,
        # PostgreSQL checks every value as it reads it, even one a repeated key discards
        '{"a": 0e1073741823, "a": 0}',
        '{"a": "\\ud800", "a": 0}',
        '{"a": ["\\u0000"], "a": 0}',
        '{"a": {"\\udc00": 1}, "a": 0}',
        '[{"a": [[1e-16384]], "a": 0}]',
    ],
)
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


# -- generated JSON text ---------------------------------------------------------------

_WS = st.text(alphabet=" \t\n\r", max_size=2)


def _hex4(code: int, upper: bool) -> str:
    h = f"{code:04x}"
    return "\\u" + (h.upper() if upper else h)


def _pair(code: int, upper: bool) -> str:
    code -= 0x10000
    return _hex4(0xD800 + (code >> 10), upper) + _hex4(0xDC00 + (code & 0x3FF), upper)


_STRING_PIECE = st.one_of(
    st.characters(min_codepoint=0x20, blacklist_categories=("Cs",), blacklist_characters='"\\'),
    st.sampled_from(
        [
            "\u2028",
            "\u2029",
            "\x7f",
            "/",
            "é",
            "😀",
            "\U0010ffff",
            "\ufeff",
            "\uffff",
            "\u0085",
            "日",
        ]
    ),
    st.sampled_from(['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"]),
    st.builds(_hex4, st.integers(1, 0xD7FF) | st.integers(0xE000, 0xFFFF), st.booleans()),
    st.builds(_hex4, st.integers(1, 0x1F), st.booleans()),
    st.builds(_pair, st.integers(0x10000, 0x10FFFF), st.booleans()),
)
_STRING = st.lists(_STRING_PIECE, max_size=8).map(lambda ps: '"' + "".join(ps) + '"')
_KEY = st.one_of(
    st.sampled_from(
        [
            '"a"',
            '"b"',
            '"A"',
            '"aa"',
            '""',
            '"é"',
            '"\\u00e9"',
            '"😀"',
            '"\\ud83d\\ude00"',
            '"\\u0001"',
            '"a b"',
            '"\\t"',
            '"\u2028"',
        ]
    ),
    _STRING,
)
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=30)
_INT_PART = st.one_of(
    st.just("0"),
    st.integers(1, 10**6).map(str),
    st.tuples(st.sampled_from("123456789"), st.text(alphabet="0123456789", max_size=40)).map(
        "".join
    ),
)


def _exponent(extreme: bool) -> st.SearchStrategy[str]:
    values = [st.integers(0, 40), st.integers(0, 400)]
    if extreme:  # around PostgreSQL numeric's limits (some overflow: both must reject)
        values.append(st.sampled_from([16383, 16384, 16400, 131071, 131072, 1073741823]))
    return st.one_of(
        st.just(""),
        st.tuples(
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.sampled_from(["", "0", "00"]),
            st.one_of(*values).map(str),
        ).map("".join),
    )


def _number(extreme: bool) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(["", "", "-"]),
        _INT_PART,
        st.one_of(st.just(""), _DIGITS.map(lambda d: "." + d)),
        _exponent(extreme),
    ).map("".join)


def _document(extreme: bool) -> st.SearchStrategy[str]:
    scalar = st.one_of(_number(extreme), _STRING, st.sampled_from(["true", "false", "null"]))
    return st.tuples(_WS, st.recursive(scalar, _containers, max_leaves=25), _WS).map("".join)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    item = st.tuples(_WS, children, _WS).map("".join)
    member = st.tuples(_WS, _KEY, _WS, st.just(":"), item).map("".join)
    array = st.one_of(
        _WS.map(lambda w: "[" + w + "]"),
        st.lists(item, min_size=1, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]"),
    )
    obj = st.one_of(
        _WS.map(lambda w: "{" + w + "}"),
        st.lists(member, min_size=1, max_size=6).map(lambda xs: "{" + ",".join(xs) + "}"),
    )
    return st.one_of(array, obj)


_VALID = _document(extreme=False)
_EXTREME = _document(extreme=True)


@st.composite
def _maybe_broken(draw: st.DrawFn) -> str:
    """Mostly valid JSON; sometimes truncated or with a stray character inserted."""
    text = draw(_EXTREME)
    mode = draw(st.sampled_from(["ok"] * 8 + ["cut", "insert"]))
    if mode == "ok" or not text:
        return text
    pos = draw(st.integers(0, len(text)))
    if mode == "cut":
        return text[:pos]
    junk = draw(
        st.sampled_from(
            [
                ",",
                "]",
                "}",
                ":",
                '"',
                "\\",
                "0",
                "-",
                ".",
                "e",
                "x",
                "\x01",
                "\x7f",
                " ",
                "\\u",
                "\\ud800",
                "NaN",
                "01",
            ]
        )
    )
    return text[:pos] + junk + text[pos:]


def _ours(raw: str) -> str | None:
    try:
        return jsonb_text(raw)
    except ValueError:
        return None


@given(_VALID)
@settings(max_examples=200, deadline=None)
def test_idempotent(raw: str) -> None:
    once = jsonb_text(raw)
    assert jsonb_text(once) == once
    assert dumps(loads(once)) == once


_TRY_JSONB = """
CREATE OR REPLACE FUNCTION jsonb_text_or_null(t text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN t::jsonb::text;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
"""


@pytest.fixture(scope="module")
def pg_jsonb(pg: PgServer) -> Iterator[object]:
    """A connection to a database with jsonb_text_or_null(text) (NULL when PG rejects)."""
    pg.psql("DROP DATABASE IF EXISTS jsonb_reference; CREATE DATABASE jsonb_reference")
    with pg.connect(dbname="jsonb_reference") as conn:
        conn.execute(_TRY_JSONB)
        yield conn


def _compare_with_postgres(conn: object, texts: list[str]) -> None:
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT jsonb_text_or_null(t) FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) "
        "ORDER BY i",
        (texts,),
    ).fetchall()
    for raw, (theirs,) in zip(texts, rows, strict=True):
        assert _ours(raw) == theirs, f"input {raw!r}"


@given(st.lists(_VALID, min_size=10, max_size=40))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_postgres(pg_jsonb: object, texts: list[str]) -> None:
    _compare_with_postgres(pg_jsonb, texts)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(st.lists(_maybe_broken(), min_size=10, max_size=40))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_postgres_including_rejections(pg_jsonb: object, texts: list[str]) -> None:
    _compare_with_postgres(pg_jsonb, texts)


def test_vectors_match_postgres(pg_jsonb: object) -> None:
    pairs = _vector_pairs()
    _compare_with_postgres(pg_jsonb, [raw for raw, _ in pairs])


# -- volume: a plain seeded fuzzer (cheaper per document than Hypothesis) ----------------

_FUZZ_CHARS = [
    "a",
    "b",
    "A",
    "z",
    " ",
    "é",
    "ü",
    "日",
    "😀",
    "\U0010ffff",
    "\u2028",
    "\u2029",
    "\x7f",
    "\x85",
    "/",
    "\ufeff",
    "\uffff",
    '\\"',
    "\\\\",
    "\\/",
    "\\b",
    "\\f",
    "\\n",
    "\\r",
    "\\t",
    "\\u0001",
    "\\u001F",
    "\\u007f",
    "\\u00e9",
    "\\u00E9",
    "\\u2028",
    "\\uFFFF",
    "\\ud83d\\ude00",
    "\\uD83D\\uDE00",
    "\\udbff\\udfff",
]
_FUZZ_KEYS = [
    '"a"',
    '"b"',
    '"A"',
    '"aa"',
    '""',
    '"é"',
    '"\\u00e9"',
    '"😀"',
    '"\\ud83d\\ude00"',
    '"a b"',
    '"\\t"',
    '"\u2028"',
    '"\\u0001"',
    '"\U00010000"',
    '"\uffff"',
]


def _fuzz_string(rng: random.Random) -> str:
    return '"' + "".join(rng.choice(_FUZZ_CHARS) for _ in range(rng.randrange(6))) + '"'


def _fuzz_number(rng: random.Random) -> str:
    sign = "-" if rng.random() < 0.3 else ""
    r = rng.random()
    if r < 0.3:
        intpart = "0"
    elif r < 0.8:
        intpart = str(rng.randrange(1, 10**6))
    else:
        intpart = str(rng.randrange(1, 10 ** rng.randrange(2, 60)))
    frac = ""
    if rng.random() < 0.5:
        frac = "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 25)))
    exp = ""
    if rng.random() < 0.4:
        exp = (
            rng.choice("eE")
            + rng.choice(["", "+", "-"])
            + rng.choice(["", "0"])
            + str(rng.choice([0, 1, 2, 3, 7, 20, rng.randrange(400)]))
        )
    return sign + intpart + frac + exp


def _fuzz_ws(rng: random.Random) -> str:
    return "" if rng.random() < 0.6 else rng.choice([" ", "\n", "\t", "\r", "  ", " \n "])


def _fuzz_value(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth > 3 or r < (0.1 if depth == 0 else 0.45):
        r2 = rng.random()
        if r2 < 0.4:
            return _fuzz_number(rng)
        if r2 < 0.85:
            return _fuzz_string(rng)
        return rng.choice(["true", "false", "null"])
    n = rng.randrange(5)
    w = _fuzz_ws
    if r < 0.7:
        items = [w(rng) + _fuzz_value(rng, depth + 1) + w(rng) for _ in range(n)]
        return "[" + (",".join(items) if items else w(rng)) + "]"
    members = [
        w(rng)
        + (rng.choice(_FUZZ_KEYS) if rng.random() < 0.7 else _fuzz_string(rng))
        + w(rng)
        + ":"
        + w(rng)
        + _fuzz_value(rng, depth + 1)
        + w(rng)
        for _ in range(n)
    ]
    return "{" + (",".join(members) if members else w(rng)) + "}"


_FUZZ_JUNK = [
    ",",
    "]",
    "}",
    ":",
    '"',
    "\\",
    "0",
    "-",
    ".",
    "e",
    "x",
    "\x01",
    " ",
    "\\u",
    "\\ud800",
    "\\u0000",
    "NaN",
    "01",
    "1e1073741823",
    "0e-16384",
    "1e131072",
]


def _fuzz_doc(rng: random.Random) -> str:
    text = _fuzz_ws(rng) + _fuzz_value(rng, 0) + _fuzz_ws(rng)
    r = rng.random()
    if r < 0.1:  # truncated
        return text[: rng.randrange(len(text) + 1)]
    if r < 0.2:  # a stray token inserted somewhere
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(_FUZZ_JUNK) + text[pos:]
    return text


@pytest.mark.parametrize("seed", range(4))
def test_matches_postgres_fuzz(pg_jsonb: object, seed: int) -> None:
    rng = random.Random(seed)
    _compare_with_postgres(pg_jsonb, [_fuzz_doc(rng) for _ in range(2000)])
