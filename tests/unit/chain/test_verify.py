"""verify(): every finding kind, flagged at the right event and nothing else flagged.

Rows are built with the reference digest (tests/support/verify.py) and handed to verify as a
DuckDB view, so these tests pin down the verifier's logic independently of the readers.
"""

from __future__ import annotations

import random

import pytest
from support.verify import (
    KEY,
    OTHER_KEY,
    as_cli,
    as_ocsf,
    chain,
    connect,
    edited,
    event,
    events,
    failures,
    found,
    renumber,
    verify_rows,
    zone_rows,
)

from caracal_forensics.chain import digest
from caracal_forensics.chain.report import Report
from caracal_forensics.chain.verify import show_preimage, verify
from caracal_forensics.errors import HmacKeyError, NotFoundError

ROWS = events(40, zones=("zone-a", "zone-b"))
A = zone_rows(ROWS, "zone-a")


def idx(rows: list[dict], zone: str, seq: int) -> int:
    return next(i for i, r in enumerate(rows) if r["zone_id"] == zone and r["chain_seq"] == seq)


def at(rows: list[dict], zone: str, seq: int) -> str:
    return rows[idx(rows, zone, seq)]["id"]


def forge(row: dict, **fields) -> dict:
    """An edit by someone without the key: fields changed, content hash recomputed."""
    row = dict(row, **fields)
    row["content_sha256"] = digest.content_sha256(row)
    return row


# --- intact ---------------------------------------------------------------------------


def test_intact() -> None:
    report = verify_rows(ROWS)
    assert report.status == "intact" and report.exit_code == 0
    assert report.findings == []
    assert report.events_checked == 40
    zone = report.zone("zone-a")
    assert zone.events == len(A) and zone.first_seq == 1 and zone.last_seq == len(A)
    assert zone.last_content_sha256 == A[-1]["content_sha256"] and zone.status == "intact"
    assert report.key_fingerprint.startswith("sha256:")


def test_key_as_hex_text() -> None:
    assert verify_rows(ROWS, key=KEY.hex()).status == "intact"


def test_bad_key_is_usage_error() -> None:
    with pytest.raises(HmacKeyError):
        verify_rows(ROWS, key="00ff")


def test_file_order_does_not_matter() -> None:
    shuffled = ROWS[:]
    random.Random(3).shuffle(shuffled)
    report = verify_rows(renumber(shuffled))
    assert report.status == "intact" and report.findings == []


def test_chain_runs_across_files() -> None:
    rows = [dict(r, source_file=f"part-{i % 3}.jsonl") for i, r in enumerate(ROWS)]
    assert verify_rows(rows).findings == []


def test_connection_is_left_as_found() -> None:
    con = connect(ROWS)
    tables = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
    con.execute("SET memory_limit = '2GB'")
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
    verify(con, key=KEY)
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == tables
    assert con.execute("SELECT current_setting('memory_limit')").fetchone() == limit
    assert [d for (d,) in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
            if d.startswith("_cf")] == []


# --- per event --------------------------------------------------------------------------


def test_field_edited() -> None:
    i = idx(ROWS, "zone-a", 5)
    rows = edited(ROWS, i, decision="allow" if ROWS[i]["decision"] == "deny" else "deny")
    report = verify_rows(rows)
    assert found(report) == {("content_mismatch", ROWS[i]["id"])}
    f = report.findings[0]
    assert f.chain_seq == 5 and f.source == f"gen.jsonl:{i + 1}" and f.severity == "fails"
    assert report.status == "tampered" and report.exit_code == 1
    assert report.zone("zone-a").status == "tampered"
    assert report.zone("zone-b").status == "intact"


def test_jsonb_edited() -> None:
    i = idx(ROWS, "zone-b", 3)
    rows = edited(ROWS, i, metadata_json=ROWS[i]["metadata_json"].replace("app-", "app-9"))
    assert found(verify_rows(rows)) == {("content_mismatch", ROWS[i]["id"])}


def test_occurred_at_edited_by_a_microsecond() -> None:
    from datetime import timedelta

    i = idx(ROWS, "zone-a", 2)
    rows = edited(ROWS, i, occurred_at=ROWS[i]["occurred_at"] + timedelta(microseconds=1))
    assert found(verify_rows(rows)) == {("content_mismatch", ROWS[i]["id"])}


def test_forged_row_without_key() -> None:
    """Content hash recomputed after the edit: only the HMAC can tell."""
    i = idx(ROWS, "zone-a", 4)
    rows = ROWS[:]
    rows[i] = forge(rows[i], decision="allow", event_type="replay_detected")
    report = verify_rows(rows)
    assert found(report) == {("hmac_mismatch", ROWS[i]["id"])}
    # seq 5 still links to the original: reported with the forged row, not as a second finding
    assert A[4]["prev_content_sha256"] in report.findings[0].detail
    # without the key the broken link into seq 5 is what shows
    report = verify_rows(rows, key=None)
    assert failures(report) == {("chain_break", at(ROWS, "zone-a", 5))}
    assert report.status == "tampered"


def test_forged_row_and_successor_link() -> None:
    """The forger also rewrites the next row's prev: both rows fail their HMAC."""
    i, j = idx(ROWS, "zone-a", 4), idx(ROWS, "zone-a", 5)
    rows = ROWS[:]
    rows[i] = forge(rows[i], decision="allow", event_type="replay_detected")
    rows[j] = dict(rows[j], prev_content_sha256=rows[i]["content_sha256"])
    assert found(verify_rows(rows)) == {("hmac_mismatch", ROWS[i]["id"]),
                                        ("hmac_mismatch", ROWS[j]["id"])}


def test_hmac_field_edited() -> None:
    i = idx(ROWS, "zone-b", 2)
    rows = edited(ROWS, i, chain_hmac="0" * 64)
    assert found(verify_rows(rows)) == {("hmac_mismatch", ROWS[i]["id"])}


def test_stored_content_hash_edited() -> None:
    i = idx(ROWS, "zone-b", 2)
    rows = edited(ROWS, i, content_sha256="ab" * 32)
    assert found(verify_rows(rows)) == {("content_mismatch", ROWS[i]["id"]),
                                        ("hmac_mismatch", ROWS[i]["id"])}


def test_prev_edited() -> None:
    i = idx(ROWS, "zone-a", 6)
    rows = edited(ROWS, i, prev_content_sha256="cd" * 32)
    assert found(verify_rows(rows)) == {("chain_break", ROWS[i]["id"]),
                                        ("hmac_mismatch", ROWS[i]["id"])}
    assert failures(verify_rows(rows, key=None)) == {("chain_break", ROWS[i]["id"])}


def test_first_event_with_a_prev() -> None:
    i = idx(ROWS, "zone-a", 1)
    rows = edited(ROWS, i, prev_content_sha256="cd" * 32)
    report = verify_rows(rows, key=None)
    assert failures(report) == {("chain_break", ROWS[i]["id"])}
    assert "first event" in report.findings_of("chain_break")[0].detail


def test_wrong_key() -> None:
    report = verify_rows(ROWS, key=OTHER_KEY)
    assert found(report) == {("hmac_mismatch", at(ROWS, "zone-a", 1)),
                             ("hmac_mismatch", at(ROWS, "zone-b", 1))}
    assert all("key is probably wrong" in f.detail for f in report.findings)


def test_no_key() -> None:
    report = verify_rows(ROWS, key=None)
    assert report.status == "partial" and report.exit_code == 3
    assert found(report) == {("unverifiable", None)}
    assert len(report.findings) == 2  # once per zone, not per event
    assert {f.zone_id for f in report.findings} == {"zone-a", "zone-b"}
    assert report.key_fingerprint is None
    assert report.checks["hmac"] == "not run: no key"


# --- order, gaps, duplicates ----------------------------------------------------------


def test_row_deleted() -> None:
    i = idx(ROWS, "zone-a", 7)
    rows = ROWS[:i] + ROWS[i + 1:]
    report = verify_rows(rows)
    assert found(report) == {("sequence_gap", at(ROWS, "zone-a", 8))}
    assert "seq 7 is missing" in report.findings[0].detail


def test_several_rows_deleted() -> None:
    drop = {idx(ROWS, "zone-b", s) for s in (3, 4, 5)}
    rows = [r for i, r in enumerate(ROWS) if i not in drop]
    report = verify_rows(rows)
    assert found(report) == {("sequence_gap", at(ROWS, "zone-b", 6))}
    assert "seq 3..5 are missing (3 events)" in report.findings[0].detail


def test_row_inserted_with_renumbering() -> None:
    """A new event slipped in at seq 5, later seqs shifted: the new row cannot be chained."""
    zone = [dict(r) for r in A]
    new = event(900, "zone-a")
    new = forge(new, prev_content_sha256=zone[3]["content_sha256"], chain_seq=5,
                chain_hmac=zone[4]["chain_hmac"])
    for r in zone[4:]:
        r["chain_seq"] += 1
    rows = renumber(zone[:4] + [new] + zone[4:])
    report = verify_rows(rows)
    assert found(report) == {("hmac_mismatch", new["id"])}
    assert failures(verify_rows(rows, key=None)) == {("chain_break", A[4]["id"])}


def test_row_inserted_at_the_tail() -> None:
    """Appended with a correct link and content hash: only the key exposes it."""
    new = forge(event(901, "zone-a"), prev_content_sha256=A[-1]["content_sha256"],
                chain_seq=len(A) + 1, chain_hmac="11" * 32)
    rows = renumber(ROWS + [new])
    assert found(verify_rows(rows)) == {("hmac_mismatch", new["id"])}


def test_exact_duplicate_is_a_warning() -> None:
    i = idx(ROWS, "zone-a", 3)
    copy = dict(ROWS[i], source_file="other.jsonl", source_line=1)
    report = verify_rows(ROWS + [copy])
    assert found(report) == {("duplicate_event", ROWS[i]["id"])}
    f = report.findings[0]
    assert f.severity == "warning" and f.source == "other.jsonl:1"
    assert report.status == "intact"
    assert report.events_checked == 40  # counted once
    assert report.zone("zone-a").events == len(A)


def test_conflicting_duplicate_seq() -> None:
    """Two versions of seq 3: the forged one is flagged, the genuine one kept in the chain."""
    i = idx(ROWS, "zone-a", 3)
    other = forge(ROWS[i], decision="allow" if ROWS[i]["decision"] == "deny" else "deny",
                  source_file="a-first.jsonl", source_line=1)
    report = verify_rows([other] + ROWS)
    assert found(report) == {("conflicting_duplicate", ROWS[i]["id"]),
                             ("hmac_mismatch", ROWS[i]["id"])}
    assert {f.source for f in report.findings} == {"a-first.jsonl:1"}
    # without the key both are plausible: the conflict alone is reported
    assert failures(verify_rows([other] + ROWS, key=None)) == {
        ("conflicting_duplicate", ROWS[i]["id"])}


def test_conflicting_duplicate_id() -> None:
    """An event replayed at a new seq: same id twice in the zone."""
    replay = dict(A[2], chain_seq=len(A) + 1, prev_content_sha256=A[-1]["content_sha256"],
                  source_line=999)
    report = verify_rows(ROWS + [replay], key=None)
    assert failures(report) == {("conflicting_duplicate", A[2]["id"])}
    assert [f.chain_seq for f in report.findings_of("conflicting_duplicate")] == [len(A) + 1]
    assert found(verify_rows(ROWS + [replay])) == {("conflicting_duplicate", A[2]["id"]),
                                                    ("hmac_mismatch", A[2]["id"])}


def test_seq_swapped() -> None:
    """Two rows' chain_seq swapped (reordered in the chain, not just in the file)."""
    i, j = idx(ROWS, "zone-b", 4), idx(ROWS, "zone-b", 5)
    rows = ROWS[:]
    rows[i], rows[j] = dict(rows[i], chain_seq=5), dict(rows[j], chain_seq=4)
    got = failures(verify_rows(rows))
    assert got and {e for _, e in got} <= {ROWS[i]["id"], ROWS[j]["id"],
                                            at(ROWS, "zone-b", 6)}
    assert ("chain_break", ROWS[j]["id"]) in got


# --- anchors ----------------------------------------------------------------------------


def test_cut_tail_is_invisible_without_anchor() -> None:
    rows = [r for r in ROWS if not (r["zone_id"] == "zone-a" and r["chain_seq"] > 15)]
    report = verify_rows(rows)
    assert report.status == "intact"
    assert "cannot be detected" in report.checks["anchor"]


def test_cut_tail_with_anchor() -> None:
    anchor = verify_rows(ROWS)
    rows = [r for r in ROWS if not (r["zone_id"] == "zone-a" and r["chain_seq"] > 15)]
    report = verify_rows(rows, anchor=anchor)
    assert found(report) == {("truncated", at(ROWS, "zone-a", 15))}
    assert f"up to seq {len(A)}" in report.findings[0].detail


def test_anchor_roundtrips_through_json(tmp_path) -> None:
    path = tmp_path / "r.json"
    verify_rows(ROWS).write(path)
    anchor = Report.from_file(path)
    rows = [r for r in ROWS if not (r["zone_id"] == "zone-b" and r["chain_seq"] == len(
        zone_rows(ROWS, "zone-b")))]
    assert {k for k, _ in found(verify_rows(rows, anchor=anchor))} == {"truncated"}


def test_anchor_zone_missing_entirely() -> None:
    anchor = verify_rows(ROWS)
    report = verify_rows(zone_rows(ROWS, "zone-b"), anchor=anchor)
    assert found(report) == {("truncated", None)}
    assert report.findings[0].zone_id == "zone-a"


def test_anchor_mismatch() -> None:
    """An insider with the key re-chains an edited head: only the anchor can tell."""
    anchor = verify_rows(ROWS)
    zone = [dict(r) for r in A]
    zone[-1]["decision"] = "deny" if zone[-1]["decision"] == "allow" else "allow"
    rows = chain(zone) + zone_rows(ROWS, "zone-b")
    assert verify_rows(rows).findings == []
    report = verify_rows(rows, anchor=anchor)
    assert found(report) == {("anchor_mismatch", A[-1]["id"])}


def test_anchor_covers_a_later_start() -> None:
    """Verifying the next hour's rows against the previous report: the link is checked."""
    anchor = verify_rows([r for r in ROWS if r["chain_seq"] <= 10])
    later = [r for r in ROWS if r["chain_seq"] > 10]
    assert found(verify_rows(later)) == {("unanchored_start", at(ROWS, "zone-a", 11)),
                                         ("unanchored_start", at(ROWS, "zone-b", 11))}
    assert verify_rows(later, anchor=anchor).findings == []
    i = idx(later, "zone-a", 11)
    broken = edited(later, i, prev_content_sha256="ee" * 32)
    report = verify_rows(broken, anchor=anchor, key=None)
    assert failures(report) == {("chain_break", later[i]["id"])}
    assert "anchor" in report.findings_of("chain_break")[0].detail


def test_anchor_then_gap() -> None:
    anchor = verify_rows([r for r in ROWS if r["chain_seq"] <= 5])
    later = [r for r in ROWS if r["chain_seq"] > 7]
    report = verify_rows(later, anchor=anchor)
    assert found(report) == {("sequence_gap", at(ROWS, "zone-a", 8)),
                             ("sequence_gap", at(ROWS, "zone-b", 8))}
    assert "seq 6..7 are missing" in report.findings[0].detail


def test_unanchored_start_is_info() -> None:
    rows = [r for r in ROWS if not (r["zone_id"] == "zone-a" and r["chain_seq"] < 4)]
    report = verify_rows(rows)
    assert found(report) == {("unanchored_start", at(ROWS, "zone-a", 4))}
    assert report.status == "intact" and report.findings[0].severity == "info"


# --- OCSF (milliseconds, no prev column) ----------------------------------------------

OCSF = as_ocsf(ROWS)


def test_ocsf_intact_with_recovery() -> None:
    calls = []
    report = verify_rows(OCSF, progress=lambda done, total: calls.append((done, total)))
    assert report.status == "intact" and report.findings == []
    assert calls[0] == (0, 40) and calls[-1] == (40, 40)
    assert "recovered" in report.checks["microseconds"]


def test_ocsf_without_recovery() -> None:
    report = verify_rows(OCSF, recover_microseconds=False)
    assert report.status == "partial"
    assert found(report) == {("unverifiable", at(ROWS, "zone-a", 1)),
                             ("unverifiable", at(ROWS, "zone-b", 1))}
    assert all("recovery was skipped" in f.detail for f in report.findings)
    # the HMAC still runs over the stored hash: a forged row is still caught
    i = idx(OCSF, "zone-a", 4)
    rows = edited(OCSF, i, content_sha256="ab" * 32)
    assert failures(verify_rows(rows, recover_microseconds=False)) == {
        ("hmac_mismatch", OCSF[i]["id"])}


def test_ocsf_field_edited() -> None:
    i = idx(OCSF, "zone-b", 6)
    rows = edited(OCSF, i, request_id="req-x")
    report = verify_rows(rows)
    assert found(report) == {("content_mismatch", OCSF[i]["id"])}
    assert "millisecond" in report.findings[0].detail


def test_ocsf_forged_row() -> None:
    """The next row's HMAC (chained to the forged hash) fails too: blamed on the forged row."""
    i = idx(ROWS, "zone-a", 4)
    rows = ROWS[:]
    rows[i] = forge(rows[i], decision="allow", event_type="replay_detected")
    report = verify_rows(as_ocsf(rows))
    assert found(report) == {("hmac_mismatch", ROWS[i]["id"])}
    assert "seq 5" in report.findings[0].detail


def test_ocsf_row_deleted() -> None:
    i = idx(OCSF, "zone-a", 9)
    report = verify_rows(OCSF[:i] + OCSF[i + 1:])
    assert found(report) == {("sequence_gap", at(ROWS, "zone-a", 10))}
    assert "HMAC cannot be checked" in report.findings[0].detail


def test_ocsf_wrong_key() -> None:
    report = verify_rows(OCSF, key=OTHER_KEY)
    assert found(report) == {("hmac_mismatch", at(ROWS, "zone-a", 1)),
                             ("hmac_mismatch", at(ROWS, "zone-b", 1))}


def test_ocsf_and_db_rows_of_the_same_events() -> None:
    ocsf = [dict(r, source_file="hour.parquet") for r in OCSF]
    report = verify_rows(ROWS + ocsf)
    assert report.status == "intact"
    assert {k for k, _ in found(report)} == {"duplicate_event"}
    assert len(report.findings) == 40 and report.events_checked == 40


# --- CLI JSON lines (no content hash, no prev column) -------------------------------


def test_cli_intact() -> None:
    assert verify_rows(as_cli(ROWS)).findings == []


def test_cli_without_key() -> None:
    report = verify_rows(as_cli(ROWS), key=None)
    assert report.status == "partial"
    assert len(report.findings) == 2
    assert all("content is unproven" in f.detail for f in report.findings)


def test_cli_field_edited() -> None:
    cli = as_cli(ROWS)
    i = idx(cli, "zone-a", 8)
    rows = edited(cli, i, decision="deny" if cli[i]["decision"] == "allow" else "allow")
    assert found(verify_rows(rows)) == {("hmac_mismatch", cli[i]["id"])}


def test_cli_row_deleted() -> None:
    cli = as_cli(ROWS)
    i = idx(cli, "zone-b", 4)
    assert found(verify_rows(cli[:i] + cli[i + 1:])) == {("sequence_gap", at(ROWS, "zone-b", 5))}


def test_cli_without_evaluation_status() -> None:
    report = verify_rows(as_cli(ROWS, evaluation_status=False))
    assert report.status == "partial"
    kinds = {(f.zone_id, f.kind) for f in report.findings}
    assert kinds == {("zone-a", "unverifiable"), ("zone-b", "unverifiable")}
    assert any("lack evaluation_status" in f.detail for f in report.findings)
    assert any("HMAC(s) not checked" in f.detail for f in report.findings)


def test_cli_without_chain_seq() -> None:
    report = verify_rows(as_cli(ROWS, chain_seq=False))
    assert report.status == "partial"
    assert any("carry no chain_seq" in f.detail for f in report.findings)
    assert report.events_checked == 40


# --- scope and limits -------------------------------------------------------------------


def test_zone_filter() -> None:
    i = idx(ROWS, "zone-b", 5)
    rows = edited(ROWS, i, decision="x")
    report = verify_rows(rows, zones=["zone-a"])
    assert report.status == "intact" and [z.zone_id for z in report.zones] == ["zone-a"]
    report = verify_rows(rows, zones=["zone-b", "zone-q"])
    assert found(report) == {("content_mismatch", ROWS[i]["id"]), ("unverifiable", None)}


def test_findings_are_capped() -> None:
    rows = ROWS[:]
    for seq in range(2, 9):
        i = idx(rows, "zone-a", seq)
        rows = edited(rows, i, decision="x")
    report = verify_rows(rows, max_findings=3)
    listed = [f for f in report.findings if f.event_id]
    assert len(listed) == 3
    assert any("4 more content_mismatch" in f.detail for f in report.findings)


def test_findings_sorted_by_zone_and_seq() -> None:
    rows = ROWS[:]
    for zone, seq in (("zone-b", 9), ("zone-a", 7), ("zone-b", 2), ("zone-a", 3)):
        rows = edited(rows, idx(rows, zone, seq), decision="x")
    report = verify_rows(renumber(list(reversed(rows))))
    assert [(f.zone_id, f.chain_seq) for f in report.findings] == [
        ("zone-a", 3), ("zone-a", 7), ("zone-b", 2), ("zone-b", 9)]


def test_empty_export() -> None:
    report = verify_rows([])
    assert report.events_checked == 0 and report.zones == []


def test_report_json_roundtrip() -> None:
    i = idx(ROWS, "zone-a", 5)
    report = verify_rows(edited(ROWS, i, decision="x"), inputs=[
        {"path": "gen.jsonl", "bytes": 10, "sha256": "ab", "shape": "db_jsonl", "rows": 40}])
    again = Report.from_json(report.to_json())
    assert again == report
    data = report.to_dict()
    assert set(data) == {"status", "verdict", "likely_wrong_key", "events_checked", "zones",
                         "findings", "inputs", "key_fingerprint", "toolkit_version",
                         "generated_at", "checks"}
    assert set(data["findings"][0]) == {"kind", "zone_id", "event_id", "chain_seq", "source",
                                        "detail", "severity"}
    assert KEY.hex() not in report.to_json()


# --- show_preimage ----------------------------------------------------------------------


def test_show_preimage() -> None:
    text = show_preimage(connect(ROWS), ROWS[0]["id"])
    assert "\u241f" in text and "\x1f" not in text
    assert ROWS[0]["content_sha256"] in text
    assert _unvisible(text.split("\n")[-1]) == digest.content_preimage(ROWS[0])


def test_show_preimage_ocsf_recovers() -> None:
    text = show_preimage(connect(OCSF), OCSF[3]["id"])
    assert "recovered" in text
    assert _unvisible(text.split("\n")[-1]) == digest.content_preimage(ROWS[3])


def _unvisible(line: str) -> bytes:
    return line.replace("\u241f", "\x1f").replace("\\u2028", "\u2028").encode()


def test_show_preimage_unknown() -> None:
    with pytest.raises(NotFoundError):
        show_preimage(connect(ROWS), "nope")
