"""Helpers for the verify tests: chained events made with the reference digest, shape
conversions, a DuckDB connection over rows, and compact views of a report's findings."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa

from caracal_forensics.chain import digest
from caracal_forensics.chain.report import Report
from caracal_forensics.model import EVENT_SCHEMA, HASH_FIELDS, Shape
from support.paths import VECTOR_EXPORT, VECTOR_KEY_FILE

EXPORT = VECTOR_EXPORT
KEY_HEX = VECTOR_KEY_FILE.read_text().strip()
KEY = bytes.fromhex(KEY_HEX)
OTHER_KEY = bytes(range(100, 132))

T0 = datetime(2026, 5, 11, 8, 0, 0, 123456, tzinfo=timezone.utc)


def event(i: int, zone: str = "zone-a", **fields) -> dict:
    """One plausible event (no chain fields yet); ``fields`` override."""
    row = {name: None for name in EVENT_SCHEMA.names}
    row.update(
        id=f"ev-{i:07d}",
        zone_id=zone,
        event_type="token_exchange" if i % 3 else "step_up_issued",
        request_id=f"req-{i // 2:06d}",
        decision="deny" if i % 4 == 0 else "allow",
        policy_set_id="ps-payments",
        policy_set_version_id="psv-001",
        manifest_sha="sha256:90827c24",
        evaluation_status="complete",
        determining_policies_json='[{"policy": "payments-policy"}]',
        diagnostics_json="[]" if i % 2 else '[{"step_up_required": "mfa"}]',
        metadata_json=f'{{"note": "caf\u00e9 \u2028 {i}", "principal_id": "app-{i % 7}"}}',
        occurred_at=T0 + timedelta(microseconds=1_371_017 * i),
        occurred_at_digits=6,
        ingested_at=T0 + timedelta(microseconds=1_371_017 * i + 250_000),
        source_file="gen.jsonl",
        source_line=i + 1,
        source_shape=Shape.DB_JSONL,
    )
    row.update(fields)
    return row


def chain(rows: Iterable[dict], key: bytes = KEY) -> list[dict]:
    """Compute content_sha256, prev, chain_hmac and chain_seq per zone, as Caracal does."""
    heads: dict[str, tuple[str | None, int]] = {}
    out = []
    for row in rows:
        row = dict(row)
        prev, seq = heads.get(row["zone_id"], (None, 0))
        content = digest.content_sha256(row)
        row.update(content_sha256=content, prev_content_sha256=prev,
                   chain_hmac=digest.chain_hmac(key, content, prev), chain_seq=seq + 1)
        heads[row["zone_id"]] = (content, seq + 1)
        out.append(row)
    return out


def events(n: int, zones: Iterable[str] = ("zone-a", "zone-b"), key: bytes = KEY,
           seed: int = 7) -> list[dict]:
    """``n`` chained events spread over ``zones`` in a random interleaving."""
    zones = list(zones)
    rng = random.Random(seed)
    return chain((event(i, rng.choice(zones)) for i in range(n)), key)


def renumber(rows: list[dict], source_file: str = "gen.jsonl") -> list[dict]:
    """Give rows consecutive source lines (as if the file were written out again)."""
    return [dict(r, source_file=source_file, source_line=i + 1) for i, r in enumerate(rows)]


def as_ocsf(rows: list[dict]) -> list[dict]:
    """The hourly OCSF shape: occurred_at in milliseconds, no prev column, no ingested_at."""
    out = []
    for r in rows:
        r = dict(r)
        t = r["occurred_at"]
        r.update(occurred_at=t - timedelta(microseconds=t.microsecond % 1000),
                 occurred_at_digits=3, prev_content_sha256=None, ingested_at=None,
                 absent_fields="ingested_at,prev_content_sha256,ingest_signature",
                 source_shape=Shape.OCSF_PARQUET)
        out.append(r)
    return out


def as_cli(rows: list[dict], evaluation_status: bool = True, chain_seq: bool = True) -> list[dict]:
    """`caracal audit tail --json`: no content hash, no prev; optionally fewer fields."""
    out = []
    absent = ["ingested_at", "content_sha256", "prev_content_sha256", "ingest_signature"]
    if not evaluation_status:
        absent.insert(0, "evaluation_status")
    if not chain_seq:
        absent.append("chain_seq")
    for r in rows:
        r = dict(r, content_sha256=None, prev_content_sha256=None, ingested_at=None,
                 source_shape=Shape.CLI_JSONL, absent_fields=",".join(absent))
        if not evaluation_status:
            r["evaluation_status"] = None
        if not chain_seq:
            r["chain_seq"] = None
        out.append(r)
    return out


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{k: r.get(k) for k in EVENT_SCHEMA.names} for r in rows],
                                schema=EVENT_SCHEMA)


def connect(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view ``events`` over ``rows`` (as Snapshot.duckdb has)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("_rows", table(rows))
    con.execute("CREATE VIEW events AS SELECT * FROM _rows")
    return con


def verify_rows(rows: list[dict], **kwargs) -> Report:
    from caracal_forensics.chain.verify import verify

    kwargs.setdefault("key", KEY)
    return verify(connect(rows), **kwargs)


def found(report: Report, *, severities: tuple[str, ...] = ("fails", "warning", "info",
                                                              "unverifiable")) -> set[tuple]:
    """Findings as {(kind, event_id)} for exact assertions."""
    return {(f.kind, f.event_id) for f in report.findings if f.severity in severities}


def failures(report: Report) -> set[tuple]:
    return found(report, severities=("fails",))


def edited(rows: list[dict], index: int, **fields) -> list[dict]:
    """A copy of rows with one row's fields changed (nothing recomputed)."""
    rows = copy.copy(rows)
    rows[index] = dict(rows[index], **fields)
    return rows


def zone_rows(rows: list[dict], zone: str) -> list[dict]:
    return [r for r in rows if r["zone_id"] == zone]


__all__ = [
    "HASH_FIELDS", "KEY", "KEY_HEX", "OTHER_KEY", "EXPORT", "event", "chain", "events",
    "renumber", "as_ocsf", "as_cli", "table", "connect", "verify_rows", "found", "failures",
    "edited", "zone_rows",
]


def rehash_manifest(case, edit=None) -> None:
    """Recompute a snapshot manifest's file list as an attacker would (sizes and SHA-256
    of the files now in directory ``case``), and apply ``edit`` to the rest of it."""
    import hashlib
    import json
    from pathlib import Path

    case = Path(case)
    data = json.loads((case / "manifest.json").read_text("utf-8"))
    files = []
    for path in sorted(p for p in case.rglob("*") if p.is_file() and p.name != "manifest.json"):
        blob = path.read_bytes()
        files.append({"path": path.relative_to(case).as_posix(), "bytes": len(blob),
                      "sha256": hashlib.sha256(blob).hexdigest()})
    data["files"] = files
    data["bytes"] = sum(f["bytes"] for f in files)
    if edit is not None:
        edit(data)
    (case / "manifest.json").write_text(json.dumps(data, indent=2), "utf-8")
