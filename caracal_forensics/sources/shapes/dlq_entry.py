"""Dead-letter entries of the audit service (``GET /api/audit/dlq`` and
``/api/audit/dlq/{id}``, FORMAT.md 7): events the ledger refused."""

from __future__ import annotations

from ...model import Shape
from .. import wire
from .base import JSON, SourceShape


class DlqEntry(SourceShape):
    name = Shape.DLQ_ENTRY
    kind = JSON
    written_whole = True

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        if first is not None:
            return wire.looks_like_dlq(first)
        return any(mark in probe.head for mark in (b'"entries"', b'"src_data"',
                                                   b'"source_event"'))

    @classmethod
    def read(cls, source, bad):
        return wire.read(source.path, cls.name, bad)
