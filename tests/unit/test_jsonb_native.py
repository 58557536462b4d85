"""The optional C jsonb kernel against the Python reference, PostgreSQL, and the readers.

The kernel must render what ``jsonb.dumps(jsonb.loads(text))`` renders and reject what it
rejects; the JSON lines readers must give identical rows, errors and skipped-line counts
with and without it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.jsonb_strategies import (
    DROP,
    EXTREME,
    GOOD_EVENT,
    REJECTED,
    VALID,
    compare_readers,
    compare_with_postgres,
    event_line,
    fuzz_doc,
    maybe_broken,
    reference,
    try_jsonb_database,
    vector_pairs,
)
from support.paths import FIXTURE_EXPORT as FIXTURES
from support.paths import VECTOR_EXPORT as VECTORS
from support.pgserver import PgServer

from caracal_forensics import jsonb_native
from caracal_forensics.sources import cli_jsonl, db_jsonl
from caracal_forensics.sources._lines import _native_spec, map_row

pytestmark = pytest.mark.skipif(jsonb_native._native is None, reason="C kernel not built")



def _kernel(raw: str | bytes) -> str | None:
    try:
        return jsonb_native.canonical(raw)
    except ValueError:
        return None


def _same(raw: str) -> None:
    ours = reference(raw)
    assert _kernel(raw) == ours, f"input {raw!r}"
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert _kernel(encoded) == ours, f"input {raw!r} as bytes"


# -- the kernel alone -------------------------------------------------------------------


@pytest.mark.parametrize("raw,expected", vector_pairs())
def test_vectors(raw: str, expected: str) -> None:
    assert jsonb_native.canonical(raw) == expected
    assert jsonb_native.canonical(raw.encode("utf-8")) == expected


@pytest.mark.parametrize("raw", REJECTED)
def test_rejects_what_the_reference_rejects(raw: str) -> None:
    assert reference(raw) is None
    with pytest.raises(ValueError):
        jsonb_native.canonical(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'"\xff"',
        b'"\xc0\x80"',  # overlong NUL
        b'"\xed\xa0\x80"',  # an encoded surrogate
        b'"\xf4\x90\x80\x80"',  # above U+10FFFF
        b'"\xe2\x82"',  # cut short
        b"\xc3\xa9",
    ],
)
def test_bytes_must_be_utf8(raw: bytes) -> None:
    with pytest.raises(ValueError):
        jsonb_native.canonical(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "1e131071",
        "0e-16383",
        "0e1073741822",
        "-0.0e-2",
        "123.456e-10",
        "1e0000000000000000000000001",
        "9" * 999,
        "-" + "0" * 1 + "." + "0" * 1200,
        "1." + "5" * 1500,
        "[" + ",".join(str(i) + "e-" + str(i) for i in range(60)) + "]",
        '{"é": 1, "z": 2, "\\u00e9": 3, "😀": [], "\\ud83d\\ude00": {}, "aa": null}',
        '"\\u001f\\u007f\\u2028\\/\\b\\f\\n\\r\\t\\"\\\\ \u2029 \\uFFFF"',
    ],
)
def test_edge_cases(raw: str) -> None:
    _same(raw)


def test_nesting_beyond_the_kernel_is_the_reference_decision() -> None:
    for depth in (150, 300):
        raw = "[" * depth + "]" * depth
        assert jsonb_native.canonical(raw) == raw
    raw = '{"a":' * 600 + "1" + "}" * 600
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonb_native.canonical(raw)
    assert jsonb_native._native.canonical(raw) is None


def test_type_error() -> None:
    with pytest.raises(TypeError):
        jsonb_native.canonical(1)  # type: ignore[arg-type]


@given(VALID)
@settings(max_examples=400, deadline=None)
def test_matches_reference(raw: str) -> None:
    _same(raw)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(maybe_broken())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_reference_including_rejections(raw: str) -> None:
    _same(raw)


@given(EXTREME)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_reference_extreme_numbers(raw: str) -> None:
    _same(raw)


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_matches_reference_on_any_text(raw: str) -> None:
    _same(raw)


@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_fuzz(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(3000):
        _same(fuzz_doc(rng))


# -- against PostgreSQL -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_native(pg: PgServer) -> Iterator[object]:
    with try_jsonb_database(pg, "jsonb_native_reference") as conn:
        yield conn


def test_matches_postgres_fuzz(pg_native: object) -> None:
    rng = random.Random(20261128)
    compare_with_postgres(pg_native, [fuzz_doc(rng) for _ in range(400)], _kernel)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(st.lists(maybe_broken(), min_size=10, max_size=40))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_postgres_including_rejections(pg_native: object, texts: list[str]) -> None:
    compare_with_postgres(pg_native, texts, _kernel)


def test_vectors_match_postgres(pg_native: object) -> None:
    compare_with_postgres(pg_native, [raw for raw, _ in vector_pairs()], _kernel)


# -- the readers, with and without the kernel -------------------------------------------


@pytest.mark.parametrize(
    "module,path",
    [
        (db_jsonl, VECTORS / "db.jsonl"),
        (cli_jsonl, VECTORS / "cli.jsonl"),
        (db_jsonl, FIXTURES / "db.jsonl.gz"),
        (cli_jsonl, FIXTURES / "cli.jsonl.zst"),
    ],
)
def test_readers_identical_on_exports(module: object, path: Path, monkeypatch) -> None:
    table, *_ = compare_readers(module, str(path), monkeypatch)
    assert table.num_rows > 0


def test_native_spec_covers_the_event_shapes() -> None:
    from caracal_forensics.model import EVENT_SCHEMA

    for shape in ("db_jsonl", "cli_jsonl"):
        assert _native_spec(shape, EVENT_SCHEMA, ("occurred_at", "ingested_at"))
    assert not _native_spec("alerts_jsonl", EVENT_SCHEMA, ("occurred_at", "ingested_at"))


_TRICKY_LINES = [
    event_line(),
    "",
    "   ",
    event_line(id="e2", evaluation_status=DROP, ingest_signature=DROP),
    event_line(id="e3", chain_seq="12"),  # a digit string: accepted by the Python path
    event_line(id="e4", chain_seq=-0),
    event_line(id="e5", chain_seq=2**70),  # too big for int64
    event_line(id="e6", chain_seq=1.5),
    event_line(id="e7", chain_seq=None, metadata_json=None),
    event_line(id=5),
    event_line(id=""),
    event_line(id=None),
    event_line(zone_id=DROP),
    event_line(id="e8", decision=["allow"]),
    event_line(id="e9", occurred_at=12),
    event_line(
        id="e10", metadata_json="a string", diagnostics_json=3, determining_policies_json=True
    ),
    event_line(id="e11", request_id="line\u2028separator \U0001f600 \x01"),
    '{"id": "e12", "id": "e13", "zone_id": 1, "zone_id": "z", '
    '"occurred_at": "2026-05-11T08:00:03Z"}',
    '{"id": "e14", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "x": [1e1073741823]}',
    '{"id": "e15", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "x": "\\u0000"}',
    '{"id": "e16", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"',
    '["not", "an", "object"]',
    '{"id": "e17", "zone_id": "z", "occurred_at": "not a time"}',
    '{"id": "e18", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "metadata_json":'
    ' {"a": 1, "a": {"\\ud83d\\ude00": -0.0e1}}, "chain_seq": 9, "chain_seq": 10}',
    '{"\\u0069d": "e19", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"}',
    "\t" + event_line(id="e20") + "  \r",
    '{"id": "e21", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "chain_seq": 1e2}',
    '{"id": "e22", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "chain_seq": '
    + "9" * 19
    + "}",
    '{"id": "e24", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "deep": '
    + "[" * 250
    + "]" * 250
    + "}",
    "{}",
]


def _write(tmp_path: Path, lines: list[str], raw_tail: bytes = b"", name: str = "x.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n" + raw_tail)
    return str(path)


@pytest.mark.parametrize(
    "tail", [b"", b'{"id": "cut', b"\xff\xfe\n", event_line(id="last").encode()]
)
def test_readers_identical_on_tricky_lines_skipping(tmp_path: Path, monkeypatch, tail) -> None:
    # without the lines that fail the whole batch (not skippable): see line_by_line
    unskippable = ('"e5"', '"e22"', "not a time")
    lines = [line for line in _TRICKY_LINES if not any(u in line for u in unskippable)]
    path = _write(tmp_path, lines, tail)
    for module in (db_jsonl, cli_jsonl):
        table, count, first, *_ = compare_readers(module, path, monkeypatch, skip=True)
        assert count > 0 and first and table.num_rows > 5


@pytest.mark.parametrize("index", range(len(_TRICKY_LINES)))
def test_readers_identical_line_by_line(tmp_path: Path, monkeypatch, index: int) -> None:
    path = _write(tmp_path, [event_line(id="first"), _TRICKY_LINES[index], event_line(id="last")])
    for module in (db_jsonl, cli_jsonl):
        compare_readers(module, path, monkeypatch)
        compare_readers(module, path, monkeypatch, skip=True)


def test_readers_identical_in_small_batches(tmp_path: Path, monkeypatch) -> None:
    from caracal_forensics.sources import _batch

    monkeypatch.setattr(_batch, "BATCH_ROWS", 3)
    monkeypatch.setattr(
        _batch.rows_to_batches,
        "__defaults__",
        (_event_schema(), ("occurred_at", "ingested_at"), 3),
    )
    good = [event_line(id=f"e{i}") for i in range(10)]
    path = _write(tmp_path, good + _TRICKY_LINES)
    assert compare_readers(db_jsonl, path, monkeypatch, skip=True)[0] == "error"  # the same error
    path = _write(tmp_path, good + [line for line in _TRICKY_LINES if "e5" not in line])
    for skip in (True, False):
        compare_readers(db_jsonl, path, monkeypatch, skip=skip)
    path = _write(tmp_path, good + _TRICKY_LINES[:5])
    _, _, _, sizes, _ = compare_readers(db_jsonl, path, monkeypatch, skip=True)
    assert sizes == [3, 3, 3, 3, 1]


def _event_schema() -> pa.Schema:
    from caracal_forensics.model import EVENT_SCHEMA

    return EVENT_SCHEMA


_TEXT = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 5), st.booleans())
_NESTED = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def _rows(draw: st.DrawFn) -> str:
    keys = list(GOOD_EVENT)
    obj: dict[str, object] = {}
    for key in keys:
        if draw(st.integers(0, 9)) == 0:
            continue  # absent
        if key in ("determining_policies_json", "diagnostics_json", "metadata_json"):
            obj[key] = draw(_NESTED)
        elif key == "chain_seq":
            obj[key] = draw(st.one_of(st.none(), st.integers(-(2**70), 2**70), st.text(max_size=3)))
        elif key in ("occurred_at", "ingested_at"):
            obj[key] = draw(st.sampled_from([None, "2026-05-11T08:00:03.5+00:00", "x", 3]))
        elif key in ("id", "zone_id"):
            obj[key] = draw(st.one_of(st.just("v"), _TEXT))
        else:
            obj[key] = draw(_TEXT)
    if draw(st.booleans()):
        obj["extra"] = draw(_NESTED)
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


@given(st.lists(_rows(), min_size=1, max_size=8))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_readers_identical_on_generated_rows(tmp_path_factory, monkeypatch, lines) -> None:
    path = _write(tmp_path_factory.mktemp("rows"), lines)
    compare_readers(db_jsonl, path, monkeypatch, skip=True)
    compare_readers(db_jsonl, path, monkeypatch, skip=False)


def test_parse_row_matches_map_row() -> None:
    spec = _native_spec("db_jsonl", _event_schema(), ("occurred_at", "ingested_at"))
    from caracal_forensics.jsonb import loads

    for raw in [event_line(), event_line(evaluation_status=DROP), _TRICKY_LINES[-7]]:
        row = jsonb_native.parse_row(raw.encode(), spec, {"k": 1})
        expected = map_row(loads(raw), db_jsonl.MAPPING)
        expected["k"] = 1
        assert row == expected
    assert jsonb_native.parse_row(b"[1]", spec, {}) is None
    assert jsonb_native.parse_row(event_line(id=5).encode(), spec, {}) is None


def test_parallel_reader_without_the_kernel_gives_the_kernel_rows(monkeypatch) -> None:
    import caracal_forensics as cf
    from caracal_forensics.sources import _parallel

    for path in (VECTORS / "db.jsonl", VECTORS / "cli.jsonl"):
        fast = cf.open(str(path)).sql("SELECT * FROM events ORDER BY source_line")
        with monkeypatch.context() as m:
            # the kernel keeps a file in-process; without it, large files go to workers
            m.setattr(jsonb_native, "AVAILABLE", False)
            m.setattr(_parallel, "PARALLEL_MIN_BYTES", 0)
            m.setattr(_parallel, "BLOCK_BYTES", 20_000)
            m.setenv(_parallel.WORKERS_ENV, "2")
            slow = cf.open(str(path)).sql("SELECT * FROM events ORDER BY source_line")
        assert slow.equals(fast), path
        assert fast["source_line"].to_list() == list(range(1, 241))
