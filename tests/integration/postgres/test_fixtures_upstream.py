"""The fixtures of the Admin API's exports and of the wire events (fixtures/admin-api/,
fixtures/wire/) against what a real PostgreSQL holds of the same events: the API's
values are PostgreSQL's jsonb text as JavaScript parses it (doubles, integer-like keys
first, sensitive values redacted) and its timestamps cut to milliseconds; a wire event's
JSON fields become the ledger's jsonb text when PostgreSQL casts them, as ingest does."""

from __future__ import annotations

import csv
import io
import json

import pytest
from support.paths import FIXTURES, SCHEMA

from caracal_forensics.reconcile import REDACTED, SENSITIVE

EXPORT = FIXTURES / "export"
API = FIXTURES / "admin-api"
WIRE = FIXTURES / "wire"
JSONB = ("determining_policies_json", "diagnostics_json", "metadata_json")


@pytest.fixture(scope="module")
def upstream_db(pg) -> str:
    """The fixtures' table dump loaded into PostgreSQL."""
    name = pg.create_database("fixtures_upstream", SCHEMA)
    with pg.connect(dbname=name) as conn, conn.cursor() as cur:
        with cur.copy("COPY audit_events FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write((EXPORT / "db.csv").read_bytes())
    return name


@pytest.fixture(scope="module")
def ledger(pg, upstream_db) -> dict[str, dict]:
    """Per id, the jsonb columns as the server prints them, occurred_at/ingested_at cut
    to milliseconds (ISO with Z), and the policy names joined by a space."""
    with pg.connect(dbname=upstream_db) as conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        stamp = """to_char(date_trunc('milliseconds', {0}), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
        cur.execute(
            "SELECT id, determining_policies_json::text, diagnostics_json::text, "
            f"metadata_json::text, {stamp.format('occurred_at')}, "
            f"{stamp.format('ingested_at')}, ingest_signature, "
            "(SELECT string_agg(p->>'policy', ' ') FROM "
            " jsonb_array_elements(determining_policies_json) p) FROM audit_events")
        names = ("id", *JSONB, "occurred_at", "ingested_at", "ingest_signature", "policies")
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _js_parse(text: str | None) -> object:
    """JSON.parse as node-postgres does it: doubles, and objects as (key, value) lists in
    JavaScript's order (integer-like keys first, ascending; then as written)."""
    if text is None:
        return None

    def ordered(pairs: list) -> list:
        index = [p for p in pairs if p[0].isdigit() and (p[0] == "0" or p[0][0] != "0")
                 and int(p[0]) < 2**32 - 1]
        return sorted(index, key=lambda p: int(p[0])) + [p for p in pairs if p not in index]

    return json.loads(text, object_pairs_hook=ordered, parse_int=float, parse_float=float)


def _redact(value: object) -> object:
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        return [(k, REDACTED if k.lower() in SENSITIVE else _redact(v)) for k, v in value]
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _items() -> list[str]:
    return [line for path in sorted((API / "items").glob("*.jsonl"))
            # "\n" only: a raw U+2028 inside a string (JSON.stringify leaves it) is no break
            for line in path.read_text(encoding="utf-8").split("\n") if line]


def test_every_api_item_is_postgres_row_as_javascript_sends_it(ledger) -> None:
    items = _items()
    assert len(items) == len(ledger) == 300
    for text in items:
        item = json.loads(text, object_pairs_hook=lambda pairs: [tuple(p) for p in pairs],
                          parse_int=float, parse_float=float)
        got = dict(item)
        row = ledger[got["id"]]
        for name in JSONB:
            expected = _js_parse(row[name])
            if name == "metadata_json":
                expected = _redact(expected)
            assert got[name] == expected, (got["id"], name)
        assert got["occurred_at"] == row["occurred_at"]
        assert got["ingested_at"] == row["ingested_at"]


def test_the_pages_hold_the_same_items() -> None:
    paged = sorted(json.dumps(item, sort_keys=True) for path in (API / "pages").glob("*.json")
                   for item in json.loads(path.read_text(encoding="utf-8"))["items"])
    lined = sorted(json.dumps(json.loads(line), sort_keys=True) for line in _items())
    assert paged == lined


def test_the_csv_cells_are_postgres_values(ledger) -> None:
    seen = 0
    for path in sorted(API.glob("audit-*.csv")):
        raw = path.read_bytes()
        assert raw.count(b"\r\n") == raw.count(b"\n")  # CRLF only
        for record in csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")):
            row = ledger[record["id"]]
            assert record["occurred_at"] == row["occurred_at"]
            assert record["determining_policies"] == (row["policies"] or "")
            metadata = dict(_js_parse(row["metadata_json"]) or [])
            scopes = metadata.get("requested_scopes")
            assert record["requested_scopes"] == (" ".join(scopes) if scopes else "")
            seen += 1
    assert seen == 300


def test_postgres_turns_each_wire_event_into_its_ledger_row(pg, upstream_db, ledger) -> None:
    """ingest renders the wire event's JSON fields as jsonb: PostgreSQL's own cast of the
    spool line's fields gives the ledger's text, and the ledger's ingest_signature is the
    line's HMAC (tests/integration/test_fixture_exports.py)."""
    [spool] = sorted((WIRE / "replay").glob("pending-*.ndjson"))
    checked = 0
    with pg.connect(dbname=upstream_db) as conn, conn.cursor() as cur:
        for line in spool.read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            event = json.loads(line)
            if event["id"] not in ledger:
                continue  # never arrived (the test of the fixtures' shapes names them)
            cur.execute("SELECT (%(e)s::jsonb -> 'determining_policies_json')::text, "
                        "(%(e)s::jsonb -> 'diagnostics_json')::text, "
                        "(%(e)s::jsonb -> 'metadata_json')::text", {"e": line})
            casts = cur.fetchone()
            for name, text in zip(JSONB, casts, strict=True):
                expected = ledger[event["id"]][name]
                assert (None if text in (None, "null") else text) == expected, (
                    event["id"], name)
            checked += 1
    assert checked == 30

