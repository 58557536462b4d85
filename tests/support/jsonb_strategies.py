"""What the jsonb and JSON lines tests share: generated JSON documents (Hypothesis
strategies and a seeded fuzzer), the PostgreSQL comparison, and event lines.

Used by test_jsonb.py (the Python reference), test_jsonb_native.py (the C kernel) and
test_jsonl_blocks.py (the block reader).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa
from hypothesis import strategies as st

from caracal_forensics import jsonb_native
from caracal_forensics.errors import InputError
from caracal_forensics.jsonb import jsonb_text
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.sources._batch import BadLines
from support import paths
from support.pgserver import PgServer

VECTORS = paths.VECTORS / "jsonb.jsonl"


def vector_pairs() -> list[tuple[str, str]]:
    """(input, PostgreSQL's jsonb::text) of the recorded vectors."""
    # split("\n"), not splitlines(): the latter also splits on U+2028/U+2029.
    text = VECTORS.read_text(encoding="utf-8")
    return [
        (d["input"], d["jsonb_text"])
        for d in (json.loads(line) for line in text.split("\n") if line.strip())
    ]


def reference(raw: str) -> str | None:
    """The Python reference's jsonb::text, or None where it rejects the text."""
    try:
        return jsonb_text(raw)
    except ValueError:
        return None


#: Texts PostgreSQL's jsonb rejects (and so must the reference and the kernel).
REJECTED = [
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
    "1e",
    "1e+",
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
    # not even text: a lone surrogate
    "\ud800",
    '"\ud800"',
]


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
#: Object keys (JSON text), for the strategies and the fuzzer alike.
_KEYS = [
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
_KEY = st.one_of(st.sampled_from(_KEYS), _STRING)
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


VALID = _document(extreme=False)
EXTREME = _document(extreme=True)


@st.composite
def maybe_broken(draw: st.DrawFn) -> str:
    """Mostly valid JSON; sometimes truncated or with a stray token (``JUNK``) inserted."""
    text = draw(EXTREME)
    mode = draw(st.sampled_from(["ok"] * 8 + ["cut", "insert"]))
    if mode == "ok" or not text:
        return text
    pos = draw(st.integers(0, len(text)))
    if mode == "cut":
        return text[:pos]
    return text[:pos] + draw(st.sampled_from([*JUNK, "\x7f"])) + text[pos:]


# -- against PostgreSQL -----------------------------------------------------------------

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


@contextmanager
def try_jsonb_database(pg: PgServer, dbname: str) -> Iterator[object]:
    """A connection to a fresh database with jsonb_text_or_null(text) (NULL when PG
    rejects the text)."""
    pg.psql(f"DROP DATABASE IF EXISTS {dbname}; CREATE DATABASE {dbname}")
    with pg.connect(dbname=dbname) as conn:
        conn.execute(_TRY_JSONB)
        yield conn


def compare_with_postgres(
    conn: object, texts: list[str], ours: Callable[[str], str | None]
) -> None:
    """``ours(text)`` is PostgreSQL's ``text::jsonb::text`` (None where PG rejects)."""
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT jsonb_text_or_null(t) FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) "
        "ORDER BY i",
        (texts,),
    ).fetchall()
    for raw, (theirs,) in zip(texts, rows, strict=True):
        assert ours(raw) == theirs, f"input {raw!r}"


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
        + (rng.choice(_KEYS) if rng.random() < 0.7 else _fuzz_string(rng))
        + w(rng)
        + ":"
        + w(rng)
        + _fuzz_value(rng, depth + 1)
        + w(rng)
        for _ in range(n)
    ]
    return "{" + (",".join(members) if members else w(rng)) + "}"


#: Stray tokens inserted into documents (by the fuzzer and ``maybe_broken``).
JUNK = [
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


def fuzz_doc(rng: random.Random) -> str:
    text = _fuzz_ws(rng) + _fuzz_value(rng, 0) + _fuzz_ws(rng)
    r = rng.random()
    if r < 0.1:  # truncated
        return text[: rng.randrange(len(text) + 1)]
    if r < 0.2:  # a stray token inserted somewhere
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(JUNK) + text[pos:]
    return text


# -- event lines and the JSON lines readers -------------------------------------------

GOOD_EVENT = {
    "id": "e1",
    "zone_id": "z",
    "event_type": "token_exchange",
    "request_id": "r",
    "decision": "allow",
    "policy_set_id": "ps",
    "policy_set_version_id": "psv",
    "manifest_sha": "m",
    "evaluation_status": "complete",
    "determining_policies_json": [{"policy": "p"}],
    "diagnostics_json": [],
    "metadata_json": {"b": 1, "a": [1.50, "x"]},
    "occurred_at": "2026-05-11T08:00:03.212365+00:00",
    "ingested_at": "2026-05-11T08:00:04.212365+00:00",
    "content_sha256": "c",
    "prev_content_sha256": None,
    "chain_hmac": "h",
    "chain_seq": 1,
    "ingest_signature": None,
}

#: as a value of ``event_line``: leave the key out
DROP = object()


def event_line(**changes: object) -> str:
    """A JSON line of ``GOOD_EVENT`` with ``changes`` (a key set to ``DROP``: left out)."""
    obj = dict(GOOD_EVENT)
    for key, value in changes.items():
        if value is DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj, ensure_ascii=False)


def read_events(module, path: str, native: bool, skip: bool, monkeypatch) -> tuple:
    """What ``module.read`` gives with (``native``) or without the kernel: (table, skipped
    count, first skipped, batch sizes, batch line numbers), or ("error", type, message)."""
    monkeypatch.setattr(jsonb_native, "AVAILABLE", native)
    bad = BadLines(skip=skip)
    try:
        batches = list(module.read(path, bad))
    except (InputError, OverflowError) as error:
        return ("error", type(error).__name__, str(error))
    table = pa.Table.from_batches(batches, EVENT_SCHEMA)
    return (
        table,
        bad.count,
        bad.first,
        [b.num_rows for b in batches],
        [b.column("source_line").to_pylist() for b in batches],
    )


def compare_readers(module, path: str, monkeypatch, skip: bool = False) -> tuple:
    """``read_events`` with and without the kernel, asserted identical; the result."""
    slow = read_events(module, path, False, skip, monkeypatch)
    fast = read_events(module, path, True, skip, monkeypatch)
    if slow[0] == "error" or fast[0] == "error":
        assert fast == slow
        return slow
    assert fast[1:] == slow[1:]
    assert fast[0].schema == slow[0].schema
    assert fast[0].to_pylist() == slow[0].to_pylist()
    assert fast[0].equals(slow[0])
    return slow
