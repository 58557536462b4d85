"""Reading the admin change exports (FORMAT.md 6.4 and 8) into rows of ``ADMIN_SCHEMA``.

Four shapes, each registered in ``sources/registry.py`` (``sources/shapes/admin_*.py``):
- ``COPY admin_audit_events TO ... CSV HEADER`` (payload_json as jsonb text);
- ``row_to_json`` lines (payload_json nested);
- the Admin API's admin-audit responses (a page ``{"items", "next_cursor"}``, or its items
  one per line): chain_seq as a string, ``signed``, a redacted payload, no hashes, no
  zone_id (the zone is the file name's ``admin-audit-{zone}.json``);
- the Admin API's CSV ``admin-audit-{zone}.csv``: no payload, but change_kind and
  changed_fields, the spreadsheet formula guard on cells.

Admin tables are small (one row per administrative change): rows are parsed in Python and
grouped into batches by ``rows_to_batches``. A malformed row is one ``InputError`` naming
the file and the line (or item), handed to ``BadLines`` like every reader's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pyarrow as pa

from ..errors import InputError
from ..jsonb import dumps, loads
from ..sources._batch import BadLines, rows_to_batches
from ..sources._io import csv_records, numbered_lines, read_document
from ..sources._lines import RowError, _json_type, int64_of, shown_value
from ..sources.api_json import first_line_object
from .model import ADMIN_SCHEMA, TABLE_COLUMNS, TEXT_FIELDS, AdminShape

#: Columns every admin row has in every shape (what detection looks for).
SIGNATURE = ("id", "action", "entity_type", "status_code", "occurred_at")
#: The Admin API's export columns (FORMAT.md 6.4): the table's, less zone_id and the hashes
API_FIELDS = tuple(name for name in TABLE_COLUMNS
                   if name not in ("zone_id", "content_sha256", "prev_content_sha256",
                                   "chain_hmac")) + ("signed",)
#: Its CSV: those less payload_json, plus two columns taken from the payload.
API_CSV_FIELDS = tuple(name for name in API_FIELDS if name != "payload_json") + (
    "change_kind", "changed_fields")
_API_ABSENT = ("content_sha256", "prev_content_sha256", "chain_hmac")
_NAME = re.compile(r"admin-audit-(.+?)\.(json|jsonl|ndjson|csv)(\.gz|\.zst|\.zstd)?")
_GUARDED = ("=", "+", "-", "@", "\t", "\r")
_TIMESTAMPS = ("occurred_at",)


# --- detection ---------------------------------------------------------------------------


def is_admin_row(keys) -> bool:
    """A row (or header) of admin_audit_events in any shape."""
    return all(name in keys for name in SIGNATURE) and "event_type" not in keys


def looks_like_dump_header(header: list[str]) -> bool:
    return is_admin_row(header) and ("content_sha256" in header or "payload_json" in header)


def looks_like_api_header(header: list[str]) -> bool:
    return (is_admin_row(header) and "content_sha256" not in header
            and "payload_json" not in header)


def looks_like_dump_row(obj: dict) -> bool:
    return is_admin_row(obj) and ("content_sha256" in obj or "chain_hmac" in obj)


def looks_like_api(first: dict | None, head: bytes) -> bool:
    """A saved admin-audit page (one line or pretty-printed), or its items one per line."""
    if first is not None:
        items = first.get("items")
        if isinstance(items, list) and "next_cursor" in first:
            return bool(items) and isinstance(items[0], dict) and is_admin_row(items[0])
        return is_admin_row(first) and "content_sha256" not in first \
            and "chain_hmac" not in first
    return (b'"items"' in head and b'"next_cursor"' in head and b'"actor_id"' in head
            and b'"entity_type"' in head)


def zone_from_name(path: str) -> str | None:
    """``{zone}`` of ``admin-audit-{zone}.json`` / ``.csv`` (``_`` where the zone id held
    ``:`` or ``/``, as the API writes file names)."""
    match = _NAME.fullmatch(os.path.basename(path))
    return match.group(1) if match else None


# --- cells -------------------------------------------------------------------------------


def _text(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise RowError(f"{key} must be a string or null, not {_json_type(value)}")


def _integer(value: object, key: str) -> int | None:
    """status_code, chain_seq: a JSON integer, a string of digits (the API's bigint), null."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int64_of(value, key)
    raise RowError(f"{key} must be an integer, not {shown_value(value, 40)}")


def _status(value: object) -> int | None:
    status = _integer(value, "status_code")
    if status is not None and not -(2**31) <= status < 2**31:
        raise RowError(f"status_code {status} is out of range for an integer")
    return status


def _payload_text(value: object) -> str | None:
    """The payload as jsonb text; JSON null is NULL (the writer stores NULL, never 'null')."""
    if value is None:
        return None
    return dumps(value)


def _derived(row: dict, payload: object) -> None:
    """``signed``, ``change_kind``, ``changed_fields`` from the row (as the API derives them)."""
    row.setdefault("signed", row.get("chain_hmac") is not None)
    if isinstance(payload, dict):
        kind = payload.get("change_kind")
        row["change_kind"] = kind if isinstance(kind, str) else None
        fields = payload.get("changed_fields")
        if isinstance(fields, list):
            row["changed_fields"] = " ".join(
                f if isinstance(f, str) else dumps(f) for f in fields) or None


def _required(row: dict) -> dict:
    for name in ("id", "occurred_at"):
        if not row.get(name):
            raise RowError(f"missing required field {name!r}")
    return row


# --- table dumps -------------------------------------------------------------------------


def parse_dump_object(obj: dict) -> dict:
    """One ``row_to_json`` object as a row (payload_json nested JSON)."""
    row: dict = {}
    for name in TEXT_FIELDS + ("content_sha256", "prev_content_sha256", "chain_hmac"):
        row[name] = _text(obj, name)
    row["status_code"] = _status(obj.get("status_code"))
    row["chain_seq"] = _integer(obj.get("chain_seq"), "chain_seq")
    stamp = obj.get("occurred_at")
    if stamp is not None and type(stamp) is not str:
        raise RowError(f"occurred_at must be a timestamp string, not {_json_type(stamp)}")
    row["occurred_at"] = stamp
    payload = obj.get("payload_json")
    row["payload_json"] = _payload_text(payload)
    absent = [name for name in TABLE_COLUMNS if name not in obj]
    row["absent_fields"] = ",".join(absent) or None
    _derived(row, payload)
    return _required(row)


def read_dump_jsonl(path: str, bad: BadLines) -> Iterator[pa.RecordBatch]:
    return rows_to_batches(_json_line_rows(path, bad, AdminShape.DB_JSONL,
                                           parse_dump_object), path, ADMIN_SCHEMA, _TIMESTAMPS)


def parse_dump_record(header: list[str], record: list[str]) -> dict:
    """One ``COPY ... CSV HEADER`` record: NULL is an empty cell, payload_json jsonb text
    (parsed, then read as ``row_to_json``'s object is)."""
    obj: dict = {name: cell or None for name, cell in zip(header, record, strict=True)}
    if obj.get("payload_json") is not None:
        try:
            obj["payload_json"] = loads(obj["payload_json"])
        except ValueError as error:
            raise RowError(f"payload_json is not valid JSON: {error}") from None
    return parse_dump_object(obj)


def read_dump_csv(path: str, bad: BadLines) -> Iterator[pa.RecordBatch]:
    return rows_to_batches(_csv_rows(path, bad, AdminShape.DB_CSV, parse_dump_record),
                           path, ADMIN_SCHEMA, _TIMESTAMPS)


# --- the Admin API -----------------------------------------------------------------------


def parse_api_item(obj: object, zone: str | None) -> dict:
    """One admin-audit item of the Admin API (chain_seq a string, ``signed``, no hashes)."""
    if not isinstance(obj, dict):
        raise RowError("expected a JSON object")
    row: dict = {name: _text(obj, name) for name in TEXT_FIELDS if name != "zone_id"}
    row["zone_id"] = _text(obj, "zone_id") if "zone_id" in obj else zone
    row["status_code"] = _status(obj.get("status_code"))
    row["chain_seq"] = _integer(obj.get("chain_seq"), "chain_seq")
    stamp = obj.get("occurred_at")
    if stamp is not None and type(stamp) is not str:
        raise RowError(f"occurred_at must be a timestamp string, not {_json_type(stamp)}")
    row["occurred_at"] = stamp
    signed = obj.get("signed")
    if signed is not None and not isinstance(signed, bool):
        raise RowError(f"signed must be true or false, not {shown_value(signed, 20)}")
    row["signed"] = signed
    payload = obj.get("payload_json")
    row["payload_json"] = _payload_text(payload)
    absent = [name for name in API_FIELDS if name not in obj] + list(_API_ABSENT)
    row["absent_fields"] = ",".join(absent)
    _derived(row, payload)
    return _required(row)


def _zone(path: str, zone: str | None) -> str:
    zone = zone or zone_from_name(path)
    if not zone:
        raise InputError(path, "an Admin API admin-audit export has no zone column: the "
                         "file name must be admin-audit-{zone}.json or .csv")
    return zone


def read_api_json(path: str, bad: BadLines, zone: str | None = None
                  ) -> Iterator[pa.RecordBatch]:
    """A saved page (``{"items", "next_cursor"}``) or its items one per line."""
    zone = _zone(path, zone)
    if _first_line_is_item(path, bad.max_line):
        rows = _json_line_rows(path, bad, AdminShape.API_JSON,
                               lambda obj: parse_api_item(obj, zone))
        return rows_to_batches(rows, path, ADMIN_SCHEMA, _TIMESTAMPS)
    data = read_document(path, bad.max_line, "an Admin API admin-audit page")
    try:
        document = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a complete Admin API page (malformed JSON: {error})"
                         ) from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise InputError(path, 'not an Admin API admin-audit page: no "items" array')
    return rows_to_batches(_item_rows(path, document["items"], bad, zone), path,
                           ADMIN_SCHEMA, _TIMESTAMPS)


def _item_rows(path: str, items: list, bad: BadLines, zone: str) -> Iterator[dict]:
    for index, item in enumerate(items, start=1):
        try:
            row = parse_api_item(item, zone)
        except (RowError, ValueError) as error:
            bad.handle(InputError(path, str(error), f"item {index}"))
            continue
        row.update(source_file=path, source_line=index, source_shape=AdminShape.API_JSON)
        yield row


def counted_in(path: str, shape: str | None) -> str:
    """What ``source_line`` counts in the rows read from ``path`` as ``shape``: the
    items of an Admin API page (told by the file, on the rare error that names one),
    else lines."""
    if shape == AdminShape.API_JSON and os.path.isfile(path):
        from ..sources._io import max_line_bytes

        if not _first_line_is_item(path, max_line_bytes()):
            return "item"
    return "line"


def _first_line_is_item(path: str, limit: int) -> bool:
    obj = first_line_object(path, limit)
    return obj is not None and is_admin_row(obj)


def _unguard(cell: str) -> str:
    if len(cell) >= 2 and cell[0] == "'" and cell[1] in _GUARDED:
        return cell[1:]
    return cell


def parse_api_record(header: list[str], record: list[str], zone: str) -> dict:
    """One record of ``admin-audit-{zone}.csv`` (cells unguarded, empty is NULL)."""
    cells = {name: _unguard(cell) for name, cell in zip(header, record, strict=True)}
    row: dict = {name: cells.get(name) or None for name in TEXT_FIELDS if name != "zone_id"}
    row["zone_id"] = cells.get("zone_id") or zone
    row["status_code"] = _status(cells.get("status_code"))
    row["chain_seq"] = _integer(cells.get("chain_seq"), "chain_seq")
    row["occurred_at"] = cells.get("occurred_at") or None
    signed = cells.get("signed")
    if signed not in (None, "", "true", "false"):
        raise RowError(f"signed must be true or false, not {signed[:20]!r}")
    row["signed"] = None if not signed else signed == "true"
    row["change_kind"] = cells.get("change_kind") or None
    row["changed_fields"] = cells.get("changed_fields") or None
    absent = [name for name in API_FIELDS if name not in cells]
    absent += list(_API_ABSENT)
    row["absent_fields"] = ",".join(dict.fromkeys(absent + ["payload_json"]))
    return _required(row)


def read_api_csv(path: str, bad: BadLines, zone: str | None = None
                 ) -> Iterator[pa.RecordBatch]:
    zone = _zone(path, zone)
    return rows_to_batches(
        _csv_rows(path, bad, AdminShape.API_CSV,
                  lambda header, record: parse_api_record(header, record, zone)),
        path, ADMIN_SCHEMA, _TIMESTAMPS)


# --- shared line and record loops --------------------------------------------------------


def _json_line_rows(path: str, bad: BadLines, shape: str, parse) -> Iterator[dict]:
    for number, raw in numbered_lines(path, bad):
        if not raw.strip():
            continue
        try:
            obj = loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            problem = ("truncated JSON line" if not raw.endswith(b"\n")
                       else f"malformed JSON: {error}")
            bad.handle(InputError(path, problem, f"line {number}"))
            continue
        if not isinstance(obj, dict):
            bad.handle(InputError(path, "expected a JSON object", f"line {number}"))
            continue
        try:
            row = parse(obj)
        except (RowError, ValueError) as error:
            bad.handle(InputError(path, str(error), f"line {number}"))
            continue
        row.update(source_file=path, source_line=number, source_shape=shape)
        yield row


def _csv_rows(path: str, bad: BadLines, shape: str, parse) -> Iterator[dict]:
    """Records of a CSV file with their first line's number (a record may span lines)."""
    for number, header, record in csv_records(path, bad, unique_header=True):
        try:
            row = parse(header, record)
        except (RowError, ValueError) as error:
            bad.handle(InputError(path, str(error), f"line {number}"))
            continue
        row.update(source_file=path, source_line=number, source_shape=shape)
        yield row


__all__ = ["read_dump_csv", "read_dump_jsonl", "read_api_json", "read_api_csv",
           "zone_from_name"]
