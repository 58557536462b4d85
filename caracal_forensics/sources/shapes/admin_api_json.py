"""The Admin API's admin-audit page ``admin-audit-{zone}.json`` (or its items one per
line): no hashes, chain_seq a string, ``signed`` (FORMAT.md 6.4)."""

from __future__ import annotations

from ...admin import read as admin_read
from ...admin.model import AdminShape
from .base import JSON, SourceShape


class AdminApiJson(SourceShape):
    name = AdminShape.API_JSON
    kind = JSON
    holds_admin = True

    @classmethod
    def detect(cls, probe):
        return admin_read.looks_like_api(probe.first_object, probe.head)

    @classmethod
    def read(cls, source, bad):
        return admin_read.read_api_json(source.path, bad)
