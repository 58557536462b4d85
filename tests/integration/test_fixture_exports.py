"""The bundled fixtures of the shapes beside the table dumps (fixtures/admin-api/,
fixtures/wire/, written by fixtures/caracal_exports.py): each is read as its shape and
agrees with the table dump of the same events (reconcile), the producer checks find
exactly the dead letters and spool lines made to be found, and the generator is
deterministic. Their PostgreSQL-side values: tests/integration/postgres/
test_fixtures_upstream.py."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import FIXTURE_KEY_FILE, FIXTURES

import caracal_forensics as cf
from caracal_forensics.sources.api_csv import zones_given
from caracal_forensics.sources.detect import detect_shape

DUMP = str(FIXTURES / "export" / "db.csv")
API = FIXTURES / "admin-api"
WIRE = FIXTURES / "wire"
ZONES = ["zone-alpha", "zone-beta", "zone:prod/eu-1"]
SPOOL = next((WIRE / "replay").glob("pending-*.ndjson"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_generator_writes_the_same_bytes_again(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(FIXTURES / "make_fixtures.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    for name in ("admin-api", "wire"):
        assert _files(tmp_path / name) == _files(FIXTURES / name), name
    assert (tmp_path / "export" / "db.csv").read_bytes() == Path(DUMP).read_bytes()


@pytest.mark.parametrize("pattern, shape", [
    ("admin-api/pages/*.json", "api_json"), ("admin-api/items/*.jsonl", "api_json"),
    ("admin-api/*.csv", "api_csv"), ("wire/replay/*.ndjson", "wire_spool"),
    ("wire/dlq/*.json", "dlq_entry")])
def test_each_file_is_detected_as_its_shape(pattern: str, shape: str) -> None:
    files = sorted(FIXTURES.glob(pattern))
    assert files
    assert {detect_shape(str(f)) for f in files} == {shape}


@pytest.mark.parametrize("against", ["pages", "items", "audit-*.csv"])
def test_the_admin_api_exports_agree_with_the_dump(against: str) -> None:
    with zones_given(ZONES):  # audit-zone_prod_eu-1.csv is zone:prod/eu-1
        result = cf.reconcile(DUMP, str(API / against))
    assert result.ok, result.findings[:3]
    assert result.matched == result.source_events == result.against_events == 300
    assert {i.shape for i in result.against_inputs} == {
        "api_csv" if against.endswith(".csv") else "api_json"}


def test_a_page_holds_the_newest_events_first_with_a_cursor_to_the_next() -> None:
    pages = sorted((API / "pages").glob("audit-zone-alpha-page*.json"))
    assert len(pages) > 1
    snap = cf.open(*map(str, pages))
    first = snap.sql("SELECT occurred_at FROM events WHERE source_file = $f ORDER BY "
                     "source_line", {"f": str(pages[0])})["occurred_at"].to_list()
    assert first == sorted(first, reverse=True)
    assert b'"next_cursor":null' in pages[-1].read_bytes()
    assert b'"next_cursor":null' not in pages[0].read_bytes()


def test_the_spool_holds_ledger_events_and_two_that_never_arrived() -> None:
    result = cf.reconcile(str(SPOOL), DUMP)
    assert not result.findings_of("field_mismatch")
    only_in_spool = {f.event_id for f in result.findings_of("missing_in_source")
                     if f.missing_from == "against"}
    assert len(only_in_spool) == 2 and all(i.endswith("-spooled-only") for i in only_in_spool)
    assert result.matched == 30


def test_the_ledger_signature_is_the_hmac_of_the_spool_line() -> None:
    key = bytes.fromhex(FIXTURE_KEY_FILE.read_text().strip())
    snap = cf.open(DUMP)
    signatures = dict(snap.sql("SELECT id, ingest_signature FROM events").rows())
    lines = SPOOL.read_bytes().splitlines()
    matched = 0
    for line in lines:
        event_id = line.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
        if event_id in signatures:
            assert signatures[event_id] == hmac.new(key, line, hashlib.sha256).hexdigest()
            matched += 1
    assert matched == 30


def test_the_dead_letters_are_a_forgery_a_second_version_and_a_lost_event() -> None:
    report = cf.Verifier(key=FIXTURE_KEY_FILE.read_text()).verify_paths([DUMP, str(WIRE)])
    kinds = {kind: {(f.event_id, Path(f.source or "").parent.name)
                    for f in report.findings_of(kind)}
             for kind in ("signature_mismatch", "conflicting_version", "not_in_ledger",
                          "producer_mismatch")}
    assert kinds["signature_mismatch"] == {("ev-0000013", "dlq")}
    assert kinds["conflicting_version"] == {("ev-0000020", "dlq")}
    assert {event for event, _ in kinds["not_in_ledger"]} == {
        "ev-0000030-dead-lettered", *(f"ev-00000{n}-spooled-only" for n in (68, 69))}
    assert not kinds["producer_mismatch"]  # every spooled event reached the ledger intact
    details = [str(p) for p in sorted((WIRE / "dlq").glob("1*.json"))]
    result = cf.reconcile(details, DUMP, zone=["zone-alpha", "zone-beta"])
    assert {(f.event_id, f.field) for f in result.findings_of("field_mismatch")} == {
        ("ev-0000013", "decision"), ("ev-0000020", "request_id"),
        ("ev-0000020", "ingest_signature")}  # signed anew: the ledger row's is the first
