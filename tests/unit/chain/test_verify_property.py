"""Property-based: random chained streams verify intact in every shape, and any single
edit of what the chain covers is caught (with the key and the untouched run as anchor)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.streams import EDITS, SHAPES, streams
from support.streams import edit as _edit
from support.streams import jsonb_values as _jsonb
from support.streams import text_values as _text
from support.verify import as_ocsf, failures, renumber, verify_rows

from caracal_forensics.model import HASH_FIELDS, JSONB_FIELDS

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(streams(), st.sampled_from(sorted(SHAPES)), st.randoms(use_true_random=False))
def test_random_streams_are_intact(rows, shape, rnd) -> None:
    rows = SHAPES[shape](rows)
    rnd.shuffle(rows)
    report = verify_rows(renumber(rows))
    assert report.status == "intact", report.findings
    assert report.findings == []
    assert report.events_checked == len(rows)


@SETTINGS
@given(streams(), st.sampled_from(sorted(SHAPES)), st.sampled_from(EDITS), st.data())
def test_any_single_edit_is_caught(rows, shape, kind, data) -> None:
    original = SHAPES[shape](rows)
    # For OCSF the edit must be made to the full-precision row (the forger has it).
    i = data.draw(st.integers(0, len(rows) - 1))
    rnd = data.draw(st.randoms(use_true_random=False))
    tampered = _edit(rows if shape == "ocsf" else original, kind, i, shape, rnd)
    assume(tampered is not None)
    if shape == "ocsf":
        tampered = as_ocsf(tampered)
    assume(_differs(original, tampered))
    anchor = verify_rows(original)
    report = verify_rows(renumber(tampered), anchor=anchor)
    if kind == "delete" and rows[i]["chain_seq"] == 1:
        # A zone's first event gone: an anchor covering the zone accepts a later start (a
        # later export window), and without one it is info only (FORMAT.md section 5).
        report = verify_rows(renumber(tampered))
        assert ("unanchored_start" in {f.kind for f in report.findings}
                or rows[i]["zone_id"] not in {r["zone_id"] for r in tampered}), report.findings
        return
    assert report.status == "tampered", (kind, report.findings)


def _differs(a: list[dict], b: list[dict]) -> bool:
    keys = (*HASH_FIELDS, "occurred_at", "content_sha256", "prev_content_sha256",
            "chain_hmac", "chain_seq")
    return sorted(repr([r.get(k) for k in keys]) for r in a) != \
        sorted(repr([r.get(k) for k in keys]) for r in b)


@SETTINGS
@given(streams(), st.data())
def test_field_edit_is_blamed_on_that_event_only(rows, data) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    name = data.draw(st.sampled_from([n for n in HASH_FIELDS if n != "zone_id"]))
    value = data.draw(_text if name not in JSONB_FIELDS else _jsonb)
    assume(value != rows[i][name] and not (name == "id" and not value))
    # NULL and "" hash alike for text, NULL, "" and "null" for jsonb: not an edit
    if name in JSONB_FIELDS:
        assume((value or "null") != (rows[i][name] or "null"))
    else:
        assume((value or "") != (rows[i][name] or ""))
    tampered = [dict(r) for r in rows]
    tampered[i][name] = value
    report = verify_rows(tampered)
    expected = {("content_mismatch", tampered[i]["id"])}
    if name == "id" and any(r["id"] == value for j, r in enumerate(rows) if j != i
                            and r["zone_id"] == rows[i]["zone_id"]):
        expected.add(("conflicting_duplicate", value))
    assert failures(report) == expected
