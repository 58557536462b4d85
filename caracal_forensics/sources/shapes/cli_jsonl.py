"""The Caracal CLI's JSON lines output (``determining_policies`` as a list)."""

from __future__ import annotations

from ...model import Shape
from .. import cli_jsonl
from .base import JSON, SourceShape, kernel_reads_whole


class CliJsonl(SourceShape):
    name = Shape.CLI_JSONL
    kind = JSON
    line_oriented = True

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        return first is not None and cli_jsonl.looks_like(first)

    @classmethod
    def read(cls, source, bad):
        return cli_jsonl.read(source.path, bad, source.reader_tap)

    @classmethod
    def taps(cls, path):
        return kernel_reads_whole(path)
