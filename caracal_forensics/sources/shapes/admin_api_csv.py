"""The Admin API's CSV ``admin-audit-{zone}.csv``: no payload, no hashes, change_kind and
changed_fields (FORMAT.md 6.4)."""

from __future__ import annotations

from ...admin import read as admin_read
from ...admin.model import AdminShape
from .base import TEXT, SourceShape


class AdminApiCsv(SourceShape):
    name = AdminShape.API_CSV
    kind = TEXT
    holds_admin = True

    @classmethod
    def detect(cls, probe):
        return admin_read.looks_like_api_header(probe.header)

    @classmethod
    def read(cls, source, bad):
        return admin_read.read_api_csv(source.path, bad)
