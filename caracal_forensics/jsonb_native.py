"""The optional C kernel (``_jsonb_native.c``) for PostgreSQL ``jsonb::text``.

Parsing a JSON line with number literals kept and re-rendering its jsonb values is
Python work at roughly 40k events/s per core; the kernel does it in one C pass. It
renders and rejects exactly what ``jsonb.dumps(jsonb.loads(text))`` does (tested against
the reference and a real PostgreSQL). Without it (``AVAILABLE`` is False: not built, or
``CARACAL_FORENSICS_NATIVE=0``) everything runs on the pure-Python reference.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from . import jsonb
from .settings import settings

try:
    from . import _jsonb_native as _native
except ImportError:  # not built: a source checkout without a compiler, or a pure wheel
    _native = None

AVAILABLE = _native is not None and settings().native

#: Field kinds of a row spec (must match _jsonb_native.c).
TEXT, JSONB, INT = 0, 1, 2


def canonical(text: str | bytes) -> str:
    """``text::jsonb::text``; ValueError on input PostgreSQL rejects (as ``jsonb_text``)."""
    result = _native.canonical(text)
    if result is None:  # nested deeper than the kernel decides: the reference does
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"invalid JSON: not UTF-8 text ({error.reason})") from None
        return jsonb.jsonb_text(text)
    return result


def row_spec(mapping: dict, converters: dict[Callable, int], required: tuple[str, ...]) -> tuple:
    """The kernel's spec for a shape mapping (``field -> (key, converter)``), or ``()`` if
    a converter has no kernel equivalent or two fields read one key."""
    spec = []
    keys = set()
    for field, (key, convert) in mapping.items():
        kind = converters.get(convert)
        if kind is None or key in keys:
            return ()
        keys.add(key)
        spec.append((field, key.encode("utf-8"), kind, field in required))
    return tuple(spec)


def field_names(spec: tuple) -> list[str]:
    """The columns of a spec's rows, in the kernel's order: its fields, then
    ``absent_fields``."""
    return [field for field, _, _, _ in spec] + ["absent_fields"]


def parse_row(raw: bytes, spec: tuple, template: dict) -> dict | None:
    """One JSON line to a row dict: ``template`` plus each spec field present in the
    object (text as str, jsonb as its jsonb text, int as int, JSON null as None) and
    ``absent_fields``. None when the line is not a plain valid row of the spec (bad JSON,
    a value of the wrong type, a required field missing or empty, ...): the caller's
    Python path then decides, so errors and their messages stay its own."""
    return _native.parse_row(raw, spec, template)


def columns(spec: tuple) -> object:
    """A builder of Arrow columns for ``spec``: ``add(raw) -> bool`` appends a line as
    ``parse_row`` would read it (False, nothing appended, where ``parse_row`` gives None);
    ``add_block(data, start, end, line, max_len=-1) -> (pos, line, stopped)`` appends the
    plain valid lines of ``data[start:end]`` without the GIL, skipping blank ones, up to the
    first line that is neither, or is longer than ``max_len`` bytes when that is not
    negative (``stopped``: its offset and number); ``add_values(values, line=0)``
    appends a row made by the Python path (one value per spec field, then absent_fields);
    ``len()`` counts rows; see ``arrays``. One builder serves one thread at a time."""
    return _native.Columns(spec)


def buffer(size: int) -> object:
    """A writable buffer of ``size`` bytes (contents undefined), in huge pages when big:
    to read a file into without the allocator's page faults."""
    return _native.buffer(size)


def find_lines(data: bytes, start: int, end: int, count: int) -> tuple[int, int]:
    """(offset just after the ``count``-th b"\\n" of ``data[start:end]``, ``count``), or
    ``(end, newlines found)`` when there are fewer."""
    return _native.find_lines(data, start, end, count)


def arrays(builder: object, spec: tuple) -> tuple[int, dict[str, pa.Array], pa.Array]:
    """(rows, field -> Arrow array, including ``absent_fields``, the int64 line numbers the
    rows were added with) of what ``builder`` holds; the builder starts over empty. The
    arrays own the builder's memory (no copy)."""
    rows, buffers, lines = builder.finish()  # type: ignore[attr-defined]
    kinds = [kind for _, _, kind, _ in spec] + [TEXT]
    names = field_names(spec)
    out = {}
    for name, kind, (validity, offsets, data) in zip(names, kinds, buffers, strict=True):
        validity = None if validity is None else pa.py_buffer(validity)
        if kind == INT:
            array = pa.Array.from_buffers(pa.int64(), rows, [validity, pa.py_buffer(data)])
        else:
            array = pa.Array.from_buffers(
                pa.string(), rows, [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
        out[name] = array
    numbers = pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(lines)])
    return rows, out, numbers
