"""A page of the search API (``{"events": [...], ...}``), one line or pretty-printed."""

from __future__ import annotations

from ...model import Shape
from .. import search_pages
from .base import JSON, SourceShape


class SearchPage(SourceShape):
    name = Shape.SEARCH_PAGE
    kind = JSON

    @classmethod
    def detect(cls, probe):
        first = probe.first_object
        if first is not None:
            return search_pages.looks_like(first)
        # Not one object per line: a (pretty-printed) page starts with its events key.
        return b'"events"' in probe.head

    @classmethod
    def read(cls, source, bad):
        return search_pages.read(source.path, bad)
