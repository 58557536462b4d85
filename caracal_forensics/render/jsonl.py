"""JSON lines out: one value a line, number literals kept, flushed for pipes and follow."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import IO, Any

from .records import LiteralFloat


def dumps(value: Any) -> str:
    """Compact JSON on one line: ``{"k": v, "k2": [1, 2]}``, keys in insertion order.

    A :class:`LiteralFloat` prints its stored literal; other floats print like jsonb does
    (no exponent); strings escape as PostgreSQL's jsonb does (non-ASCII raw).
    """
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is LiteralFloat:
        return value.literal
    if kind is dict:
        if not value:
            return "{}"
        return (
            "{"
            + ", ".join(encode_basestring(str(k)) + ": " + dumps(v) for k, v in value.items())
            + "}"
        )
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if kind is float:
        from ..jsonb import dumps as jsonb_dumps

        if value != value or value in (float("inf"), float("-inf")):
            return "null"
        return jsonb_dumps(value)
    if isinstance(value, str):
        return encode_basestring(str(value))
    if isinstance(value, dict):
        return dumps(dict(value))
    if isinstance(value, (list, tuple)):
        return dumps(list(value))
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return dumps(float(value))
    if hasattr(value, "isoformat"):
        return encode_basestring(value.isoformat())
    raise TypeError(f"cannot render {kind.__name__} as JSON")


def write_lines(lines: Iterable[str], out: IO[str] | None = None, flush: bool = True) -> int:
    """Write each line with a newline; returns how many were written."""
    out = out or sys.stdout
    count = 0
    for line in lines:
        out.write(line)
        out.write("\n")
        count += 1
    if flush:
        out.flush()
    return count


def write_arrow_lines(batches: Iterable[Any], out: IO[str] | None = None,
                      flush: bool = True) -> int:
    """Write Arrow batches (or arrays) of finished lines, each ending in ``\\n`` (DuckDB
    made them, see ``records.json_line_sql``), as they stand: a batch's first column is
    written as one slice of its data buffer, no Python string per line; NULLs are no
    line. Returns how many lines were written."""
    import pyarrow as pa

    out = out or sys.stdout
    binary = getattr(out, "buffer", None)
    if binary is not None:
        out.flush()  # what was written as text goes first
    count = 0
    for batch in batches:
        column = batch.column(0) if isinstance(batch, pa.RecordBatch) else batch
        if isinstance(column, pa.ChunkedArray):
            chunks = column.chunks
        else:
            chunks = [column]
        for chunk in chunks:
            if chunk.null_count:  # events printing nothing
                chunk = chunk.drop_null()
            if not len(chunk):
                continue
            data = _line_bytes(chunk)
            if binary is not None:
                binary.write(data)
            else:
                out.write(bytes(data).decode("utf-8"))
            count += len(chunk)
    if flush:
        (binary or out).flush()
    return count


def _line_bytes(chunk: Any) -> memoryview:
    """The bytes of a string array's values, end to end (nulls are empty: none are)."""
    import pyarrow as pa

    kind = chunk.type
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        width = "i"
    elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        width = "q"
    else:
        return _line_bytes(chunk.cast(pa.large_string()))
    _, offsets, data = chunk.buffers()
    if data is None:
        return memoryview(b"")
    positions = memoryview(offsets).cast(width)
    start, end = positions[chunk.offset], positions[chunk.offset + len(chunk)]
    return memoryview(data)[start:end]
