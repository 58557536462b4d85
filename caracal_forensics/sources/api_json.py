"""Admin API exports as JSON (FORMAT.md 6): an event page ``{"items": [...],
"next_cursor": ...}`` saved one per file, the items one per line, the by-request array
(``[row, ...]``) and the explain trace (``{"final_decision", "denied", "events"}``).

The API sends ``JSON.stringify`` of node-postgres rows: timestamps with milliseconds
(``occurred_at_digits`` 3), no content hash, HMAC or signature (recorded as absent, so
verify never calls such a source intact), chain_seq as a string when present, numbers as
JavaScript wrote them (kept as given) and ``"[redacted]"`` values kept as they are. A
``fields=`` projection holds flat export fields (``EXPORT_FIELDS``): they are put back
where the row keeps them (metadata keys into ``metadata_json``, policy names into
``determining_policies_json``) and every field it lacks is listed in ``absent_fields``.
``source_line`` is the 1-based index of the row in the page/array, or the line number.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ..errors import InputError
from ..jsonb import loads
from ..model import Shape
from ._batch import BadLines, rows_to_batches
from ._io import numbered_lines, open_binary, read_document
from ._lines import RowError, event_mapping, jsonb_value, map_row

SHAPE = Shape.API_JSON
#: The export fields of a ``fields=`` projection and of the CSV export, in the API's
#: default CSV order: the row's own columns, ``determining_policies`` (policy names),
#: then metadata keys (every column after ``determining_policies``).
EXPORT_FIELDS = (
    "id", "occurred_at", "event_type", "decision", "evaluation_status", "request_id",
    "ingested_at", "policy_set_id", "policy_set_version_id", "manifest_sha",
    "determining_policies", "application_id", "application_name", "resource",
    "requested_scopes", "agent_session_id", "agent_lifecycle", "agent_labels",
    "delegation_edge_id", "delegation_hop_count", "method", "latency_ms", "upstream_status",
    "result_class", "reason", "trace_id", "provider_id", "connection_id", "upstream_host",
    "gateway_status", "error_kind", "response_bytes", "auth_mode", "subject_fingerprint",
    "subject", "authorized_by", "command", "subcommand", "challenge_id", "tier",
    "approver_class", "privacy_mode", "approver_subject_id", "subject_anchor",
    "subject_kind", "federated_user_issuer",
)
METADATA_FIELDS = EXPORT_FIELDS[EXPORT_FIELDS.index("determining_policies") + 1:]
#: A full row: the model's names (jsonb ones with ``_json``); no hashes, no signature.
MAPPING = event_mapping("_json", jsonb_value)
#: What a ``fields=`` projection may hold.
_PROJECTION_KEYS = frozenset(EXPORT_FIELDS) | {"zone_id"}
#: Keys of a full row (a projection has none of the jsonb ones).
_ROW_KEYS = ("determining_policies_json", "diagnostics_json", "metadata_json")


def looks_like(first: object) -> bool:
    """A page, an explain trace, or one item (a row with ``_json`` columns and an ISO
    ``...Z`` time, or a projection): never a table dump, which has ``chain_hmac``."""
    if not isinstance(first, dict):
        return False
    if isinstance(first.get("items"), list) and "next_cursor" in first:
        return True
    if "final_decision" in first and isinstance(first.get("events"), list):
        return True
    return is_item(first)


def is_item(obj: dict) -> bool:
    """One row of the API (full or projected), as opposed to a dump row."""
    if "chain_hmac" in obj or "content_sha256" in obj or "id" not in obj:
        return False
    stamp = obj.get("occurred_at")
    if not (isinstance(stamp, str) and stamp.endswith("Z") and len(stamp) == 24):
        return False
    # a full row has the jsonb columns; a projection only export fields
    return any(key in obj for key in _ROW_KEYS) or all(
        key in _PROJECTION_KEYS for key in obj)


def parse_item(obj: object, zone: str | None = None) -> dict:
    """One API row (full, or a ``fields=`` projection) as a model row."""
    if not isinstance(obj, dict):
        raise RowError("expected a JSON object (an Admin API row)")
    if any(key in obj for key in _ROW_KEYS):
        row = map_row(_with_zone(obj, zone), MAPPING)
    else:
        if "zone_id" not in obj and zone is None:
            raise RowError("a fields= projection without zone_id: export it with zone_id "
                           "among the fields, or give the zone parameter")
        row = map_row(_unflatten(obj, zone), MAPPING)
    row["occurred_at_digits"] = 3
    return row


def _with_zone(obj: dict, zone: str | None) -> dict:
    if "zone_id" in obj or zone is None:
        return obj
    return {**obj, "zone_id": zone}


def _unflatten(obj: dict, zone: str | None) -> dict:
    """A projection's flat fields as a row: metadata keys back into ``metadata_json``,
    policy names (an array, or one space-joined text) into ``[{"policy": name}]``."""
    row = {key: value for key, value in obj.items()
           if key in EXPORT_FIELDS[:10] or key == "zone_id"}
    if "zone_id" not in row and zone is not None:
        row["zone_id"] = zone
    if "determining_policies" in obj:
        names = obj["determining_policies"]
        if isinstance(names, str):
            names = names.split(" ") if names else []
        if names is None:
            row["determining_policies_json"] = None
        elif isinstance(names, list):
            row["determining_policies_json"] = [{"policy": name} for name in names]
        else:
            raise RowError("determining_policies must be policy names")
    metadata = {key: value for key, value in obj.items()
                if key not in row and key not in ("determining_policies", "zone_id")}
    if metadata:
        row["metadata_json"] = metadata
    return row


def read(path: str, bad: BadLines, zone: str | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of one saved response (page, array, explain trace) or of items one per
    line. A document larger than ``bad.max_line`` is refused before it is read."""
    if _first_line_is_item(path, bad.max_line):
        return rows_to_batches(_line_rows(path, bad, zone), path)
    data = read_document(path, bad.max_line, "an Admin API response")
    try:
        document = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a complete Admin API response (malformed JSON: {error})"
                         ) from None
    items = _items_of(path, document)
    return rows_to_batches(_indexed_rows(path, items, bad, zone), path)


def _items_of(path: str, document: object) -> list:
    if isinstance(document, list):
        return document  # by-request: the request's rows, oldest first
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        return document["items"]
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        return document["events"]  # explain trace: "denied" repeats rows of "events"
    raise InputError(path, 'not an Admin API export: no "items" or "events" array')


def _indexed_rows(path: str, items: list, bad: BadLines, zone: str | None) -> Iterator[dict]:
    for index, item in enumerate(items, start=1):
        try:
            row = parse_item(item, zone)
        except RowError as error:
            bad.handle(InputError(path, str(error), f"item {index}"))
            continue
        row.update(source_file=path, source_line=index, source_shape=SHAPE)
        yield row


def _line_rows(path: str, bad: BadLines, zone: str | None) -> Iterator[dict]:
    for number, raw in numbered_lines(path, bad):
        if not raw.strip():
            continue
        try:
            obj = loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            bad.handle(InputError(path, f"malformed JSON: {error}", f"line {number}"))
            continue
        try:
            row = parse_item(obj, zone)
        except RowError as error:
            bad.handle(InputError(path, str(error), f"line {number}"))
            continue
        row.update(source_file=path, source_line=number, source_shape=SHAPE)
        yield row


def _first_line_is_item(path: str, limit: int) -> bool:
    """Whether the file holds items one per line (its first line is one whole item)."""
    obj = first_line_object(path, limit)
    return obj is not None and is_item(obj)


def first_line_object(path: str, limit: int) -> dict | None:
    """The file's first line as one whole JSON object, or None (a page, an array, ...)."""
    try:
        with open_binary(path) as stream:
            first = stream.readline(limit + 1)
        obj = loads(first.decode("utf-8"))
    except Exception:
        return None
    return obj if isinstance(obj, dict) else None


__all__ = ["EXPORT_FIELDS", "METADATA_FIELDS", "looks_like", "parse_item", "read"]
