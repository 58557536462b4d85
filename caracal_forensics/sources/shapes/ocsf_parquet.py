"""Hourly OCSF Parquet files (``class_uid``, ``event_id``), an event filed by its time."""

from __future__ import annotations

from ...model import Shape
from .. import ocsf_parquet
from .base import PARQUET, SourceShape


class OcsfParquet(SourceShape):
    name = Shape.OCSF_PARQUET
    kind = PARQUET
    displaced = True  # an event ingested late sits in an earlier hour's file

    @classmethod
    def detect(cls, probe):
        return ocsf_parquet.looks_like(probe.schema)

    @classmethod
    def read(cls, source, bad):
        return ocsf_parquet.read(source.path)
