"""A producer's replay spool (``pending-<pid>-<unixnano>.ndjson``, FORMAT.md 7): wire
events one per line, which may never have reached the ledger."""

from __future__ import annotations

from ...model import Shape
from .. import wire
from .base import JSON, SourceShape


class WireSpool(SourceShape):
    name = Shape.WIRE_SPOOL
    kind = JSON
    line_oriented = True

    @classmethod
    def detect(cls, probe):
        # the file name says spool; a ledger dump line would carry chain fields
        first = probe.first_object
        return (wire.is_spool_name(probe.path) and first is not None
                and "zone_id" in first and "chain_seq" not in first)

    @classmethod
    def read(cls, source, bad):
        return wire.read(source.path, cls.name, bad)
