"""A PostgreSQL table dump as CSV (``COPY ... TO ... CSV HEADER``)."""

from __future__ import annotations

from ...model import Shape
from .. import db_csv
from .base import TEXT, SourceShape, dump_header


class DbCsv(SourceShape):
    name = Shape.DB_CSV
    kind = TEXT
    line_oriented = True
    header_line = True

    @classmethod
    def detect(cls, probe):
        return db_csv.looks_like(probe.header)

    @classmethod
    def read(cls, source, bad):
        return db_csv.read(source.path, bad, dump_header(source.path), source.reader_tap)

    @classmethod
    def taps(cls, path):
        return True  # its parallel pass reads the whole file
