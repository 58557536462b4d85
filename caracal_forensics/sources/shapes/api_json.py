"""An Admin API JSON export: a page (``{"items", "next_cursor"}``), items one per line,
the by-request array or the explain trace (FORMAT.md 6)."""

from __future__ import annotations

from ...jsonb import loads
from ...model import Shape
from .. import api_json
from .base import JSON, SourceShape


class ApiJson(SourceShape):
    name = Shape.API_JSON
    kind = JSON

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        if first is not None:
            return api_json.looks_like(first)
        head = probe.head.lstrip()
        if head.startswith(b"["):  # by-request: an array of rows (first one is enough)
            try:
                rows = loads(head.decode("utf-8", errors="replace"))
            except ValueError:
                return b'"determining_policies_json"' in head and b'"chain_hmac"' not in head
            return bool(rows) and isinstance(rows, list) and api_json.looks_like(rows[0])
        # pretty-printed page or explain trace
        return (b'"items"' in head and b'"next_cursor"' in head) or b'"final_decision"' in head

    @classmethod
    def read(cls, source, bad):
        return api_json.read(source.path, bad)
