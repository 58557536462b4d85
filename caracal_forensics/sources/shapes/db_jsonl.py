"""A table dump as JSON lines (``row_to_json``: ``determining_policies_json``)."""

from __future__ import annotations

from ...model import Shape
from .. import db_jsonl
from .base import JSON, SourceShape, kernel_reads_whole


class DbJsonl(SourceShape):
    name = Shape.DB_JSONL
    kind = JSON
    line_oriented = True

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        return first is not None and db_jsonl.looks_like(first)

    @classmethod
    def read(cls, source, bad):
        return db_jsonl.read(source.path, bad, source.reader_tap)

    @classmethod
    def taps(cls, path):
        return kernel_reads_whole(path)
