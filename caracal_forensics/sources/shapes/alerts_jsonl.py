"""``audit_ingest_alerts`` dumped as JSON lines."""

from __future__ import annotations

from ...model import Shape
from .. import alerts
from .base import JSON, SourceShape


class AlertsJsonl(SourceShape):
    name = Shape.ALERTS_JSONL
    kind = JSON
    holds_alerts = True

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        return first is not None and alerts.looks_like(first)

    @classmethod
    def read(cls, source, bad):
        return alerts.read_jsonl(source.path, bad)
