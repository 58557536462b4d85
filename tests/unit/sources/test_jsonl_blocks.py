"""JSON lines read in blocks by the C kernel, on threads, against the pure-Python path.

The block reader (``Columns.add_block`` without the GIL, ``_parallel.line_blocks`` and
``native_pieces``, ``_lines.batches_from_pieces``) must give exactly what the Python
reader gives: the same rows, errors, skipped-line counts, line numbers and batch
boundaries, whatever the block and read sizes, the number of threads and the input.
"""

from __future__ import annotations

import gc
import gzip
import json
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.jsonb_strategies import compare_readers, event_line, read_events
from support.paths import VECTOR_EXPORT as VECTORS

from caracal_forensics import jsonb_native
from caracal_forensics.errors import InputError
from caracal_forensics.model import EVENT_SCHEMA
from caracal_forensics.sources import _batch, _parallel, cli_jsonl, db_jsonl
from caracal_forensics.sources._batch import BadLines
from caracal_forensics.sources._lines import _native_spec

pytestmark = pytest.mark.skipif(jsonb_native._native is None, reason="C kernel not built")

TIMESTAMPS = ("occurred_at", "ingested_at")


def _good(i: int) -> bytes:
    return event_line(id=f"e{i}", chain_seq=i).encode()


#: Lines the kernel leaves to the Python path (or skips, or that fail), one per case.
_ODD = [
    b"",
    b"   ",
    b" \x0b\x0c\t",
    b"\r",
    event_line(id="s1", chain_seq="12").encode(),  # a digit string: the Python path accepts it
    event_line(id=5).encode(),  # bad: id must be a string
    event_line(id="").encode(),  # bad: required and empty
    b'{"id": "d1", "id": "d2", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"}',
    b'{"id": "x1", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z", "x": "\\u0000"}',
    b'{"id": "x2", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"',  # cut
    b'["not", "an", "object"]',
    b"\xff\xfe not utf-8",
    b'{"id": "n\x00ul", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"}',
    b'{"id": "crlf", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"}\r',
    b'{"\\u0069d": "esc", "zone_id": "z", "occurred_at": "2026-05-11T08:00:03Z"}',
    b"\t" + event_line(id="tab").encode() + b"  \r",
    b"{}",
    b"{",
    b'"',
]


def _write(path: Path, lines: list[bytes], newline_at_end: bool = True) -> str:
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline_at_end else b""))
    return str(path)


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch):
    """Tiny batches, blocks and reads: every boundary lands somewhere inside a line."""

    def configure(batch_rows: int = 3, read_bytes: int = 50, workers: int = 2) -> None:
        monkeypatch.setattr(_batch, "BATCH_ROWS", batch_rows)
        monkeypatch.setattr(
            _batch.rows_to_batches, "__defaults__", (EVENT_SCHEMA, TIMESTAMPS, batch_rows)
        )
        monkeypatch.setattr(_parallel, "READ_BYTES", read_bytes)
        monkeypatch.setenv(_parallel.WORKERS_ENV, str(workers))

    configure()
    return configure


# --- the kernel's block entry point ------------------------------------------------------


def _spec() -> tuple:
    return _native_spec("db_jsonl", EVENT_SCHEMA, TIMESTAMPS)


def test_add_block_appends_plain_lines_and_stops_at_the_first_other() -> None:
    spec = _spec()
    builder = jsonb_native.columns(spec)
    lines = [_good(1), b"", b"  \r", _good(2), event_line(id=5).encode(), _good(3)]
    data = b"\n".join(lines) + b"\n"
    pos, line, stopped = builder.add_block(data, 0, len(data), 10)
    assert stopped and line == 14
    assert data[pos:].startswith(lines[4])
    assert len(builder) == 2
    # resume after the odd line: the rest, to the end
    after = data.index(b"\n", pos) + 1
    pos, line, stopped = builder.add_block(data, after, len(data), 15)
    assert (pos, line, stopped) == (len(data), 16, False)
    rows, columns, numbers = jsonb_native.arrays(builder, spec)
    assert rows == 3
    assert numbers.to_pylist() == [10, 13, 15]
    assert columns["id"].to_pylist() == ["e1", "e2", "e3"]
    assert columns["chain_seq"].to_pylist() == [1, 2, 3]
    assert len(builder) == 0


def test_add_block_reads_nothing_beyond_end() -> None:
    """A line cut by ``end`` is the last line of the block, without its newline: the kernel
    must not look past it (it parses as cut JSON, for the Python path to judge)."""
    spec = _spec()
    good = _good(1) + b"\n"
    data = good + _good(2) + b"\n"
    builder = jsonb_native.columns(spec)
    for end in range(len(good), len(data)):
        pos, line, stopped = builder.add_block(data, 0, end, 1)
        cut_is_whole = end == len(data) - 1  # only the newline is missing
        assert len(builder) == (2 if cut_is_whole else 1)
        assert stopped == (not cut_is_whole and end > len(good))
        assert pos == (len(good) if stopped else end)
        jsonb_native.arrays(builder, spec)


def test_add_block_refuses_a_range_outside_the_data() -> None:
    builder = jsonb_native.columns(_spec())
    for start, end in [(-1, 3), (0, 100), (5, 2)]:
        with pytest.raises(ValueError):
            builder.add_block(b"{}\n", start, end, 1)
    with pytest.raises(TypeError):
        builder.add_block("text", 0, 1, 1)


def test_add_block_takes_any_buffer() -> None:
    spec = _spec()
    data = _good(1) + b"\n" + _good(2) + b"\n"
    for wrapped in (bytearray(data), memoryview(data), memoryview(data)[0:]):
        builder = jsonb_native.columns(spec)
        assert builder.add_block(wrapped, 0, len(data), 1) == (len(data), 3, False)
        assert len(builder) == 2


def test_finished_columns_outlive_the_builder() -> None:
    spec = _spec()
    builder = jsonb_native.columns(spec)
    data = b"".join(_good(i) + b"\n" for i in range(1000))
    builder.add_block(data, 0, len(data), 1)
    rows, columns, numbers = jsonb_native.arrays(builder, spec)
    builder.add_block(data, 0, len(data), 1)  # reuses nothing handed over
    del builder
    gc.collect()
    assert rows == 1000
    assert columns["id"].to_pylist() == [f"e{i}" for i in range(1000)]
    assert numbers.to_pylist() == list(range(1, 1001))
    columns["metadata_json"].validate(full=True)


def test_huge_lines_and_hostile_bytes_do_not_crash() -> None:
    spec = _spec()
    builder = jsonb_native.columns(spec)
    huge = event_line(id="big", request_id="x" * (12 << 20), metadata_json={"k": "é" * 100000})
    hostile = [
        huge.encode(),
        b"\x00" * 1000,
        b'{"id": "' + b"\xc3" * 5000,
        b'{"id": "\\ud800", "zone_id": "z"}',
        b"[" * 100000,
        b'{"a":' * 50000,
        b'{"id": "e", "zone_id": "z", "occurred_at": "t", "chain_seq": 99999999999999999999}',
        bytes(range(256)) * 40,
    ]
    data = b"\n".join(hostile)
    pos, line = 0, 1
    while pos < len(data):
        pos, line, stopped = builder.add_block(data, pos, len(data), line)
        if stopped:
            newline = data.find(b"\n", pos)
            pos, line = (len(data) if newline < 0 else newline + 1), line + 1
    rows, columns, _ = jsonb_native.arrays(builder, spec)
    assert rows == 1
    assert len(columns["request_id"][0].as_py()) == 12 << 20


def test_find_lines() -> None:
    data = b"a\nbb\n\nccc"
    assert jsonb_native.find_lines(data, 0, len(data), 2) == (5, 2)
    assert jsonb_native.find_lines(data, 0, len(data), 9) == (len(data), 3)
    assert jsonb_native.find_lines(data, 2, 4, 1) == (4, 0)
    assert jsonb_native.find_lines(data, 0, len(data), 0) == (0, 0)
    with pytest.raises(ValueError):
        jsonb_native.find_lines(data, 0, 99, 1)


# --- blocks of the file -------------------------------------------------------------------


@pytest.mark.parametrize("read_bytes", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("block_lines", [1, 2, 5])
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_line_blocks_cover_the_file_in_whole_lines(
    tmp_path: Path, monkeypatch, read_bytes: int, block_lines: int, newline_at_end: bool
) -> None:
    monkeypatch.setattr(_parallel, "READ_BYTES", read_bytes)
    lines = [_good(i) for i in range(11)] + [b"", b"x" * 300, b"\r"]
    path = _write(tmp_path / "f.jsonl", lines, newline_at_end)
    content = Path(path).read_bytes()
    seen, expected_first = b"", 1
    blocks = list(_parallel.line_blocks(path, block_lines))
    for i, (data, start, end, first) in enumerate(blocks):
        piece = bytes(memoryview(data)[start:end])
        assert first == expected_first
        newlines = piece.count(b"\n")
        if i < len(blocks) - 1:
            assert newlines == block_lines and piece.endswith(b"\n")
        expected_first += newlines
        seen += piece
    assert seen == content


def test_line_blocks_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert list(_parallel.line_blocks(str(path), 4)) == []


# --- the readers: identical to the Python path ------------------------------------------


def test_reader_matches_on_the_exports(small, monkeypatch) -> None:
    for batch_rows, read_bytes, workers in [(3, 50, 2), (7, 1000, 1), (64, 1 << 20, 2)]:
        small(batch_rows, read_bytes, workers)
        for module, name in [(db_jsonl, "db.jsonl"), (cli_jsonl, "cli.jsonl")]:
            table, *_ = compare_readers(module, str(VECTORS / name), monkeypatch, skip=False)
            assert table.num_rows == 240


@pytest.mark.parametrize("index", range(len(_ODD)))
@pytest.mark.parametrize("where", ["start", "middle", "end", "last without newline"])
def test_odd_line_anywhere_in_a_block(tmp_path: Path, small, monkeypatch, index, where) -> None:
    good = [_good(i) for i in range(8)]
    at = {"start": 0, "middle": 4, "end": 8, "last without newline": 8}[where]
    lines = good[:at] + [_ODD[index]] + good[at:]
    if where == "last without newline":
        lines = good + [_ODD[index]]
    path = _write(tmp_path / "x.jsonl", lines, newline_at_end=where != "last without newline")
    for skip in (False, True):
        for batch_rows in (1, 3, 4, 100):
            small(batch_rows, 37)
            compare_readers(db_jsonl, path, monkeypatch, skip)


def test_skip_counts_and_line_numbers_across_blocks(tmp_path: Path, small, monkeypatch) -> None:
    lines = []
    for i in range(30):
        lines.append(_good(i))
        if i % 4 == 1:
            lines.append(event_line(id=i).encode())  # bad: skipped
        if i % 5 == 2:
            lines.append(b"")
    path = _write(tmp_path / "x.jsonl", lines)
    table, count, first, sizes, numbers = compare_readers(db_jsonl, path, monkeypatch, skip=True)
    assert count == 8
    assert first.endswith("id must be a string or null, not a number") and "line 3" in first
    assert sizes == [3] * 10
    assert [n for batch in numbers for n in batch][:4] == [1, 2, 4, 6]
    error = compare_readers(db_jsonl, path, monkeypatch, skip=False)
    assert error[0] == "error" and ": line 3: " in error[2]


def test_crlf_lines(tmp_path: Path, small, monkeypatch) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"".join(_good(i) + b"\r\n" for i in range(10)) + b"\r\n\r\n")
    table, *_ = compare_readers(db_jsonl, str(path), monkeypatch, skip=False)
    assert table.num_rows == 10


def test_int_beyond_int64_is_a_bad_line_on_both_paths(tmp_path, small, monkeypatch):
    big = event_line(id="big", chain_seq=str(2**70)).encode()
    for at in (0, 2, 5, 9):
        lines = [_good(i) for i in range(10)]
        lines.insert(at, big)
        path = _write(tmp_path / f"big{at}.jsonl", lines)
        error = compare_readers(db_jsonl, path, monkeypatch, skip=False)
        assert error[0] == "error" and error[1] == "InputError"
        assert f"line {at + 1}: chain_seq {2**70} is out of range" in error[2]
        table, skipped, first, *_ = compare_readers(db_jsonl, path, monkeypatch, skip=True)
        assert table.num_rows == 10 and skipped == 1 and f"line {at + 1}" in first


def test_bad_timestamp_fails_its_batch_as_the_python_path(tmp_path, small, monkeypatch):
    """Workers cast timestamps per block; a block that fails is cast again per batch, so the
    error names the same line, and batches mixing cast and uncast blocks come out right."""
    for at in (0, 4, 9):
        lines = [_good(i) for i in range(10)]
        lines.insert(at, event_line(id="t", occurred_at="not a time").encode())
        path = _write(tmp_path / f"t{at}.jsonl", lines)
        for batch_rows in (2, 3, 5, 100):
            small(batch_rows, 64)
            result = compare_readers(db_jsonl, path, monkeypatch, skip=True)
            assert result[0] == "error" and f"line {at + 1}" in result[2]
    lines = [_good(i) for i in range(10)]
    lines[5] = event_line(id="t", occurred_at=None).encode()
    path = _write(tmp_path / "null.jsonl", lines)
    small(3, 64)
    compare_readers(db_jsonl, path, monkeypatch, skip=False)


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_inputs(tmp_path: Path, small, monkeypatch, compress) -> None:
    raw = (VECTORS / "db.jsonl").read_bytes()
    packed = gzip.compress(raw) if compress == "gzip" else zstandard.compress(raw)
    path = tmp_path / "db.jsonl.x"
    path.write_bytes(packed)
    for batch_rows in (3, 50, 1000):
        small(batch_rows, 300)
        compare_readers(db_jsonl, str(path), monkeypatch, skip=False)
    cut = tmp_path / "cut.jsonl.x"
    cut.write_bytes(packed[:-400])
    for batch_rows in (3, 50, 1000):
        small(batch_rows, 300)
        for skip in (False, True):
            result = compare_readers(db_jsonl, str(cut), monkeypatch, skip)
            if compress == "gzip":
                assert result[0] == "error" and "truncated or unreadable" in result[2]


def test_one_thread_and_two_give_the_same(tmp_path: Path, small, monkeypatch) -> None:
    lines = [_good(i) for i in range(50)]
    lines[17:17] = [_ODD[4], _ODD[0], _ODD[7]]
    path = _write(tmp_path / "x.jsonl", lines)
    results = []
    for workers in (1, 2, 3):
        small(4, 100, workers)
        results.append(read_events(db_jsonl, path, True, False, monkeypatch))
    for other in results[1:]:
        assert other[1:] == results[0][1:]
        assert other[0].equals(results[0][0])


def test_a_reader_stopped_early_leaves_no_trouble(tmp_path: Path, small) -> None:
    small(2, 40)
    path = _write(tmp_path / "x.jsonl", [_good(i) for i in range(40)])
    reader = db_jsonl.read(path, BadLines())
    first = next(iter(reader))
    assert first.num_rows == 2
    reader.close()
    assert sum(b.num_rows for b in db_jsonl.read(path, BadLines())) == 40


_NESTED = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3)),
    lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=2), c, max_size=2),
    max_leaves=5,
)
_OBJECTS = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just("v"), st.none(), st.integers(0, 3), st.text(max_size=3)),
        "zone_id": st.sampled_from(["z", "", None]),
        "occurred_at": st.sampled_from(["2026-05-11T08:00:03.5+00:00", "x", None]),
    },
    optional={
        "chain_seq": st.one_of(st.none(), st.integers(-(2**64), 2**64), st.text(max_size=2)),
        "metadata_json": _NESTED,
    },
)
_LINES = st.one_of(
    st.sampled_from(_ODD),
    st.integers(0, 99).map(_good),
    st.builds(
        lambda obj, crlf: json.dumps(obj).encode() + (b"\r" if crlf else b""),
        _OBJECTS,
        st.booleans(),
    ),
    st.binary(max_size=12),
)


@given(
    lines=st.lists(_LINES, max_size=14),
    newline_at_end=st.booleans(),
    batch_rows=st.integers(1, 6),
    read_bytes=st.sampled_from([1, 13, 80, 4096]),
    workers=st.sampled_from([1, 2]),
    skip=st.booleans(),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_block_reader_matches_the_python_path(
    tmp_path_factory,
    small,
    monkeypatch,
    lines,
    newline_at_end,
    batch_rows,
    read_bytes,
    workers,
    skip,
) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    small(batch_rows, read_bytes, workers)
    path = _write(tmp_path_factory.mktemp("blocks") / "x.jsonl", lines, newline_at_end)
    compare_readers(db_jsonl, path, monkeypatch, skip)
    compare_readers(cli_jsonl, path, monkeypatch, skip)


# --- jsonb objects: written in one pass when their keys come in jsonb order -------------

_KEYS = st.text(alphabet='abc\u00e9\\"\n', max_size=2)


def _object_text(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {v}" for k, v in pairs) + "}"


#: JSON texts whose objects have keys in any order, duplicates included
_DOCS = st.recursive(
    st.one_of(st.just("null"), st.integers(-5, 5).map(str), _KEYS.map(json.dumps)),
    lambda c: (
        st.lists(c, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.lists(st.tuples(_KEYS, c), max_size=5).map(_object_text)
    ),
    max_leaves=12,
)


@given(text=_DOCS)
@settings(max_examples=500, deadline=None)
def test_objects_in_any_key_order_render_as_the_reference(text) -> None:
    from caracal_forensics.jsonb import jsonb_text

    assert jsonb_native.canonical(text) == jsonb_text(text)
    assert jsonb_native.canonical(text.encode()) == jsonb_text(text)


def test_objects_out_of_order_at_every_depth_are_parsed_once() -> None:
    import time

    text = '{"b": ' * 150 + "1" + ', "a": 1}' * 150
    started = time.perf_counter()
    rendered = jsonb_native.canonical(text)
    assert time.perf_counter() - started < 1.0
    assert rendered == '{"a": 1, "b": ' * 150 + "1" + "}" * 150


def test_a_line_longer_than_many_reads(tmp_path: Path, small, monkeypatch) -> None:
    small(2, 1000)
    lines = [_good(1), event_line(id="long", request_id="r" * 300_000).encode(), _good(2)]
    path = _write(tmp_path / "long.jsonl", lines)
    table, *_ = compare_readers(db_jsonl, path, monkeypatch, skip=False)
    assert table.column("request_id")[1].as_py() == "r" * 300_000


def test_a_stream_that_cannot_seek(tmp_path: Path, monkeypatch) -> None:
    """A plain file is read again from where its last whole block ended; a stream that
    cannot seek is read as a compressed one is (what is left over leads the next read)."""
    import io

    lines = [_good(i) for i in range(23)] + [b"", b"tail without newline"]
    content = b"\n".join(lines)
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)

    class Unseekable(io.BufferedReader):
        def seekable(self) -> bool:
            return False

    real = _parallel.open_binary
    monkeypatch.setattr(_parallel, "open_binary", lambda p: Unseekable(io.FileIO(p)))
    monkeypatch.setattr(_parallel, "READ_BYTES", 100)
    blocks = list(_parallel.line_blocks(str(path), 4))
    monkeypatch.setattr(_parallel, "open_binary", real)
    assert b"".join(bytes(memoryview(d)[s:e]) for d, s, e, _ in blocks) == content
    assert [first for *_, first in blocks] == [1, 5, 9, 13, 17, 21, 25]


def test_a_read_error_names_the_line_after_the_whole_ones(tmp_path: Path, monkeypatch) -> None:
    import io

    content = b"".join(_good(i) + b"\n" for i in range(30))
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    cut = len(content) // 2

    class Failing(io.BufferedReader):
        def readinto(self, buffer) -> int:
            if self.tell() >= cut:
                raise OSError(5, "Input/output error")
            view = memoryview(buffer)[: cut - self.tell()]
            return super().readinto(view)

    monkeypatch.setattr(_parallel, "open_binary", lambda p: Failing(io.FileIO(p)))
    monkeypatch.setattr(_parallel, "READ_BYTES", 1000)
    seen = []
    with pytest.raises(InputError) as caught:
        for data, start, end, _ in _parallel.line_blocks(str(path), 4):
            seen.append(bytes(memoryview(data)[start:end]))
    whole = content[:cut].count(b"\n")
    assert b"".join(seen) == b"".join(content.splitlines(keepends=True)[:whole])
    assert f"line {whole + 1}" in str(caught.value)


def test_a_reader_dropped_while_its_next_block_is_read_does_not_hang(monkeypatch) -> None:
    """The garbage collector may finalise a block reader left half-read on the reader
    thread, in the middle of that reader's own next read: closing it must not wait for
    that read, which is the very task running (a clean clone's test run hung so)."""
    import threading
    from concurrent.futures import Future

    from caracal_forensics.sources import _parallel

    class AtOnce:
        """Parses as it is handed a block, so the reader yields right after it asks the
        reader thread for the next one."""

        def submit(self, fn, *args):
            done: Future = Future()
            done.set_result(fn(*args))
            return done

    holder: list = []
    resume = threading.Event()

    def blocks(path, block_lines, tap=None, limit=None):
        yield memoryview(b"a\n"), 0, 2, 1
        resume.wait(10)
        holder.clear()  # the reader's last reference goes, on the reader thread
        yield memoryview(b"b\n"), 0, 2, 2

    monkeypatch.setenv(_parallel.WORKERS_ENV, "2")
    monkeypatch.setattr(_parallel, "_thread_pool", lambda size: AtOnce())
    monkeypatch.setattr(_parallel, "line_blocks", blocks)
    holder.append(_parallel.native_pieces("unused", lambda data, start, end, first: first))
    assert next(holder[0]) == 1
    resume.set()
    assert _parallel._reader().submit(lambda: "free").result(timeout=10) == "free"
    assert holder == []
