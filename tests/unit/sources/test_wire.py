"""Events before the ledger (FORMAT.md 7): replay spools and dead-letter entries read as
registered shapes, normalised as ingest normalises them, with provenance."""

from __future__ import annotations

import json
import shutil

import pytest
from support.cli import cli
from support.paths import VECTORS

import caracal_forensics as cf
from caracal_forensics import jsonb
from caracal_forensics.errors import InputError
from caracal_forensics.model import Shape
from caracal_forensics.sources._batch import BadLines
from caracal_forensics.sources.wire import normalise, spool_events

WIRE = VECTORS / "upstream" / "wire"
SPOOL = WIRE / "spool" / "pending-4242-1778486400000000000.ndjson"
DLQ = WIRE / "dlq"


def test_shapes_detected_and_read_with_provenance() -> None:
    snap = cf.open(str(SPOOL), str(DLQ))
    assert sorted({i.shape for i in snap.inputs}) == [Shape.DLQ_ENTRY, Shape.WIRE_SPOOL]
    rows = snap.duckdb.execute(
        "SELECT id, source_shape, source_line, content_sha256, chain_seq, ingest_signature"
        " FROM events ORDER BY source_file, source_line").fetchall()
    assert len(rows) == 23
    spooled = [r for r in rows if r[1] == Shape.WIRE_SPOOL]
    assert [r[2] for r in spooled] == list(range(1, 22))
    assert spooled[-1][0] == "ev-0000206-spooled-only"
    assert all(r[3] is None and r[4] is None for r in rows)  # no chain fields
    dead = {r[0]: r[5] for r in rows if r[1] == Shape.DLQ_ENTRY}
    detail = json.loads((DLQ / "1778486400002-0.json").read_text())
    assert dead["ev-0000040"] == detail["fields"]["src_sig"]


def test_dump_still_detected_beside_wire(tmp_path) -> None:
    # a ledger dump's JSON lines named like a spool keep their chain fields: not a spool
    snap = cf.open(str(VECTORS / "export" / "db.jsonl"))
    assert snap.inputs[0].shape == Shape.DB_JSONL


def test_normalised_as_ingest() -> None:
    raw = (b'{"id":"e1","zone_id":"z\\u0000a","event_type":"t","request_id":"r",'
           b'"decision":"deny","evaluation_status":"complete","determining_policies_json":'
           b'[{"policy":"a\\u003cb"}],"diagnostics_json":null,"metadata_json":{"b":1.50,"a":'
           b'"x\\u0000y"},"occurred_at":"2026-05-11T08:00:00.123456789+02:00"}')
    row = normalise(raw)
    assert row["zone_id"] == "za"
    assert row["policy_set_id"] is None  # omitted when empty
    assert row["determining_policies_json"] == '[{"policy": "a<b"}]'
    assert row["diagnostics_json"] is None
    assert row["metadata_json"] == jsonb.jsonb_text('{"a": "xy", "b": 1.50}')
    # 06:00:00.123456 UTC: nanoseconds truncated, never rounded
    assert row["occurred_at"] % 1_000_000 == 123456
    assert row["occurred_at"] // 1_000_000 % 86400 == 6 * 3600


def test_bad_spool_line_named(tmp_path) -> None:
    spool = tmp_path / "pending-1-2.ndjson"
    lines = SPOOL.read_bytes().splitlines()
    spool.write_bytes(lines[0] + b"\n{not json\n" + lines[1] + b"\n")
    with pytest.raises(InputError, match="line 2"):
        list(spool_events(str(spool), BadLines()))
    bad = BadLines(skip=True)
    assert len(list(spool_events(str(spool), bad))) == 2 and bad.count == 1


def test_dlq_list_json(tmp_path) -> None:
    detail = json.loads((DLQ / "1778486400001-0.json").read_text())
    entry = {k: detail[k] for k in ("id", "source_id", "reason", "received_at",
                                    "age_seconds", "replayable", "event_id", "zone_id",
                                    "event_type", "request_id", "decision", "source_sig")}
    page = tmp_path / "dlq.json"
    page.write_text(json.dumps({"entries": [entry], "next_cursor": None}))
    snap = cf.open(str(page))
    assert snap.inputs[0].shape == Shape.DLQ_ENTRY
    row = snap.duckdb.execute("SELECT id, decision, ingest_signature, occurred_at,"
                              " absent_fields FROM events").fetchone()
    assert row[:3] == ("ev-0000010", "deny", entry["source_sig"])
    assert row[3] is None and "occurred_at" in row[4]  # never invented


def test_tail_explain_stats_read_wire(capsys, tmp_path) -> None:
    spool = tmp_path / SPOOL.name
    shutil.copy(SPOOL, spool)
    code, out, _ = cli(capsys, "audit", "tail", "-s", str(spool), "--json")
    assert code == 0 and "ev-0000206-spooled-only" in out
    code, out, _ = cli(capsys, "explain", "req-000071", "-s", str(spool))
    assert code == 0 and "ev-0000104" in out and f"{spool.name} line 1" in out
    code, out, _ = cli(capsys, "stats", "-s", str(spool), "-s", str(DLQ), "--json")
    assert code == 0 and "23" in out


def test_verify_wire_alone_is_partial() -> None:
    from support.verify import KEY

    report = cf.Verifier(key=KEY).verify_paths([str(SPOOL)])
    assert report.exit_code == 3  # partial, never intact
    assert "unverifiable" in {f.kind for f in report.findings}
    assert not [f for f in report.findings if f.fails]
    report = cf.Verifier().verify_paths([str(SPOOL)])
    assert report.exit_code == 3


def test_pretty_printed_dlq_detail(tmp_path) -> None:
    """An entry saved through ``jq .`` is the same entry."""
    detail = json.loads((DLQ / "1778486400002-0.json").read_text())
    saved = tmp_path / "entry.json"
    saved.write_text(json.dumps(detail, indent=2))
    snap = cf.open(str(saved))
    assert snap.inputs[0].shape == Shape.DLQ_ENTRY
    assert snap.duckdb.execute("SELECT request_id FROM events").fetchone() == (
        "replayed-req-000027",)


def test_broken_dlq_entry_is_one_error_line(capsys, tmp_path) -> None:
    broken = tmp_path / "entry.json"
    broken.write_text('{"entries": [')
    code, _, err = cli(capsys, "stats", "-s", str(broken))
    assert code == 2 and str(broken) in err and "Traceback" not in err


def test_dlq_entry_past_the_limit_is_named() -> None:
    from caracal_forensics.sources.wire import dlq_events

    with pytest.raises(InputError, match="longer than 100 bytes"):
        list(dlq_events(str(DLQ / "1778486400001-0.json"), BadLines(max_line=100)))


def test_spool_line_past_the_limit_is_never_held(tmp_path) -> None:
    """A spool is read line by line like every JSON lines file: a line past the maximum
    is a bad line naming its number, or skipped, the lines after it keeping theirs."""
    lines = SPOOL.read_bytes().splitlines(keepends=True)
    path = tmp_path / SPOOL.name
    path.write_bytes(lines[0] + b'{"id": "' + b"x" * 5000 + b'"}\n' + b"".join(lines[1:]))
    limit = max(len(line) for line in lines) + 10
    with pytest.raises(InputError, match="line 2: a line longer than the maximum"):
        list(spool_events(str(path), BadLines(max_line=limit)))
    bad = BadLines(skip=True, max_line=limit)
    events = list(spool_events(str(path), bad))
    assert bad.count == 1 and len(events) == len(lines)
    assert [e.line for e in events][:2] == [1, 3]
