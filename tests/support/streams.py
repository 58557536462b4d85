"""Random chained streams and single edits of what the chain covers, for the property
tests of verify and of its clean pass (the same streams and edits for both)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from caracal_forensics.chain import digest
from caracal_forensics.model import HASH_FIELDS, JSONB_FIELDS
from support.verify import KEY, as_cli, as_ocsf, chain, event

SHAPES = {"db": lambda rows: rows, "ocsf": as_ocsf, "cli": as_cli}

text_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
jsonb_values = st.one_of(st.none(), st.sampled_from(
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
                row[name] = draw(st.one_of(st.none(), text_values))
        if draw(st.booleans()):
            row[draw(st.sampled_from(JSONB_FIELDS))] = draw(jsonb_values)
        rows.append(row)
    return chain(rows, KEY)


EDITS = ["field", "jsonb", "time", "content_hash", "prev", "hmac", "seq", "delete",
         "forge", "conflict", "swap"]


def _other(value, rnd) -> str:
    choices = ["allow", "deny", "", "x\u00e9", "complete"]
    # NULL text hashes as "" (FORMAT.md section 2): NULL -> "" is no edit at all.
    same = {value, ""} if value in (None, "") else {value}
    return rnd.choice([c for c in choices if c not in same])


def edit(rows: list[dict], kind: str, i: int, shape: str, rnd) -> list[dict] | None:
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
