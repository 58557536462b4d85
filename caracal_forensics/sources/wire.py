"""Events before the ledger (FORMAT.md 7): producers' replay spools and dead-letter
entries, as wire events normalised the way ingest normalises them.

A wire event is the exact bytes a producer signed (a spool line without its newline, a
dead-letter entry's ``src_data``), so ``WireEvent`` keeps those bytes beside the row:
the producer checks (``chain/producers.py``) recompute the HMAC over them. The rows have
no chain fields: these events never were (or may never have been) chained.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from ..errors import InputError
from ..jsonb import dumps, loads
from ..model import JSONB_FIELDS, TEXT_FIELDS, Shape
from ._batch import BadLines, rows_to_batches
from ._io import numbered_lines, open_binary

#: what a wire event never carries (it was not chained yet)
CHAIN_ABSENT = "ingested_at,content_sha256,prev_content_sha256,chain_hmac,chain_seq"
SPOOL_NAME = re.compile(r"pending-\d+-\d+\.ndjson\Z")
#: a ``\u0000`` escape not itself escaped (an even run of backslashes before it)
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)\Z")
#: the fields a dead-letter list entry carries of its event
LIST_FIELDS = ("zone_id", "event_type", "request_id", "decision")


@dataclass(frozen=True)
class WireEvent:
    """One wire event: the signed bytes, the signature stored beside them (None in a
    spool: the line is all there is), the normalised row, and where it came from."""

    data: bytes | None
    sig: str | None
    row: dict
    path: str
    line: int
    reason: str | None = None  # a dead-letter entry's reason


def is_spool_name(path: str) -> bool:
    return SPOOL_NAME.search(os.path.basename(path)) is not None


def looks_like_dlq(first: dict) -> bool:
    """The list JSON (``entries``) or one entry's detail JSON (``fields.src_data``)."""
    if isinstance(first.get("entries"), list):
        return True
    fields = first.get("fields")
    return isinstance(fields, dict) and "src_data" in fields and "reason" in first


def occurred_micros(text: object) -> int:
    """RFC 3339 with up to 9 fractional digits -> microseconds, truncated as ingest does."""
    if not isinstance(text, str):
        raise ValueError("occurred_at must be an RFC 3339 string")
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"occurred_at is not RFC 3339: {text[:40]!r}")
    base, frac, zone = m.groups()
    stamp = datetime.fromisoformat(base.replace(" ", "T") + ("+00:00" if zone in "Zz" else zone))
    micros = int((frac or "").ljust(6, "0")[:6])
    return int(stamp.timestamp()) * 1_000_000 + micros


def normalise(data: bytes) -> dict:
    """A wire event's bytes as the ledger row's content (FORMAT.md 7): NUL stripped from
    every string, occurred_at truncated to microseconds, the JSON fields as jsonb text."""
    text = data.decode("utf-8").replace("\x00", "")
    text = _NUL_ESCAPE.sub(r"\1", text)
    obj = loads(text)
    if not isinstance(obj, dict):
        raise ValueError("a wire event is a JSON object")
    row: dict = {}
    for name in TEXT_FIELDS:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        row[name] = value
    for name in JSONB_FIELDS:
        value = obj.get(name)
        row[name] = None if value is None else dumps(value)
    for name in ("id", "zone_id"):
        if not row[name]:
            raise ValueError(f"missing required field {name!r}")
    row["occurred_at"] = occurred_micros(obj.get("occurred_at"))
    row["occurred_at_digits"] = 6
    row["absent_fields"] = CHAIN_ABSENT
    return row


def spool_events(path: str, bad: BadLines) -> Iterator[WireEvent]:
    """A replay spool's lines; the signed bytes are the line without its newline. Read as
    every JSON lines file is (``numbered_lines``): a line past ``bad.max_line`` is a bad
    line, never held whole."""
    for number, raw in numbered_lines(path, bad):
        data = raw.rstrip(b"\n")
        if not data.strip():
            continue
        try:
            row = normalise(data)
        except (ValueError, UnicodeDecodeError) as error:
            bad.handle(InputError(path, f"not a wire event: {error}", f"line {number}"))
            continue
        yield WireEvent(data, None, row, path, number)


def dlq_events(path: str, bad: BadLines) -> Iterator[WireEvent]:
    """A dead-letter detail JSON (one entry, its ``src_data`` the signed bytes) or the
    list JSON (each entry: what the list says of its event, and its ``source_sig``)."""
    with open_binary(path) as handle:
        text = handle.read(bad.max_line + 1)
    if len(text) > bad.max_line:  # refused before it is held whole, as a search page is
        raise InputError(path, f"a dead-letter JSON longer than {bad.max_line} bytes",
                         "line 1")
    try:
        doc = loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(path, f"not a dead-letter JSON: {error}", "line 1") from None
    if not isinstance(doc, dict):
        raise InputError(path, "not a dead-letter JSON object", "line 1")
    if isinstance(doc.get("entries"), list):
        for number, entry in enumerate(doc["entries"], 1):
            event = _list_entry(path, number, entry, bad)
            if event is not None:
                yield event
        return
    fields = doc.get("fields") or {}
    src = fields.get("src_data")
    if not isinstance(src, str):
        bad.handle(InputError(path, "fields.src_data is missing", "entry 1"))
        return
    data = src.encode("utf-8")
    try:
        row = normalise(data)
    except ValueError as error:
        bad.handle(InputError(path, f"fields.src_data is not a wire event: {error}", "entry 1"))
        return
    sig = fields.get("src_sig")
    row["ingest_signature"] = sig if isinstance(sig, str) else None
    yield WireEvent(data, row["ingest_signature"], row, path, 1, _text(doc.get("reason")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _list_entry(path: str, number: int, entry: object, bad: BadLines) -> WireEvent | None:
    if not isinstance(entry, dict) or not _text(entry.get("event_id")):
        bad.handle(InputError(path, "a dead-letter entry without event_id", f"entry {number}"))
        return None
    row: dict = {"id": entry["event_id"]}
    for name in LIST_FIELDS:
        row[name] = _text(entry.get(name))
    if not row["zone_id"]:
        bad.handle(InputError(path, "a dead-letter entry without zone_id", f"entry {number}"))
        return None
    absent = [n for n in (*TEXT_FIELDS, *JSONB_FIELDS) if n not in row] + ["occurred_at"]
    row["absent_fields"] = ",".join([*absent, CHAIN_ABSENT])
    row["ingest_signature"] = _text(entry.get("source_sig"))
    return WireEvent(None, row["ingest_signature"], row, path, number,
                     _text(entry.get("reason")))


def wire_events(path: str, shape: str, bad: BadLines | None = None) -> Iterator[WireEvent]:
    """The wire events of a file of either wire shape."""
    bad = bad if bad is not None else BadLines()
    if shape == Shape.WIRE_SPOOL:
        return spool_events(path, bad)
    return dlq_events(path, bad)


def read(path: str, shape: str, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """Record batches of the event schema, with provenance."""
    def rows() -> Iterator[dict]:
        for event in wire_events(path, shape, bad):
            yield {**event.row, "source_file": path, "source_line": event.line,
                   "source_shape": shape}

    return rows_to_batches(rows(), path)
