"""JSON lines and the per-row conversion shared by the JSON shapes.

Lines are split on b"\\n" only (U+2028 inside a string is not a line break). Each shape
module supplies ``parse_row(obj) -> dict``; it raises RowError for a row that does not fit,
and this module turns that into an InputError naming the file and line.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from ..errors import InputError
from ..jsonb import JsonbNumber, dumps, loads
from ..model import EVENT_SCHEMA, UTC_MICROS
from . import _batch
from ._batch import BadLines, count_skipped, parse_timestamps, rows_to_batches
from ._io import (  # noqa: F401 - LONG_LINE, numbered_lines: re-exported
    LONG_LINE,
    FileDigest,
    LongLine,
    numbered_lines,
    open_binary,
    too_long,
)

_INTEGER = re.compile(r"-?[0-9]+")


class RowError(ValueError):
    """A row that parsed as JSON but does not fit the shape (the message says why)."""


def json_objects(
    path: str, lines: Iterable[tuple[int, bytes]], bad: BadLines
) -> Iterator[tuple[int, dict]]:
    """(line number, parsed object) for each non-blank line; numbers keep literals."""
    for number, raw in lines:
        if not raw.strip():
            continue
        obj = _parse_line(path, number, raw, bad)
        if obj is not None:
            yield number, obj


def _parse_line(path: str, number: int, raw: bytes, bad: BadLines) -> dict | None:
    where = f"line {number}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad.handle(InputError(path, f"not UTF-8 text ({error.reason})", where))
        return None
    try:
        obj = loads(text)
    except ValueError as error:
        problem = "truncated JSON line" if not raw.endswith(b"\n") else f"malformed JSON: {error}"
        bad.handle(InputError(path, problem, where))
        return None
    if not isinstance(obj, dict):
        bad.handle(InputError(path, "expected a JSON object", where))
        return None
    return obj


def _python_rows(path: str, shape: str, bad: BadLines) -> Callable[[int, bytes], dict | None]:
    """``python_row(line, raw)``: the row of one line by the Python path, or None (a blank
    line, or a bad one that ``bad`` skips; ``bad`` raises otherwise)."""
    parse_row = _row_parser(shape)

    limit = bad.max_line

    def python_row(line: int, raw: bytes) -> dict | None:
        if len(raw) > limit and len(raw) - raw.endswith(b"\n") > limit:
            bad.handle(too_long(path, limit, f"line {line}"))
            return None
        if not raw.strip():
            return None
        obj = _parse_line(path, line, raw, bad)
        if obj is None:
            return None
        try:
            row = parse_row(obj)
        except RowError as error:
            bad.handle(InputError(path, str(error), f"line {line}"))
            return None
        row["source_file"] = path
        row["source_line"] = line
        row["source_shape"] = shape
        row.setdefault("occurred_at_digits", 6)
        return row

    return python_row


def _add_python_row(
    builder: object, names: list[str], row: dict, line: int, overflow: list[tuple[int, str, int]]
) -> None:
    """Append a row of the Python path to a kernel builder. An int beyond int64 (which
    rows_to_batches fails on when it builds the batch) is stored as null and remembered in
    ``overflow`` as (row index, field, value), so that its batch fails at the same point."""
    values = [row.get(name) for name in names]
    try:
        builder.add_values(values, line)  # type: ignore[attr-defined]
    except OverflowError:
        for i, value in enumerate(values):
            if type(value) is int and not -(2**63) <= value < 2**63:
                overflow.append((len(builder), names[i], value))  # type: ignore[arg-type]
                values[i] = None
        builder.add_values(values, line)  # type: ignore[attr-defined]


def parse_lines(
    path: str,
    lines: Iterable[tuple[int, bytes]],
    bad: BadLines,
    shape: str,
    schema: pa.Schema = EVENT_SCHEMA,
    timestamp_fields: tuple[str, ...] = ("occurred_at", "ingested_at"),
) -> Iterator[pa.RecordBatch]:
    """Record batches from numbered JSON lines of one shape (see ``ROW_PARSERS``)."""
    python_row = _python_rows(path, shape, bad)

    sizes: dict[int, int] = {}  # id(row) -> its line's bytes, until it is batched

    def rows() -> Iterator[dict]:
        for line, raw in lines:
            row = python_row(line, raw)
            if row is not None:
                sizes[id(row)] = len(raw)
                yield row

    def native_batches(spec: tuple) -> Iterator[pa.RecordBatch]:
        # The kernel appends a plain valid line's values straight to Arrow buffers;
        # anything else (a blank or bad line, a value of the wrong type, ...) it leaves to
        # python_row, so rows, errors, skipped lines and batch boundaries are exactly
        # those of the Python path (rows_to_batches).
        from .. import jsonb_native

        builder = jsonb_native.columns(spec)
        add = builder.add  # type: ignore[attr-defined]
        names = jsonb_native.field_names(spec)
        constants = _constants(path, shape)
        numbers: list[int] = []
        batch_rows = _batch.BATCH_ROWS  # read now: tests make it small
        batch_bytes, size = _batch.BATCH_BYTES, 0
        overflow: list[tuple[int, str, int]] = []

        def batch() -> pa.RecordBatch:
            _, arrays, _ = jsonb_native.arrays(builder, spec)
            first = _first_overflow(overflow)
            built = _columns_batch(
                arrays, numbers, constants, path, schema, timestamp_fields, first
            )
            overflow.clear()
            return built

        for line, raw in lines:
            if not add(raw):
                row = python_row(line, raw)
                if row is None:
                    continue
                _add_python_row(builder, names, row, line, overflow)
            numbers.append(line)
            size += len(raw)
            if len(numbers) >= batch_rows or size >= batch_bytes:
                yield batch()
                numbers, size = [], 0
        if numbers:
            yield batch()

    spec = _native_spec(shape, schema, timestamp_fields)
    if spec:
        yield from native_batches(spec)
    else:
        yield from rows_to_batches(rows(), path, schema, timestamp_fields,
                                   size_of=lambda row: sizes.pop(id(row)))


def _constants(path: str, shape: str) -> dict[str, object]:
    return {"source_file": path, "source_shape": shape, "occurred_at_digits": 6}


def _first_overflow(overflow: list[tuple[int, str, int]]) -> dict[str, int]:
    first: dict[str, int] = {}
    for _, name, value in overflow:
        first.setdefault(name, value)
    return first


# --- blocks of lines, parsed by the kernel without the GIL ------------------------------


@dataclasses.dataclass
class Piece:
    """What one block of lines gave: its rows as Arrow columns (spec fields and
    absent_fields) with their line numbers, the lines it skipped, and the error that
    stopped it (raised by the reader in file order, after the rows before it)."""

    rows: int
    columns: dict[str, pa.Array]
    lines: pa.Array
    overflow: list[tuple[int, str, int]] = dataclasses.field(default_factory=list)
    #: timestamp columns already cast (on the worker thread), where every value cast
    timestamps: dict[str, pa.Array] = dataclasses.field(default_factory=dict)
    skipped: int = 0
    first_skipped: str | None = None
    error: BaseException | None = None




def parse_block(
    path: str,
    shape: str,
    spec: tuple,
    skip: bool,
    max_line: int,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
    data: bytes | memoryview | LongLine,
    start: int,
    end: int,
    first_line: int,
) -> Piece:
    """The rows of the whole lines ``data[start:end]`` (numbered from ``first_line``): the
    kernel appends the plain valid ones without the GIL; each other line goes through the
    Python path, exactly as ``parse_lines`` treats it. Safe to run on several threads.
    ``LONG_LINE`` as ``data``: line ``first_line`` is past ``max_line``, refused or skipped."""
    import pyarrow.compute as pc

    from .. import jsonb_native

    bad = BadLines(skip=skip, max_line=max_line)
    if data is LONG_LINE:
        error: BaseException | None = None
        try:
            bad.handle(too_long(path, max_line, f"line {first_line}"))
        except InputError as failure:
            error = failure
        return Piece(0, {}, pa.array([], pa.int64()), skipped=bad.count,
                     first_skipped=bad.first, error=error)
    assert not isinstance(data, LongLine)
    python_row = _python_rows(path, shape, bad)
    builder = jsonb_native.columns(spec)
    names = jsonb_native.field_names(spec)
    overflow: list[tuple[int, str, int]] = []
    error = None
    pos, line = start, first_line
    while True:
        pos, line, stopped = builder.add_block(  # type: ignore[attr-defined]
            data, pos, end, line, max_line)
        if not stopped:
            break
        stop, _ = jsonb_native.find_lines(data, pos, end, 1)
        try:
            row = python_row(line, bytes(memoryview(data)[pos:stop]))
            if row is not None:
                _add_python_row(builder, names, row, line, overflow)
        except Exception as failure:  # InputError, or whatever the serial path would raise
            error = failure
            break
        pos, line = stop, line + 1
    rows, columns, lines = jsonb_native.arrays(builder, spec)
    timestamps = {}
    for name in timestamp_fields:
        if name in columns and schema.field(name).type == UTC_MICROS:
            try:
                timestamps[name] = pc.cast(columns[name], UTC_MICROS)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # cast again per batch, to name the first bad line as the Python path
    return Piece(rows, columns, lines, overflow, timestamps, bad.count, bad.first, error)


def batches_from_pieces(
    pieces: Iterable[Piece],
    path: str,
    bad: BadLines,
    shape: str,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
) -> Iterator[pa.RecordBatch]:
    """Batches of exactly BATCH_ROWS rows (the last fewer) from pieces in file order, as
    ``parse_lines`` cuts them; a piece's error is raised after the full batches before it."""
    batch_rows, batch_bytes = _batch.BATCH_ROWS, _batch.BATCH_BYTES
    constants = _constants(path, shape)
    queue: deque[tuple[Piece, int]] = deque()  # (piece, first row not yet taken)
    queued = 0

    def take(count: int) -> pa.RecordBatch:
        nonlocal queued
        parts: list[tuple[Piece, int, int]] = []  # (piece, offset, rows)
        wanted = count
        while wanted:
            piece, offset = queue[0]
            used = min(wanted, piece.rows - offset)
            parts.append((piece, offset, used))
            wanted -= used
            if offset + used == piece.rows:
                queue.popleft()
            else:
                queue[0] = (piece, offset + used)
        queued -= count
        overflow: dict[str, int] = {}
        for piece, offset, used in parts:
            for row, name, value in piece.overflow:
                if offset <= row < offset + used:
                    overflow.setdefault(name, value)
        whole = len(parts) == 1 and parts[0][1] == 0 and parts[0][2] == parts[0][0].rows
        columns = {}
        for name in parts[0][0].columns:
            if all(name in p.timestamps for p, _, _ in parts):
                arrays = [p.timestamps[name] for p, _, _ in parts]
            else:
                arrays = [p.columns[name] for p, _, _ in parts]
            columns[name] = arrays[0] if whole else _concat_parts(arrays, parts)
        lines = parts[0][0].lines if whole else _concat_parts([p.lines for p, _, _ in parts], parts)
        return _columns_batch(columns, lines, constants, path, schema, timestamp_fields, overflow)

    for piece in pieces:
        count_skipped(bad, piece.skipped, piece.first_skipped)
        if piece.rows:
            queue.append((piece, 0))
            queued += piece.rows
        while queued >= batch_rows:
            yield take(batch_rows)
        if queued and _queued_bytes(queue) >= batch_bytes:  # long lines: fewer rows
            yield take(queued)
        if piece.error is not None:
            raise piece.error
    if queued:
        yield take(queued)


def _queued_bytes(queue: deque[tuple[Piece, int]]) -> int:
    """About the bytes of the rows not yet taken (a piece's columns, pro rata)."""
    total = 0
    for piece, offset in queue:
        size = sum(column.nbytes for column in piece.columns.values())
        total += size * (piece.rows - offset) // piece.rows
    return total


def _concat_parts(arrays: list[pa.Array], parts: list[tuple[Piece, int, int]]) -> pa.Array:
    """The rows ``parts`` take (piece, offset, count) of each piece's array, as one array."""
    sliced = [
        array.slice(offset, count) for array, (_, offset, count) in zip(arrays, parts, strict=True)
    ]
    return sliced[0] if len(sliced) == 1 else pa.concat_arrays(sliced)


def _columns_batch(
    columns: dict[str, pa.Array],
    numbers: list[int] | pa.Array,
    constants: dict[str, object],
    path: str,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
    overflow: dict[str, int],
) -> pa.RecordBatch:
    """The batch ``_batch.rows_to_batches`` builds from the same rows, from Arrow columns
    (``numbers``: their line numbers; ``overflow``: a value per column that Arrow refuses,
    to fail on as it does)."""
    import pyarrow.compute as pc
    rows = len(numbers)
    arrays = []
    for name in schema.names:
        field_type = schema.field(name).type
        if name in overflow:
            pa.array([overflow[name]], field_type)  # raises as rows_to_batches would
        if name in columns:
            array = columns[name]
        elif name == "source_line":
            array = numbers if isinstance(numbers, pa.Array) else pa.array(numbers, field_type)
            if array.type != field_type:
                array = array.cast(field_type)
        elif name in constants:
            array = pa.repeat(pa.scalar(constants[name], field_type), rows)
        else:
            array = pa.nulls(rows, field_type)
        if name in timestamp_fields and field_type == UTC_MICROS and array.type != UTC_MICROS:
            if pa.types.is_integer(array.type):
                array = array.cast(UTC_MICROS)
            else:
                try:
                    array = pc.cast(array, UTC_MICROS)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    # names the first bad line, as rows_to_batches does
                    lines = numbers.to_pylist() if isinstance(numbers, pa.Array) else numbers
                    array = parse_timestamps(array.to_pylist(), path, lines, name)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _native_spec(shape: str, schema: pa.Schema, timestamp_fields: tuple[str, ...]) -> tuple:
    """The C kernel's row spec for a shape, or () to use the Python path.

    A shape opts in by naming ``NATIVE_MAPPING``: its ``parse_row(obj)`` is then exactly
    ``map_row(obj, NATIVE_MAPPING)``, which the kernel reproduces for plain valid lines
    (into string and int64 columns, so the schema must want those).
    """
    import importlib

    from .. import jsonb_native

    if not jsonb_native.AVAILABLE:
        return ()
    module = importlib.import_module(ROW_PARSERS[shape].split(":")[0])
    mapping = getattr(module, "NATIVE_MAPPING", None)
    if mapping is None:
        return ()
    converters = {
        text_value: jsonb_native.TEXT,
        timestamp_text: jsonb_native.TEXT,
        jsonb_value: jsonb_native.JSONB,
        int_value: jsonb_native.INT,
    }
    spec = jsonb_native.row_spec(mapping, converters, REQUIRED_FIELDS)
    for field, _, kind, _ in spec:
        if field not in schema.names:
            continue
        wanted = pa.int64() if kind == jsonb_native.INT else pa.string()
        field_type = schema.field(field).type
        if field_type != wanted and not (
            field in timestamp_fields and field_type == UTC_MICROS and kind == jsonb_native.TEXT
        ):
            return ()
    return spec


#: shape -> "module:function" turning one parsed JSON object into a row dict. Named, not
#: passed as a callable, so that worker processes can look it up.
ROW_PARSERS = {
    "db_jsonl": "caracal_forensics.sources.db_jsonl:parse_row",
    "cli_jsonl": "caracal_forensics.sources.cli_jsonl:parse_row",
    "alerts_jsonl": "caracal_forensics.sources.alerts:parse_alert_row",
}


def _row_parser(shape: str) -> Callable[[dict], dict]:
    import importlib

    module, function = ROW_PARSERS[shape].split(":")
    return getattr(importlib.import_module(module), function)


def read_json_lines(
    path: str,
    bad: BadLines,
    shape: str,
    schema: pa.Schema = EVENT_SCHEMA,
    timestamp_fields: tuple[str, ...] = ("occurred_at", "ingested_at"),
    tap: FileDigest | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches from a JSON lines file, parsed on every core: by the C kernel on
    threads (blocks of lines, without the GIL), or else, for a large file, by worker
    processes. ``tap`` takes the file's fingerprint on the kernel's way through it."""
    from ._parallel import native_pieces, parallel_worth_it, read_json_lines_parallel

    spec = _native_spec(shape, schema, timestamp_fields)
    if spec:
        parse = functools.partial(
            parse_block, path, shape, spec, bad.skip, bad.max_line, schema, timestamp_fields
        )
        return batches_from_pieces(
            native_pieces(path, parse, tap, bad.max_line), path, bad, shape, schema,
            timestamp_fields
        )
    if parallel_worth_it(path):
        return read_json_lines_parallel(path, bad, shape, schema, timestamp_fields,
                                        parse_lines)
    return parse_lines(path, numbered_lines(path, bad), bad, shape, schema, timestamp_fields)


# --- field helpers shared by the JSON shapes -------------------------------------------


def text_value(obj: dict, key: str) -> str | None:
    """A text field: a JSON string or null (a number or object is refused)."""
    value = obj[key]
    if value is None or (type(value) is str):
        return value
    raise RowError(f"{key} must be a string or null, not {_json_type(value)}")


def int_value(obj: dict, key: str) -> int | None:
    """An integer field (chain_seq): a JSON integer, or a string of digits, or null."""
    value = obj[key]
    if value is None:
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int64_of(value, key)
    raise RowError(f"{key} must be an integer, not {shown_value(value, 40)}")


def int64_of(digits: str, key: str) -> int:
    """``digits`` (an optional minus and digits) as an int that fits the model's BIGINT,
    as PostgreSQL's bigint does; a longer number (10**40, or 5,000 digits, past Python's
    own limit) is a bad row, not an error deep inside Arrow."""
    if len(digits.lstrip("-").lstrip("0")) <= 19:
        value = int(digits)
        if -(2**63) <= value < 2**63:
            return value
    shown = digits if len(digits) <= 24 else f"{digits[:20]}... ({len(digits)} digits)"
    raise RowError(f"{key} {shown} is out of range for a 64-bit integer")


def jsonb_value(obj: dict, key: str) -> str | None:
    """A nested JSON value rendered as PostgreSQL jsonb text (JSON null kept as SQL NULL)."""
    value = obj[key]
    return None if value is None else dumps(value)


def jsonb_from_text(obj: dict, key: str) -> str | None:
    """A jsonb column exported as a JSON string holding JSON text (or as nested JSON)."""
    value = obj[key]
    if value is None or value == "":
        return None
    if type(value) is str:
        try:
            return dumps(loads(value))
        except ValueError as error:
            raise RowError(f"{key} is not valid JSON text: {error}") from None
    return dumps(value)


def timestamp_text(obj: dict, key: str) -> str | None:
    value = obj[key]
    if value is None or type(value) is str:
        return value
    raise RowError(f"{key} must be a timestamp string, not {_json_type(value)}")


def shown_value(value: object, limit: int) -> str:
    """A wrong value as an error line says it: text or a number as written (cut at
    ``limit``), else its JSON type (str() of an object is Python's repr of it, with
    JsonbNumber(...) inside)."""
    if isinstance(value, str | JsonbNumber):
        return repr(str(value)[:limit])
    return _json_type(value)


def _json_type(value: object) -> str:
    if isinstance(value, JsonbNumber):
        return "a number"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


#: Fields every event must have (non-empty).
REQUIRED_FIELDS = ("id", "zone_id", "occurred_at")


def require(row: dict, fields: tuple[str, ...] = REQUIRED_FIELDS) -> dict:
    """Refuse a row without the fields every event must have."""
    for field in fields:
        if row.get(field) in (None, ""):
            raise RowError(f"missing required field {field!r}")
    return row


#: A field mapping: model field -> (key in the JSON object, converter).
Mapping = dict[str, tuple[str, Callable[[dict, str], object]]]


def map_row(obj: dict, mapping: Mapping) -> dict:
    """Apply a shape's mapping; keys the object lacks are listed in ``absent_fields``."""
    row: dict = {}
    absent: list[str] = []
    for field, (key, convert) in mapping.items():
        if key in obj:
            row[field] = convert(obj, key)
        else:
            absent.append(field)
    row["absent_fields"] = ",".join(absent) if absent else None
    return require(row)


def event_mapping(jsonb_key_suffix: str, jsonb_convert: Callable[[dict, str], object]) -> Mapping:
    """The mapping of the shapes whose keys are the model's own names (dump, search page)."""
    from ..model import JSONB_FIELDS, TEXT_FIELDS

    mapping: Mapping = {name: (name, text_value) for name in TEXT_FIELDS}
    for name in JSONB_FIELDS:
        mapping[name] = (name[: -len("_json")] + jsonb_key_suffix, jsonb_convert)
    mapping["occurred_at"] = ("occurred_at", timestamp_text)
    mapping["ingested_at"] = ("ingested_at", timestamp_text)
    for name in ("content_sha256", "prev_content_sha256", "chain_hmac", "ingest_signature"):
        mapping[name] = (name, text_value)
    mapping["chain_seq"] = ("chain_seq", int_value)
    return mapping
