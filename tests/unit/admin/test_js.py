"""JSON.stringify (FORMAT.md 8): fixed cases from the format, a property test against a
real JavaScript engine (node, when installed), and Caracal's own samples."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal_forensics.admin.js import is_index_key, number_text, string_text, stringify
from caracal_forensics.jsonb import JsonbNumber, loads
from tests.support.paths import VECTORS

NODE = shutil.which("node")


@pytest.mark.parametrize("literal, text", [
    ("1e21", "1e+21"), ("1e+21", "1e+21"), ("1000000000000000000000", "1e+21"),
    ("999999999999999999999", "1e+21"), ("1e20", "100000000000000000000"),
    ("1.5e-7", "1.5e-7"), ("1e-7", "1e-7"), ("0.000001", "0.000001"), ("1e-6", "0.000001"),
    ("-0", "0"), ("-0.0", "0"), ("0", "0"), ("1.50", "1.5"), ("100", "100"),
    ("1.0e2", "100"), ("12345678901234567890", "12345678901234567000"),
    ("9007199254740993", "9007199254740992"), ("0.1", "0.1"), ("-2.5e-10", "-2.5e-10"),
    ("123.456", "123.456"), ("5e-324", "5e-324"),
    ("1.7976931348623157e308", "1.7976931348623157e+308"), ("0.00001234", "0.00001234"),
    ("1.2345e-7", "1.2345e-7"), ("123e18", "123000000000000000000"),
    ("123e19", "1.23e+21"),
])
def test_numbers_as_javascript_prints_a_double(literal, text):
    assert number_text(literal) == text


def test_strings_escape_as_json_stringify():
    assert string_text('a"b\\c') == '"a\\"b\\\\c"'
    assert string_text("\b\f\n\r\t") == '"\\b\\f\\n\\r\\t"'
    assert string_text("\x00\x01\x1f") == '"\\u0000\\u0001\\u001f"'
    assert string_text("\x7f\u2028\u2029/é😀") == '"\x7f\u2028\u2029/é😀"'
    assert string_text("\ud800x\udfff") == '"\\ud800x\\udfff"'


def test_integer_like_keys_first_ascending():
    value = loads('{"zz": 1, "10": true, "a": "x", "2": null, "4294967295": 0, "01": 0,'
                  ' "4294967294": 1}')
    assert stringify(value) == ('{"2":null,"10":true,"4294967294":1,"zz":1,"a":"x",'
                                '"4294967295":0,"01":0}')
    assert is_index_key("0") and not is_index_key("-1") and not is_index_key("1.0")


def test_no_whitespace_and_nested():
    text = '{"a": [1, {"b": {}}, []], "c": null}'
    assert stringify(loads(text)) == '{"a":[1,{"b":{}},[]],"c":null}'


# --- against a real JavaScript engine ----------------------------------------------------

_LITERALS = st.one_of(
    st.sampled_from(["1e21", "1.5e-7", "-0", "1e-7", "1.50", "12345678901234567890",
                     "9007199254740993", "1e300", "2.5E-5", "0.1", "1e+21", "-1e-7"]),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(
        lambda text: text not in ("inf", "-inf")),
)
_KEYS = st.one_of(st.text(max_size=6), st.integers(0, 2**33).map(str),
                  st.sampled_from(["0", "01", "4294967294", "4294967295", "-1", "1.5"]))
_STRINGS = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _LITERALS.map(JsonbNumber), _STRINGS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(_KEYS, inner), max_size=5)),
    max_leaves=12)


def _json_text(value) -> str:
    """JSON text with number literals as given and keys in the given order (lists of
    pairs are objects, so a repeated key reaches the parser as written)."""
    if isinstance(value, JsonbNumber):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: lone surrogates travel as escapes


def _as_python(value):
    """The value as Python holds a parsed object: a dict keeps a key's first place and
    its last value, as a JavaScript object does."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        out: dict = {}
        for k, v in value:
            out[k] = _as_python(v)
        return out
    if isinstance(value, list):
        return [_as_python(v) for v in value]
    return value


class Node:
    """One node process for the whole test, answering a line per line: JSON.stringify of
    JSON.parse of the JSON text each line carries (as a JSON string)."""

    SCRIPT = ("const rl = require('readline').createInterface({input: process.stdin});"
              "rl.on('line', l => process.stdout.write("
              "JSON.stringify(JSON.stringify(JSON.parse(JSON.parse(l)))) + '\\n'));")

    def __init__(self) -> None:
        self.proc = subprocess.Popen([NODE, "-e", self.SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def __call__(self, text: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(text) + "\n").encode())
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def node():
    engine = Node()
    yield engine
    engine.close()


@pytest.mark.skipif(NODE is None, reason="no JavaScript engine (node) installed")
@settings(max_examples=150, deadline=None)
@given(value=_VALUES)
def test_stringify_is_javascripts(node, value):
    assert stringify(_as_python(value)) == node(_json_text(value))


@settings(max_examples=200, deadline=None)
@given(_LITERALS)
def test_number_text_round_trips_and_is_shortest(literal):
    """Without node: the text denotes the same double, in no more digits than repr."""
    text = number_text(literal)
    assert float(text) == float(literal) or float(literal) == 0
    digits = text.lstrip("-").split("e")[0].replace(".", "").strip("0")
    assert len(digits) <= 17


def test_caracal_samples_stringify_alike():
    """The Admin API page Caracal's own code wrote (JSON.stringify of node-postgres rows)
    is byte for byte what stringify writes of it."""
    path = VECTORS / "upstream" / "admin" / "admin-audit-zone-alpha.json"
    text = path.read_text(encoding="utf-8").rstrip("\n")
    assert stringify(loads(text)) == text
