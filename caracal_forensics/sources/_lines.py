"""JSON lines and the per-row conversion shared by the JSON shapes.

Lines are split on b"\\n" only (U+2028 inside a string is not a line break). Each shape
module supplies ``parse_row(obj) -> dict``; it raises RowError for a row that does not fit,
and this module turns that into an InputError naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..jsonb import JsonbNumber, dumps, loads
from ..model import EVENT_SCHEMA, UTC_MICROS
from . import _batch
from ._batch import BadLines, parse_timestamps, rows_to_batches
from ._io import open_binary

_INTEGER = re.compile(r"-?[0-9]+")


class RowError(ValueError):
    """A row that parsed as JSON but does not fit the shape (the message says why)."""


def numbered_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of a possibly compressed file, split on b"\\n"."""
    number = 0
    try:
        with open_binary(path) as stream:
            for raw in stream:
                number += 1
                yield number, raw
    except Exception as error:  # OSError, EOFError, zstd errors: a cut-off compressed stream
        raise InputError(
            path, f"truncated or unreadable compressed data: {error}", f"line {number + 1}"
        ) from None


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


def parse_lines(
    path: str,
    lines: Iterable[tuple[int, bytes]],
    bad: BadLines,
    shape: str,
    schema: pa.Schema = EVENT_SCHEMA,
    timestamp_fields: tuple[str, ...] = ("occurred_at", "ingested_at"),
) -> Iterator[pa.RecordBatch]:
    """Record batches from numbered JSON lines of one shape (see ``ROW_PARSERS``)."""
    parse_row = _row_parser(shape)

    def python_row(line: int, raw: bytes) -> dict | None:
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

    def rows() -> Iterator[dict]:
        for line, raw in lines:
            row = python_row(line, raw)
            if row is not None:
                yield row

    def native_batches(spec: tuple) -> Iterator[pa.RecordBatch]:
        # The kernel appends a plain valid line's values straight to Arrow buffers;
        # anything else (a blank or bad line, a value of the wrong type, ...) it leaves to
        # python_row, so rows, errors, skipped lines and batch boundaries are exactly
        # those of the Python path (rows_to_batches).
        from .. import jsonb_native

        builder = jsonb_native.columns(spec)
        add = builder.add  # type: ignore[attr-defined]
        names = [field for field, _, _, _ in spec] + ["absent_fields"]
        constants = {"source_file": path, "source_shape": shape, "occurred_at_digits": 6}
        numbers: list[int] = []
        batch_rows = _batch.BATCH_ROWS  # read now: tests make it small

        overflow: dict[str, int] = {}

        def batch() -> pa.RecordBatch:
            _, arrays = jsonb_native.arrays(builder, spec)
            built = _columns_batch(
                arrays, numbers, constants, path, schema, timestamp_fields, overflow
            )
            overflow.clear()
            return built

        for line, raw in lines:
            if not add(raw):
                row = python_row(line, raw)
                if row is None:
                    continue
                values = [row.get(name) for name in names]
                try:
                    builder.add_values(values)  # type: ignore[attr-defined]
                except OverflowError:
                    # An int beyond int64: rows_to_batches fails on it when it builds the
                    # batch, so the batch remembers it and fails at the same point.
                    for i, value in enumerate(values):
                        if type(value) is int and not -(2**63) <= value < 2**63:
                            overflow.setdefault(names[i], value)
                            values[i] = None
                    builder.add_values(values)  # type: ignore[attr-defined]
            numbers.append(line)
            if len(numbers) >= batch_rows:
                yield batch()
                numbers = []
        if numbers:
            yield batch()

    spec = _native_spec(shape, schema, timestamp_fields)
    if spec:
        yield from native_batches(spec)
    else:
        yield from rows_to_batches(rows(), path, schema, timestamp_fields)


def _columns_batch(
    columns: dict[str, pa.Array],
    numbers: list[int],
    constants: dict[str, object],
    path: str,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
    overflow: dict[str, int],
) -> pa.RecordBatch:
    """The batch ``_batch.rows_to_batches`` builds from the same rows, from Arrow columns
    (``overflow``: a value per column that Arrow refuses, to fail on as it does)."""
    rows = len(numbers)
    arrays = []
    for name in schema.names:
        field_type = schema.field(name).type
        if name in overflow:
            pa.array([overflow[name]], field_type)  # raises as rows_to_batches would
        if name in columns:
            array = columns[name]
        elif name == "source_line":
            array = pa.array(numbers, field_type)
        elif name in constants:
            array = pa.array([constants[name]] * rows, field_type)
        else:
            array = pa.nulls(rows, field_type)
        if name in timestamp_fields and field_type == UTC_MICROS:
            if pa.types.is_integer(array.type):
                array = array.cast(UTC_MICROS)
            else:
                try:
                    array = pc.cast(array, UTC_MICROS)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    # names the first bad line, as rows_to_batches does
                    array = parse_timestamps(array.to_pylist(), path, numbers, name)
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
) -> Iterator[pa.RecordBatch]:
    """Record batches from a JSON lines file; large files are parsed on every core
    (unless the C kernel parses them: it is faster on one)."""
    from ._parallel import parallel_worth_it, read_json_lines_parallel

    # With the C kernel one process parses faster than it can feed and drain workers
    # (1M db.jsonl lines, 2 cores: 139k events/s serial against 109k in parallel).
    if parallel_worth_it(path) and not _native_spec(shape, schema, timestamp_fields):
        return read_json_lines_parallel(path, bad, shape, schema, timestamp_fields)
    return parse_lines(path, numbered_lines(path), bad, shape, schema, timestamp_fields)


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
        return int(value)
    raise RowError(f"{key} must be an integer, not {str(value)[:40]!r}")


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
