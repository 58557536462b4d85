"""``audit_ingest_alerts`` dumped as CSV."""

from __future__ import annotations

from ...model import Shape
from .. import alerts
from .base import TEXT, SourceShape, dump_header


class AlertsCsv(SourceShape):
    name = Shape.ALERTS_CSV
    kind = TEXT
    holds_alerts = True

    @classmethod
    def detect(cls, probe):
        return alerts.looks_like(probe.header)

    @classmethod
    def read(cls, source, bad):
        return alerts.read_csv(source.path, bad, dump_header(source.path))
