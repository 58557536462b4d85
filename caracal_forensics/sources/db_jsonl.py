"""Table dump as JSON lines: one ``row_to_json(audit_events)`` per line (FORMAT.md 4.2)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ..model import Shape
from ._batch import BadLines
from ._io import FileDigest
from ._lines import event_mapping, jsonb_value, map_row, read_json_lines

SHAPE = Shape.DB_JSONL
MAPPING = event_mapping("_json", jsonb_value)
#: parse_row is exactly map_row(obj, MAPPING): the C kernel may do it (_lines._native_spec).
NATIVE_MAPPING = MAPPING


def looks_like(first: dict) -> bool:
    return "zone_id" in first and "determining_policies_json" in first


def parse_row(obj: dict) -> dict:
    return map_row(obj, MAPPING)


def read(path: str, bad: BadLines, tap: FileDigest | None = None) -> Iterator[pa.RecordBatch]:
    return read_json_lines(path, bad, SHAPE, tap=tap)
