"""``row_to_json(admin_audit_events)`` one per line (FORMAT.md 8)."""

from __future__ import annotations

from ...admin import read as admin_read
from ...admin.model import AdminShape
from .base import JSON, SourceShape


class AdminDbJsonl(SourceShape):
    name = AdminShape.DB_JSONL
    kind = JSON
    holds_admin = True
    line_oriented = True

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        return first is not None and admin_read.looks_like_dump_row(first)

    @classmethod
    def read(cls, source, bad):
        return admin_read.read_dump_jsonl(source.path, bad)
