"""The ledger against what producers signed (FORMAT.md 5 and 7), on Caracal's own
samples: a ledger dump with ingest signatures, a replay spool and dead-letter entries
made by upstream code with the vectors' key."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime

from support.cli import cli
from support.paths import VECTOR_KEY_FILE, VECTORS
from support.verify import KEY

import caracal_forensics as cf
from caracal_forensics.chain import digest

WIRE = VECTORS / "upstream" / "wire"
DUMP = WIRE / "db_sig.csv"
SPOOL = WIRE / "spool"
DLQ = WIRE / "dlq"
NAMED = json.loads((WIRE / "README.json").read_text())


def verify(*paths, key=KEY):
    return cf.Verifier(key=key).verify_paths([str(p) for p in paths])


def kinds(report, kind):
    return [f for f in report.findings if f.kind == kind]


def test_upstream_samples() -> None:
    report = verify(DUMP, SPOOL, DLQ)
    forged = kinds(report, "signature_mismatch")
    assert [f.event_id for f in forged] == [NAMED["dlq_forged"]]
    assert forged[0].source.endswith("1778486400001-0.json:1") and forged[0].fails
    second = kinds(report, "conflicting_version")
    assert [f.event_id for f in second] == [NAMED["dlq_signed_second_version"]]
    # both contents, and the ledger row beside it
    assert "replayed-req-000027" in second[0].detail and "'req-000027'" in second[0].detail
    assert "db_sig.csv:" in second[0].detail
    assert [f.event_id for f in kinds(report, "not_in_ledger")] == [NAMED["spool_only"]]
    assert kinds(report, "not_in_ledger")[0].severity == "warning"
    # the 20 spooled events that reached the ledger match the bytes they came from
    assert not kinds(report, "producer_mismatch")
    assert report.exit_code == 1


def test_spool_against_dump_alone_has_no_failure() -> None:
    report = verify(DUMP, SPOOL)
    assert not [f for f in report.findings if f.fails]
    assert [f.event_id for f in kinds(report, "not_in_ledger")] == [NAMED["spool_only"]]


def _micros(text: str) -> int:
    return digest.occurred_at_micros(datetime.fromisoformat(text + ":00"))


def rewrite_and_rechain(src, dst, event_id: str, decision: str) -> None:
    """What someone holding the key does: rewrite one row and re-chain its zone."""
    with open(src, newline="") as handle:
        reader = csv.DictReader(handle)
        names = reader.fieldnames
        rows = list(reader)
    zone = next(r["zone_id"] for r in rows if r["id"] == event_id)
    prev = None
    for row in sorted((r for r in rows if r["zone_id"] == zone),
                      key=lambda r: int(r["chain_seq"])):
        if row["id"] == event_id:
            row["decision"] = decision
        fields = {**row, "occurred_at": _micros(row["occurred_at"])}
        for name in ("determining_policies_json", "diagnostics_json", "metadata_json"):
            fields[name] = row[name] or None
        row["content_sha256"] = digest.content_sha256(fields)
        row["prev_content_sha256"] = prev or ""
        row["chain_hmac"] = digest.chain_hmac(KEY, row["content_sha256"], prev)
        prev = row["content_sha256"]
    with open(dst, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def test_rewrite_rechained_with_key_is_producer_mismatch(tmp_path) -> None:
    """Issue 17's "Done means": the chain alone cannot see it; the producer's bytes can."""
    victim = NAMED["spool_lines_in_ledger"][3]
    dump = tmp_path / "db.csv"
    rewrite_and_rechain(DUMP, dump, victim, "allow")
    alone = verify(dump)
    assert alone.exit_code == 0, [f.detail for f in alone.findings]
    spool = tmp_path / "spool"
    shutil.copytree(SPOOL, spool)
    report = verify(dump, spool)
    found = kinds(report, "producer_mismatch")
    assert [f.event_id for f in found] == [victim]
    assert found[0].source.startswith(str(dump)) and found[0].chain_seq is not None
    assert "decision" in found[0].detail and "'deny'" in found[0].detail
    assert report.exit_code == 1


def test_cli_json_carries_the_kind(capsys, tmp_path, monkeypatch) -> None:
    victim = NAMED["spool_lines_in_ledger"][3]
    dump = tmp_path / "db.csv"
    rewrite_and_rechain(DUMP, dump, victim, "allow")
    monkeypatch.setenv("AUDIT_HMAC_KEY_FILE", str(VECTOR_KEY_FILE))
    code, out, _ = cli(capsys, "verify", "-s", str(dump), "-s", str(SPOOL), "--json")
    assert code == 1
    assert any(f["kind"] == "producer_mismatch" and f["event_id"] == victim
               for f in json.loads(out)["findings"])


def test_without_key_partial_and_said_so() -> None:
    report = verify(DUMP, SPOOL, DLQ, key=None)
    assert report.exit_code == 3
    assert any("not checked without the key" in f.detail for f in report.findings)
    assert not kinds(report, "signature_mismatch") and not kinds(report, "producer_mismatch")


def test_spool_alone_with_key_is_partial_and_never_arrived() -> None:
    report = verify(SPOOL)
    assert report.exit_code == 3
    assert {f.kind for f in report.findings} == {"unverifiable", "not_in_ledger"}


def test_through_an_opened_snapshot(tmp_path) -> None:
    """The notebook's way (``caracal_forensics.open``, then verify) runs the same checks."""
    from caracal_forensics.chain.verify import verify as verify_con

    victim = NAMED["spool_lines_in_ledger"][0]
    dump = tmp_path / "db.csv"
    rewrite_and_rechain(DUMP, dump, victim, "deny")
    snap = cf.open(str(dump), str(SPOOL))
    report = verify_con(snap.duckdb, key=KEY, inputs=snap.inputs)
    assert [f.event_id for f in kinds(report, "producer_mismatch")] == [victim]


def test_skipped_bad_line_is_not_an_error_in_the_checks(tmp_path) -> None:
    spool = tmp_path / "pending-7-8.ndjson"
    lines = (SPOOL / "pending-4242-1778486400000000000.ndjson").read_bytes().splitlines(True)
    spool.write_bytes(lines[0] + b"{broken\n" + b"".join(lines[1:]))
    report = cf.Verifier(key=KEY, on_bad_line="skip").verify_paths([str(DUMP), str(spool)])
    assert report.skipped_lines == 1
    assert [f.event_id for f in kinds(report, "not_in_ledger")] == [NAMED["spool_only"]]


def test_snapshot_as_the_ledger_and_of_wire_alone(capsys, tmp_path) -> None:
    """A canonical snapshot stands for the dump; a snapshot of wire events stays partial."""
    ledger, wire = tmp_path / "ledger", tmp_path / "wire"
    assert cli(capsys, "ingest", "-s", str(DUMP), "-o", str(ledger))[0] == 0
    report = verify(ledger, SPOOL, DLQ)
    assert [f.event_id for f in kinds(report, "conflicting_version")] == [
        NAMED["dlq_signed_second_version"]]
    assert cli(capsys, "ingest", "-s", str(SPOOL), "-s", str(DLQ), "-o", str(wire))[0] == 0
    assert verify(wire).exit_code == 3


def test_altered_spool_line_is_not_a_signed_version(tmp_path) -> None:
    """A spool line carries no signature of its own: one whose bytes the ledger's row of
    that id was not ingested from is not in the ledger, never a signed second version."""
    victim = NAMED["spool_lines_in_ledger"][0]
    spool = tmp_path / "pending-9-9.ndjson"
    lines = (SPOOL / "pending-4242-1778486400000000000.ndjson").read_bytes().splitlines(True)
    assert victim.encode() in lines[0] and b'"decision":"allow"' in lines[0]
    spool.write_bytes(lines[0].replace(b'"decision":"allow"', b'"decision":"deny"'))
    report = verify(DUMP, spool)
    assert not kinds(report, "conflicting_version") and not kinds(report, "producer_mismatch")
    found = kinds(report, "not_in_ledger")
    assert [f.event_id for f in found] == [victim] and "db_sig.csv:" in found[0].detail


def test_report_says_what_the_producer_checks_covered() -> None:
    checks = verify(DUMP, SPOOL, DLQ).checks
    assert "23 wire event(s) in 3 spool/dead-letter file(s)" in checks["producers"]
    assert "no key" in verify(SPOOL, key=None).checks["producers"]
    assert "producers" not in verify(DUMP).checks
