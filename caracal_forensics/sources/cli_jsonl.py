"""``caracal audit tail --json`` output (FORMAT.md 4.3).

Carries no ingested_at and no prev column; evaluation_status, chain_seq and the content
hash only sometimes. What a line lacks is recorded in ``absent_fields`` so that verify can
say which checks could not run instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ..model import Shape
from ._batch import BadLines
from ._io import FileDigest
from ._lines import event_mapping, jsonb_value, map_row, read_json_lines

SHAPE = Shape.CLI_JSONL
MAPPING = event_mapping("", jsonb_value)
#: parse_row is exactly map_row(obj, MAPPING): the C kernel may do it (_lines._native_spec).
NATIVE_MAPPING = MAPPING


def looks_like(first: dict) -> bool:
    return (
        "zone_id" in first
        and "determining_policies_json" not in first
        and ("determining_policies" in first or "chain_hmac" in first)
    )


def parse_row(obj: dict) -> dict:
    return map_row(obj, MAPPING)


def read(path: str, bad: BadLines, tap: FileDigest | None = None) -> Iterator[pa.RecordBatch]:
    return read_json_lines(path, bad, SHAPE, tap=tap)
