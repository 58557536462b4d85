"""Audit service search pages: ``{"events": [{"Event": {...}, "ChainSeq": ...}], ...}``.

Each page is one JSON document (FORMAT.md 4.5). The jsonb fields arrive compacted and are
re-rendered as jsonb text. A row's ``source_line`` is its 1-based index in ``events``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ..errors import InputError
from ..jsonb import loads
from ..model import JSONB_FIELDS, Shape
from ._batch import BadLines, rows_to_batches
from ._io import read_document
from ._lines import RowError, event_mapping, int64_of, jsonb_value, map_row

SHAPE = Shape.SEARCH_PAGE
EVENT_MAPPING = {
    field: spec
    for field, spec in event_mapping("_json", jsonb_value).items()
    if field
    not in (
        "ingested_at",
        "content_sha256",
        "prev_content_sha256",
        "chain_hmac",
        "chain_seq",
        "ingest_signature",
    )
}
#: Envelope keys beside "Event" and the model fields they carry.
ENVELOPE = {
    "IngestedAt": "ingested_at",
    "ContentSHA256": "content_sha256",
    "PrevContentSHA256": "prev_content_sha256",
    "ChainHMAC": "chain_hmac",
    "ChainSeq": "chain_seq",
}


def looks_like(first: dict) -> bool:
    return isinstance(first.get("events"), list)


def read(path: str, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """The page's events. A page is one JSON document, read whole: one larger than
    ``bad.max_line`` is refused before it is read (past the limit, never held)."""
    data = read_document(path, bad.max_line, "a search page")
    try:
        page = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a complete search page (malformed JSON: {error})") from None
    if not isinstance(page, dict) or not isinstance(page.get("events"), list):
        raise InputError(path, 'not a search page: no "events" array')

    def rows() -> Iterator[dict]:
        for index, element in enumerate(page["events"], start=1):
            try:
                row = _parse_element(element)
            except RowError as error:
                bad.handle(InputError(path, str(error), f"event {index}"))
                continue
            row.update(
                source_file=path, source_line=index, source_shape=SHAPE, occurred_at_digits=6
            )
            yield row

    return rows_to_batches(rows(), path)


def _parse_element(element: object) -> dict:
    if not isinstance(element, dict) or not isinstance(element.get("Event"), dict):
        raise RowError('expected {"Event": {...}, ...}')
    row = map_row(element["Event"], EVENT_MAPPING)
    # The service's encoder omits an empty jsonb field (omitempty): omitted means NULL.
    absent = [
        name
        for name in (row["absent_fields"] or "").split(",")
        if name and name not in JSONB_FIELDS
    ]
    for key, field in ENVELOPE.items():
        if key not in element:
            absent.append(field)
            continue
        value = element[key]
        if field == "chain_seq":
            if value is not None and not (isinstance(value, str) and value.isdigit()):
                raise RowError(f"{key} must be an integer")
            row[field] = None if value is None else int64_of(value, key)
        else:
            if value is not None and type(value) is not str:
                raise RowError(f"{key} must be a string")
            # The service sends "" for "no predecessor"; the model says NULL.
            row[field] = value or None
    row["absent_fields"] = ",".join(absent) if absent else None
    return row
