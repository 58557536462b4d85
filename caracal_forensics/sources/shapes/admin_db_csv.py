"""``COPY admin_audit_events TO ... CSV HEADER`` (FORMAT.md 8)."""

from __future__ import annotations

from ...admin import read as admin_read
from ...admin.model import AdminShape
from .base import TEXT, SourceShape


class AdminDbCsv(SourceShape):
    name = AdminShape.DB_CSV
    kind = TEXT
    holds_admin = True
    line_oriented = True
    header_line = True

    @classmethod
    def detect(cls, probe):
        return admin_read.looks_like_dump_header(probe.header)

    @classmethod
    def read(cls, source, bad):
        return admin_read.read_dump_csv(source.path, bad)
