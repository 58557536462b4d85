"""The Admin API's CSV export ``audit-{zone}.csv`` (no zone column; FORMAT.md 6.2)."""

from __future__ import annotations

from ...model import Shape
from .. import api_csv
from .base import TEXT, SourceShape


class ApiCsv(SourceShape):
    name = Shape.API_CSV
    kind = TEXT

    @classmethod
    def detect(cls, probe):
        return api_csv.looks_like(probe.header)

    @classmethod
    def read(cls, source, bad):
        return api_csv.read(source.path, bad)
