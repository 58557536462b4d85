"""Which export shape a file is, decided from its content (FORMAT.md section 4).

The content's kind (a directory, Parquet, JSON, other text) is decided here; which shape
of that kind it is, the registered shapes say (``registry.SHAPES``, in order). What is
said when no shape knows the file is said here, per kind."""

from __future__ import annotations

import os

from ..errors import InputError
from ._io import PARQUET_MAGIC, PEEK_BYTES, check_regular, max_line_bytes, peek
from .registry import find_shape
from .shapes.base import (  # noqa: F401 - csv_header, dump_header: re-exported
    DIRECTORY,
    JSON,
    PARQUET,
    TEXT,
    Probe,
    csv_header,
    dump_header,
)
from .snapshot_dir import EVENTS_DIR, MANIFEST


def detect_shape(path: str) -> str:
    """The shape name (model.Shape) of a file or snapshot directory; InputError if unknown."""
    if os.path.isdir(path):
        shape = find_shape(Probe(path), DIRECTORY)
        if shape is not None:
            return shape.name
        raise InputError(path, "a directory that is not a caracal-forensics snapshot")
    check_regular(path)  # never open a FIFO or a device: it may block forever
    head = peek(path)
    if not head:
        raise InputError(path, "empty file")
    probe = Probe(path, head)
    if head.startswith(PARQUET_MAGIC):
        return _parquet_shape(probe)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        return _json_shape(_whole_first_line(probe))
    if text.startswith(b"["):
        shape = find_shape(_whole_first_line(probe), JSON)  # an Admin API by-request array
        if shape is not None:
            return shape.name
        raise InputError(path, "a JSON array is not an export shape this toolkit knows")
    return _text_shape(probe)


def _parquet_shape(probe: Probe) -> str:
    path = probe.path
    shape = find_shape(probe, PARQUET)
    if shape is not None:
        return shape.name
    schema = probe.schema
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


def _whole_first_line(probe: Probe) -> Probe:
    """The probe with its first line whole when the peek cut it: a real event may be
    longer than the peek, up to the maximum line a reader accepts (read no further)."""
    if len(probe.head) < PEEK_BYTES or b"\n" in probe.head:
        return probe
    return Probe(probe.path, peek(probe.path, max_line_bytes() + 1))


def _json_shape(probe: Probe) -> str:
    shape = find_shape(probe, JSON)
    if shape is not None:
        return shape.name
    if probe.first_object is not None:
        raise InputError(
            probe.path,
            "JSON of unknown shape (not a table dump, CLI output, search page or alerts)",
            "line 1",
        )
    first_line = probe.head.split(b"\n", 1)[0]
    if len(first_line) == len(probe.head):
        raise InputError(probe.path, "malformed JSON on the first line (truncated?)", "line 1")
    raise InputError(probe.path, "malformed JSON on the first line", "line 1")


def _text_shape(probe: Probe) -> str:
    if b"\x00" in probe.head:
        raise InputError(probe.path, "binary data of unknown shape")
    shape = find_shape(probe, TEXT)
    if shape is not None:
        return shape.name
    raise InputError(
        probe.path, "unknown shape: not JSON, Parquet, or a CSV dump with a known header",
        "line 1",
    )
