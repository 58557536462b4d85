"""What an input shape is: one small class per shape, one file each in this package,
listed once in ``sources/registry.py``. Detection, reading, fingerprinting, ``follow``
and verify ask a shape these questions instead of comparing shape names, so a new shape
is one file here plus one line in the registry (README, "How to add a shape")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

from ...errors import InputError
from ...jsonb import loads
from .._io import file_sha256, peek

if TYPE_CHECKING:
    import pyarrow as pa

    from .. import InputFile
    from .._batch import BadLines

#: What a file's content is, decided before any shape is asked (``detect.detect_shape``);
#: each shape says which of these it can be, and is asked only about such files.
DIRECTORY = "directory"
PARQUET = "parquet"
JSON = "json"
#: anything else that is not binary: CSV dumps (``Probe.header``), or a shape's own text
TEXT = "text"
KINDS = (DIRECTORY, PARQUET, JSON, TEXT)


class Probe:
    """What detection looked at in one file, each part read at most once and only when a
    shape asks for it (a Parquet footer is not read for a JSON file)."""

    def __init__(self, path: str, head: bytes = b""):
        self.path = path
        #: the file's first bytes (``_io.peek``); empty for a directory
        self.head = head

    @cached_property
    def first_object(self) -> dict | None:
        """The first line as a JSON object, or None (not one object per line)."""
        first_line = self.head.split(b"\n", 1)[0]
        try:
            first = loads(first_line.decode("utf-8", errors="replace"))
        except ValueError:
            return None
        return first if isinstance(first, dict) else None

    @cached_property
    def header(self) -> list[str]:
        """The first line as a CSV header (stripped names), or [] if it is not one."""
        return csv_header(self.path, self.head)

    @cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema of a Parquet file."""
        from .._parquet import open_parquet

        return open_parquet(self.path).schema_arrow


class SourceShape:
    """One export shape. Subclasses set the attributes and override the methods that
    differ; they are never instantiated (the registry lists the classes)."""

    #: the name recorded in ``source_shape``, manifests, reports and JSON output
    #: (``model.Shape``'s constants for the built-in shapes): never change one
    name: ClassVar[str]
    #: which content this shape can be (``DIRECTORY``, ``PARQUET``, ``JSON``, ``TEXT``)
    kind: ClassVar[str]
    #: rows of ``audit_ingest_alerts`` (``read_alerts``), not events (``read_events``)
    holds_alerts: ClassVar[bool] = False
    #: rows of ``admin_audit_events`` (``admin.read_admin``, ``admin.model.ADMIN_SCHEMA``):
    #: the event commands leave such a file out of a directory (``sources.scan``)
    holds_admin: ClassVar[bool] = False
    #: one record per line, appended at the end: ``follow`` reads it from a byte offset
    line_oriented: ClassVar[bool] = False
    #: its first line is a header every appended chunk needs (``follow``)
    header_line: ClassVar[bool] = False
    #: written whole, once: ``follow`` reads it once and never again
    written_whole: ClassVar[bool] = False
    #: rows filed out of chain order by design (hourly OCSF files file an event by its
    #: time): verify's fast pass sends them through the reorder window from the first row
    displaced: ClassVar[bool] = False

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        """Whether a file of this shape's ``kind`` is this shape (shapes are asked in
        registry order; the first that says yes wins)."""
        raise NotImplementedError

    @classmethod
    def read(cls, source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
        """Record batches of ``model.EVENT_SCHEMA`` (``model.ALERT_SCHEMA`` if
        ``holds_alerts``); a malformed row goes to ``bad``."""
        raise NotImplementedError

    @classmethod
    def check(cls, path: str) -> int:
        """Checks made when the input is scanned; the rows known without reading (0)."""
        return 0

    @classmethod
    def fingerprint(cls, path: str) -> tuple[int, str]:
        """Size and SHA-256 that stand for the input in manifests and reports."""
        return file_sha256(path)

    @classmethod
    def taps(cls, path: str) -> bool:
        """Whether its reader reads the file once, end to end, and can fingerprint it on
        the way (``source.reader_tap``, a ``_io.FileDigest``), so it is read once."""
        return False


def csv_header(path: str, head: bytes) -> list[str]:
    """The first line of ``head`` as a CSV header, or [] if it is not one."""
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


def kernel_reads_whole(path: str) -> bool:
    """Whether the C kernel reads this JSON lines file end to end (it is built, and the
    file is not compressed), so its reader can take the file's fingerprint."""
    from ... import jsonb_native
    from .._io import compression_of

    return bool(jsonb_native.AVAILABLE) and not compression_of(path)
