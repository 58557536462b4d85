"""A wrong key (issue 15.13): every HMAC of every zone fails and nothing else does, so the
verdict leads with "the key is probably wrong"; and a wrong key hides nothing else."""

from __future__ import annotations

from support.verify import OTHER_KEY, events, found, verify_rows

ROWS = events(40, zones=("zone-a", "zone-b"))


def _idx(zone: str, seq: int) -> int:
    return next(i for i, r in enumerate(ROWS) if r["zone_id"] == zone and r["chain_seq"] == seq)


def test_wrong_key_still_reports_a_deleted_row() -> None:
    """Every HMAC of zone-a fails, but its gap is found without the key: still reported."""
    i = _idx("zone-a", 7)
    report = verify_rows(ROWS[:i] + ROWS[i + 1 :], key=OTHER_KEY)
    assert ("sequence_gap", ROWS[_idx("zone-a", 8)]["id"]) in found(report)


def test_wrong_key_still_reports_a_broken_link() -> None:
    i = _idx("zone-b", 5)
    rows = [dict(r) for r in ROWS]
    rows[i]["prev_content_sha256"] = "0" * 64
    report = verify_rows(rows, key=OTHER_KEY)
    assert ("chain_break", ROWS[i]["id"]) in found(report)


def test_wrong_key_keeps_exact_copies_exact() -> None:
    """The same event in two files is a copy, not a conflict, whatever the key."""
    i = _idx("zone-a", 3)
    copy = dict(ROWS[i], source_file="other.jsonl", source_line=1)
    report = verify_rows(ROWS + [copy], key=OTHER_KEY)
    kinds = {kind for kind, _ in found(report)}
    assert kinds == {"hmac_mismatch", "duplicate_event"}
    assert all(f.detail.startswith("all ") for f in report.findings_of("hmac_mismatch"))
