"""Which export shape a file is, decided from its content (FORMAT.md section 4)."""

from __future__ import annotations

import csv
import io
import os

from ..errors import InputError
from ..jsonb import loads
from ..model import Shape
from . import alerts, cli_jsonl, db_csv, db_jsonl, ocsf_parquet, search_pages
from ._io import PARQUET_MAGIC, check_regular, peek
from .snapshot_dir import EVENTS_DIR, MANIFEST, is_snapshot_dir


def detect_shape(path: str) -> str:
    """The shape name (model.Shape) of a file or snapshot directory; InputError if unknown."""
    if os.path.isdir(path):
        if is_snapshot_dir(path):
            return Shape.SNAPSHOT
        raise InputError(path, "a directory that is not a caracal-forensics snapshot")
    check_regular(path)  # never open a FIFO or a device: it may block forever
    head = peek(path)
    if not head:
        raise InputError(path, "empty file")
    if head.startswith(PARQUET_MAGIC):
        return _parquet_shape(path)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        return _json_shape(path, head)
    if text.startswith(b"["):
        raise InputError(path, "a JSON array is not an export shape this toolkit knows")
    return _csv_shape(path, head)


def _parquet_shape(path: str) -> str:
    from ._parquet import open_parquet

    schema = open_parquet(path).schema_arrow
    if ocsf_parquet.looks_like(schema):
        return Shape.OCSF_PARQUET
    if "source_shape" in schema.names and "chain_hmac" in schema.names:
        # One part of a snapshot: only its directory, with the manifest, is an input.
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.basename(parent) == EVENTS_DIR and os.path.lexists(
                os.path.join(os.path.dirname(parent), MANIFEST)):
            where = os.path.dirname(os.path.dirname(path)) or "."
            raise InputError(path, f"one part of the snapshot {where}: give the snapshot "
                             "directory instead")
        raise InputError(path, "a snapshot event file without its snapshot directory "
                         "(manifest.json)")
    raise InputError(path, "a Parquet file of unknown shape (neither OCSF nor a snapshot)")


def _json_shape(path: str, head: bytes) -> str:
    first_line = head.split(b"\n", 1)[0]
    try:
        first = loads(first_line.decode("utf-8", errors="replace"))
    except ValueError:
        first = None
    if isinstance(first, dict):
        return _shape_of_object(path, first)
    # Not one object per line: a (pretty-printed) search page starts with its events key.
    if b'"events"' in head:
        return Shape.SEARCH_PAGE
    if len(first_line) == len(head):
        raise InputError(path, "malformed JSON on the first line (truncated?)", "line 1")
    raise InputError(path, "malformed JSON on the first line", "line 1")


def _shape_of_object(path: str, first: dict) -> str:
    if search_pages.looks_like(first):
        return Shape.SEARCH_PAGE
    if db_jsonl.looks_like(first):
        return Shape.DB_JSONL
    if cli_jsonl.looks_like(first):
        return Shape.CLI_JSONL
    if alerts.looks_like(first):
        return Shape.ALERTS_JSONL
    raise InputError(
        path,
        "JSON of unknown shape (not a table dump, CLI output, search page or alerts)",
        "line 1",
    )


def csv_header(path: str, head: bytes) -> list[str]:
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return [name.strip() for name in next(csv.reader(io.StringIO(line)))]
    except (csv.Error, StopIteration):
        return []


def dump_header(path: str) -> list[str]:
    """The header of a CSV dump about to be read. A column named twice is an input error:
    which copy is the column? Another reader (a spreadsheet, DuckDB) may take the other."""
    header = csv_header(path, peek(path))
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise InputError(path, f"CSV header names {', '.join(twice)} more than once", "line 1")
    return header


def _csv_shape(path: str, head: bytes) -> str:
    if b"\x00" in head:
        raise InputError(path, "binary data of unknown shape")
    header = csv_header(path, head)
    if db_csv.looks_like(header):
        return Shape.DB_CSV
    if alerts.looks_like(header):
        return Shape.ALERTS_CSV
    raise InputError(
        path, "unknown shape: not JSON, Parquet, or a CSV dump with a known header", "line 1"
    )
