"""Property-based: random chained streams verify intact in every shape, and any single
edit of what the chain covers is caught (with the key and the untouched run as anchor)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from verify_helpers import KEY, as_cli, as_ocsf, chain, event, failures, renumber, verify_rows

from caracal_forensics.chain import digest
from caracal_forensics.model import HASH_FIELDS, JSONB_FIELDS

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SHAPES = {"db": lambda rows: rows, "ocsf": as_ocsf, "cli": as_cli}

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
_jsonb = st.one_of(st.none(), st.sampled_from(
    ["[]", "{}", '{"a": 1}', '[{"policy": "p\u00e9"}]', '{"n": 1.50, "s": "x\\ny"}']))


@st.composite
def streams(draw) -> list[dict]:
    """1-3 zones, 1-25 events, random field values (NULLs, unicode), random interleaving."""
    zones = draw(st.lists(st.sampled_from(["z1", "zone:prod/eu-1", "\u00e9t\u00e9"]),
                          min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 25))
    rows = []
    for i in range(n):
        row = event(i, draw(st.sampled_from(zones)))
        for name in ("request_id", "decision", "evaluation_status"):
            if draw(st.booleans()):
                row[name] = draw(st.one_of(st.none(), _text))
        if draw(st.booleans()):
            row[draw(st.sampled_from(JSONB_FIELDS))] = draw(_jsonb)
        rows.append(row)
    return chain(rows, KEY)


@SETTINGS
@given(streams(), st.sampled_from(sorted(SHAPES)), st.randoms(use_true_random=False))
def test_random_streams_are_intact(rows, shape, rnd) -> None:
    rows = SHAPES[shape](rows)
    rnd.shuffle(rows)
    report = verify_rows(renumber(rows))
    assert report.status == "intact", report.findings
    assert report.findings == []
    assert report.events_checked == len(rows)


EDITS = ["field", "jsonb", "time", "content_hash", "prev", "hmac", "seq", "delete",
         "forge", "conflict", "swap"]


def _other(value, rnd) -> str:
    choices = ["allow", "deny", "", "x\u00e9", "complete"]
    # NULL text hashes as "" (FORMAT.md section 2): NULL -> "" is no edit at all.
    same = {value, ""} if value in (None, "") else {value}
    return rnd.choice([c for c in choices if c not in same])


def _edit(rows: list[dict], kind: str, i: int, shape: str, rnd) -> list[dict] | None:
    """Apply one edit to row i; None when the edit is meaningless for this shape."""
    rows = [dict(r) for r in rows]
    row = rows[i]
    if kind == "field":
        name = rnd.choice([n for n in HASH_FIELDS if n not in JSONB_FIELDS])
        row[name] = _other(row[name], rnd)
        if name == "zone_id":
            return None  # moves the event to another chain: a different test
    elif kind == "jsonb":
        name = rnd.choice(JSONB_FIELDS)
        row[name] = '{"edited": true}' if row[name] != '{"edited": true}' else "[]"
    elif kind == "time":
        row["occurred_at"] += timedelta(milliseconds=rnd.choice([1, -1, 1000]))
    elif kind == "content_hash":
        if shape == "cli":
            return None
        row["content_sha256"] = "0" * 64
    elif kind == "prev":
        if shape != "db":
            return None
        row["prev_content_sha256"] = "1" * 64
    elif kind == "hmac":
        row["chain_hmac"] = "2" * 64
    elif kind == "seq":
        row["chain_seq"] += rnd.choice([1, -1, 5])
    elif kind == "delete":
        del rows[i]
    elif kind == "forge":
        row["decision"] = _other(row["decision"], rnd)
        if shape != "cli":
            full = dict(row)
            row["content_sha256"] = digest.content_sha256(full)
    elif kind == "conflict":
        copy = dict(row, decision=_other(row["decision"], rnd), source_file="z.jsonl")
        if shape != "cli":
            copy["content_sha256"] = digest.content_sha256(copy)
        rows.append(copy)
    elif kind == "swap":
        same = [j for j, r in enumerate(rows) if r["zone_id"] == row["zone_id"] and j != i]
        if not same:
            return None
        j = rnd.choice(same)
        rows[i]["chain_seq"], rows[j]["chain_seq"] = rows[j]["chain_seq"], row["chain_seq"]
    return rows


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
