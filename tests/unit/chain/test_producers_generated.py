"""Issue 17's "Done means" on generated events: a ledger dump with ingest signatures and
the spool lines the producer wrote for the same events (Go ``json.Marshal``: HTML
escapes, nanoseconds, a NUL ingest strips), one decision rewritten and the zone
re-chained with the key."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

from support.verify import KEY, chain, event

import caracal_forensics as cf
from caracal_forensics.model import HASH_FIELDS
from caracal_forensics.sources.wire import normalise

WIRE_KEYS = ("id", "zone_id", "event_type", "request_id", "decision", "policy_set_id",
             "policy_set_version_id", "manifest_sha", "evaluation_status",
             "determining_policies_json", "diagnostics_json", "metadata_json")


def go_marshal(row: dict, nanos: int) -> bytes:
    """The wire bytes as a Go producer writes them (FORMAT.md 7)."""
    obj = {}
    for name in WIRE_KEYS:
        value = row[name]
        if name.endswith("_json"):
            if value is None and name == "metadata_json":
                continue  # omitted when absent
            obj[name] = None if value is None else json.loads(value)
        elif value or name not in ("policy_set_id", "policy_set_version_id", "manifest_sha"):
            obj[name] = value
    stamp = row["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{nanos:03d}Z"
    obj["occurred_at"] = stamp
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text.encode("utf-8")


def sign(data: bytes) -> str:
    return hmac.new(KEY, data, hashlib.sha256).hexdigest()


def dump_line(row: dict) -> str:
    out = {name: row[name] for name in HASH_FIELDS}
    for name in ("determining_policies_json", "diagnostics_json", "metadata_json"):
        out[name] = None if row[name] is None else json.loads(row[name])
    out["occurred_at"] = row["occurred_at"].isoformat()
    out["ingested_at"] = (row["occurred_at"] + timedelta(seconds=1)).isoformat()
    for name in ("content_sha256", "prev_content_sha256", "chain_hmac", "chain_seq",
                 "ingest_signature"):
        out[name] = row[name]
    return json.dumps(out, ensure_ascii=False)


def build(tmp_path, rewrite: str | None = None):
    """The producer's spool and the ledger ingested from it (``rewrite``: that event's
    decision flipped afterwards and its zone re-chained with the key)."""
    produced = []
    for i in range(12):
        row = event(i, "zone-a" if i % 3 else "zone-b",
                    metadata_json=f'{{"note": "a<b & c>d \u2028 {i}", "n": {i}}}',
                    request_id=f"req-\x00{i}" if i == 5 else f"req-{i}",
                    manifest_sha=None if i == 7 else "sha256:90827c24")
        produced.append(go_marshal(row, nanos=789))
    ledger = []
    for data in produced:
        row = {**normalise(data), "ingest_signature": sign(data)}
        row["occurred_at"] = datetime.fromtimestamp(0, timezone.utc) + timedelta(
            microseconds=row["occurred_at"])
        if row["id"] == rewrite:
            row["decision"] = "allow" if row["decision"] == "deny" else "deny"
        ledger.append(row)
    ledger = chain(ledger, KEY)
    dump = tmp_path / "db.jsonl"
    dump.write_text("".join(dump_line(r) + "\n" for r in ledger))
    spool = tmp_path / "pending-31-1778486400000000000.ndjson"
    spool.write_bytes(b"".join(d + b"\n" for d in produced))
    return dump, spool


def test_generated_spool_matches_its_ledger(tmp_path) -> None:
    dump, spool = build(tmp_path)
    report = cf.Verifier(key=KEY).verify_paths([str(dump), str(spool)])
    assert not [f for f in report.findings if f.kind != "unverifiable"], report.findings


def test_rewrite_rechained_is_named(tmp_path) -> None:
    dump, spool = build(tmp_path, rewrite="ev-0000004")
    assert cf.Verifier(key=KEY).verify_paths([str(dump)]).exit_code == 0  # intact alone
    report = cf.Verifier(key=KEY).verify_paths([str(dump), str(spool)])
    found = [f for f in report.findings if f.kind == "producer_mismatch"]
    assert [(f.event_id, f.source) for f in found] == [("ev-0000004", f"{dump}:5")]
    assert report.exit_code == 1
