"""The one event model: field list, hash field order, and the Arrow schema every reader emits.

Only this module knows the field list. Readers, the snapshot writer and the chain code
import these names instead of repeating them (FORMAT.md sections 1 and 2).
"""

from __future__ import annotations

import pyarrow as pa

#: Text fields of an audit event, in table order.
TEXT_FIELDS: tuple[str, ...] = (
    "id",
    "zone_id",
    "event_type",
    "request_id",
    "decision",
    "policy_set_id",
    "policy_set_version_id",
    "manifest_sha",
    "evaluation_status",
)

#: jsonb fields, held everywhere as PostgreSQL's exact ``jsonb::text`` rendering.
JSONB_FIELDS: tuple[str, ...] = (
    "determining_policies_json",
    "diagnostics_json",
    "metadata_json",
)

#: The 12 fields that precede N(occurred_at) in the content hash preimage, in order.
#: Each is followed by the unit separator 0x1F; NULL text is "", NULL jsonb is "null".
HASH_FIELDS: tuple[str, ...] = TEXT_FIELDS + JSONB_FIELDS

#: Chain columns.
CHAIN_FIELDS: tuple[str, ...] = ("content_sha256", "prev_content_sha256", "chain_hmac", "chain_seq")

#: Provenance: where a row came from. ``source_line`` is the 1-based line for line formats
#: (JSON lines, CSV), the 1-based row within the file for Parquet, the 1-based element
#: index within a search page.
PROVENANCE_FIELDS: tuple[str, ...] = ("source_file", "source_line", "source_shape")

#: How precise occurred_at was in the source: 6 = microseconds, 3 = milliseconds (OCSF).
PRECISION_FIELD = "occurred_at_digits"

#: Comma-separated names of fields the source shape does not carry at all for this row
#: (distinct from NULL: a missing evaluation_status cannot be hashed, a NULL one hashes
#: as ""). NULL when the row carries every field.
ABSENT_FIELD = "absent_fields"

UTC_MICROS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [pa.field(name, pa.string()) for name in TEXT_FIELDS]
    + [pa.field(name, pa.string()) for name in JSONB_FIELDS]
    + [
        pa.field("occurred_at", UTC_MICROS),
        pa.field(PRECISION_FIELD, pa.int8()),
        pa.field("ingested_at", UTC_MICROS),
        pa.field("content_sha256", pa.string()),
        pa.field("prev_content_sha256", pa.string()),
        pa.field("chain_hmac", pa.string()),
        pa.field("chain_seq", pa.int64()),
        pa.field("ingest_signature", pa.string()),
        pa.field(ABSENT_FIELD, pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("source_shape", pa.string()),
    ]
)

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)

#: The columns of Caracal's ``audit_events`` table, in table order (what a dump carries);
#: the rest of EVENT_SCHEMA is filled in by the readers.
TABLE_COLUMNS: tuple[str, ...] = tuple(
    name
    for name in EVENT_COLUMNS
    if name not in (PRECISION_FIELD, ABSENT_FIELD, *PROVENANCE_FIELDS)
)

#: The audit_ingest_alerts table, plus provenance.
ALERT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("event_id", pa.string()),
        pa.field("zone_id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("observed_at", UTC_MICROS),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("source_shape", pa.string()),
    ]
)

ALERT_COLUMNS: tuple[str, ...] = tuple(ALERT_SCHEMA.names)


class Shape:
    """Names of the export shapes (FORMAT.md section 4), as recorded in ``source_shape``,
    manifests and reports: never change one. What a shape is and does lives in its class
    (``sources/shapes/``, listed in ``sources/registry.py``), which takes its name from
    here; ``POSTGRES`` and ``ALERTS_SNAPSHOT`` name where rows came from, not a file shape."""

    DB_CSV = "db_csv"
    DB_JSONL = "db_jsonl"
    CLI_JSONL = "cli_jsonl"
    OCSF_PARQUET = "ocsf_parquet"
    SEARCH_PAGE = "search_page"
    #: Admin API exports (FORMAT.md 6): JSON pages/items/by-request/explain, and the CSV
    API_JSON = "api_json"
    API_CSV = "api_csv"
    SNAPSHOT = "snapshot"
    ALERTS_CSV = "alerts_csv"
    ALERTS_JSONL = "alerts_jsonl"
    ALERTS_SNAPSHOT = "alerts_snapshot"
    #: before the ledger (FORMAT.md 7): a producer's replay spool, dead-letter entries
    WIRE_SPOOL = "wire_spool"
    DLQ_ENTRY = "dlq_entry"
    WIRE_SHAPES = (WIRE_SPOOL, DLQ_ENTRY)
    #: rows read live from a Caracal PostgreSQL by ``snapshot`` (events and alerts alike)
    POSTGRES = "postgres"

    EVENT_SHAPES = (DB_CSV, DB_JSONL, CLI_JSONL, OCSF_PARQUET, SEARCH_PAGE, SNAPSHOT, POSTGRES,
                    API_JSON, API_CSV, WIRE_SPOOL, DLQ_ENTRY)
    ALERT_SHAPES = (ALERTS_CSV, ALERTS_JSONL, ALERTS_SNAPSHOT)


#: What ``source_line`` counts in the rows of a shape whose rows are not a file's lines:
#: an OCSF file's rows, a search page's elements of its "events" array (else lines).
SOURCE_LINE_UNITS = {Shape.OCSF_PARQUET: "row", Shape.SEARCH_PAGE: "element"}


def source_line_unit(shape: str | None) -> str:
    """The word an error puts before ``source_line`` for a row of ``shape``."""
    return SOURCE_LINE_UNITS.get(shape or "", "line")


def empty_events() -> pa.Table:
    """A zero-row table in the event schema (so an empty source still has columns)."""
    return EVENT_SCHEMA.empty_table()
