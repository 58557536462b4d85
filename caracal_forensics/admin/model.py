"""The admin change model: the columns of ``admin_audit_events`` and the Arrow schema every
admin reader emits (FORMAT.md section 8).

Only this module knows the admin field list; the readers (``sources/admin.py``), the chain
description (``admin/chain.py``) and the investigate side import these names.
"""

from __future__ import annotations

import pyarrow as pa

from ..model import UTC_MICROS

#: Text columns of ``admin_audit_events`` before status_code, in table order.
TEXT_FIELDS: tuple[str, ...] = (
    "id",
    "request_id",
    "actor_id",
    "actor_name",
    "actor_scope",
    "action",
    "method",
    "path",
    "zone_id",
    "entity_type",
    "entity_id",
)

#: The 14 fields of the content hash preimage, in order, each followed by 0x1F:
#: the text fields, status_code as decimal text, P (JSON.stringify of the payload),
#: occurred_at as ``toISOString()``.
HASH_FIELDS: tuple[str, ...] = TEXT_FIELDS + ("status_code", "payload_json", "occurred_at")

#: Chain columns (as in the event table).
CHAIN_FIELDS: tuple[str, ...] = ("content_sha256", "prev_content_sha256", "chain_hmac",
                                 "chain_seq")

#: The 18 columns of ``admin_audit_events``, in table order (what a dump carries).
TABLE_COLUMNS: tuple[str, ...] = HASH_FIELDS + CHAIN_FIELDS

#: What the Admin API adds: ``signed`` (the row has a chain_hmac), and in its CSV export
#: ``change_kind`` and ``changed_fields`` (taken from the payload). Readers of the other
#: shapes fill them from chain_hmac and the payload, so every row has them.
DERIVED_FIELDS: tuple[str, ...] = ("signed", "change_kind", "changed_fields")

#: Fields the source shape does not carry at all for this row, comma-separated (as in the
#: event schema): the Admin API carries no hashes, its CSV no payload.
ABSENT_FIELD = "absent_fields"

#: Provenance, as in the event schema: file, 1-based line (CSV/JSON lines) or item index
#: (a JSON page), and the shape's name.
PROVENANCE_FIELDS: tuple[str, ...] = ("source_file", "source_line", "source_shape")

ADMIN_SCHEMA = pa.schema(
    [pa.field(name, pa.string()) for name in TEXT_FIELDS]
    + [
        pa.field("status_code", pa.int32()),
        #: PostgreSQL's jsonb text of the payload (``jsonb.dumps``), NULL for a NULL payload
        pa.field("payload_json", pa.string()),
        pa.field("occurred_at", UTC_MICROS),
        pa.field("content_sha256", pa.string()),
        pa.field("prev_content_sha256", pa.string()),
        pa.field("chain_hmac", pa.string()),
        pa.field("chain_seq", pa.int64()),
        pa.field("signed", pa.bool_()),
        pa.field("change_kind", pa.string()),
        #: the payload's changed_fields joined by one space (as the API's CSV writes it)
        pa.field("changed_fields", pa.string()),
        pa.field(ABSENT_FIELD, pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("source_shape", pa.string()),
    ]
)

ADMIN_COLUMNS: tuple[str, ...] = tuple(ADMIN_SCHEMA.names)

#: The name the global chain (rows whose zone_id is NULL) goes by in reports, findings
#: and ``--zone``. No zone id can be it: zone ids never hold parentheses.
GLOBAL_CHAIN = "(global)"


class AdminShape:
    """Names of the admin export shapes, as recorded in ``source_shape``: never change one."""

    DB_CSV = "admin_db_csv"
    DB_JSONL = "admin_db_jsonl"
    API_JSON = "admin_api_json"
    API_CSV = "admin_api_csv"
    ALL = (DB_CSV, DB_JSONL, API_JSON, API_CSV)


def empty_admin() -> pa.Table:
    """A zero-row table in the admin schema."""
    return ADMIN_SCHEMA.empty_table()
