"""The baseline a user would write: verify an export one event at a time in plain Python.

    .venv/bin/python bench/plain_verify.py --key-file KEY (--csv db.csv | --jsonl db.jsonl)

Standard library only (csv, json, hashlib, hmac, datetime), with one exception: the
nested jsonb fields of the JSON lines dump must be re-rendered as PostgreSQL's jsonb text
to be hashed, and ``json.loads`` turns ``12.50`` into the float 12.5, so that shape parses
each line with ``caracal_forensics.jsonb.loads`` (json's C scanner with number literals
kept) and renders the nested values with ``caracal_forensics.jsonb.dumps``. The CSV dump
carries jsonb text verbatim and needs nothing but the csv module.

Checks per event, in file order, keeping per zone the last chain_seq and content hash:
content_sha256 recomputed (FORMAT.md section 2), prev_content_sha256 equals the zone's
previous content hash, chain_seq is the previous one plus 1, chain_hmac recomputed with the
key. It assumes a zone's events appear in chain order in the file (true of a table dump
in insertion order); it prints one JSON line with the counts.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TEXT = ("id", "zone_id", "event_type", "request_id", "decision", "policy_set_id",
        "policy_set_version_id", "manifest_sha", "evaluation_status")
JSONB = ("determining_policies_json", "diagnostics_json", "metadata_json")


def nanos(text: str) -> int:
    moment = datetime.fromisoformat(text)
    delta = moment - EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


class Verifier:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self.heads: dict[str, tuple[int, str]] = {}
        self.events = 0
        self.failures = {"content": 0, "link": 0, "sequence": 0, "hmac": 0}

    def check(self, texts: list[str], jsonb: list[str], occurred_at: str, content: str,
              prev: str, mac: str, seq: int, zone: str) -> None:
        preimage = "\x1f".join(texts + jsonb) + "\x1f" + str(nanos(occurred_at))
        computed = hashlib.sha256(preimage.encode("utf-8")).hexdigest()
        if computed != content:
            self.failures["content"] += 1
        last_seq, last_content = self.heads.get(zone, (0, ""))
        if seq != last_seq + 1:
            self.failures["sequence"] += 1
        if prev != last_content:
            self.failures["link"] += 1
        expected = hmac.new(self.key, f"{content}|{prev}".encode(), hashlib.sha256).hexdigest()
        if expected != mac:
            self.failures["hmac"] += 1
        self.heads[zone] = (seq, content)
        self.events += 1


def verify_csv(path: str, verifier: Verifier) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at = {name: index for index, name in enumerate(header)}
        text_at = [at[name] for name in TEXT]
        jsonb_at = [at[name] for name in JSONB]
        occurred, content, prev, mac, seq, zone = (
            at[name] for name in ("occurred_at", "content_sha256", "prev_content_sha256",
                                  "chain_hmac", "chain_seq", "zone_id"))
        for row in reader:
            verifier.check(
                [row[i] for i in text_at],
                [row[i] or "null" for i in jsonb_at],  # an empty field is NULL
                row[occurred], row[content], row[prev], row[mac], int(row[seq]), row[zone],
            )


def verify_jsonl(path: str, verifier: Verifier) -> None:
    sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])
    from caracal_forensics.jsonb import dumps, loads

    with open(path, encoding="utf-8") as handle:
        for line in handle:
            obj = loads(line)
            verifier.check(
                [obj[name] or "" for name in TEXT],
                ["null" if obj[name] is None else dumps(obj[name]) for name in JSONB],
                obj["occurred_at"], obj["content_sha256"], obj["prev_content_sha256"] or "",
                obj["chain_hmac"], int(obj["chain_seq"]), obj["zone_id"],
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-file", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--csv")
    group.add_argument("--jsonl")
    args = parser.parse_args(argv)
    with open(args.key_file) as handle:
        key = bytes.fromhex(handle.read().strip())
    verifier = Verifier(key)
    if args.csv:
        verify_csv(args.csv, verifier)
    else:
        verify_jsonl(args.jsonl, verifier)
    failed = sum(verifier.failures.values())
    print(json.dumps({"events": verifier.events, "failures": verifier.failures,
                      "status": "intact" if not failed else "tampered"}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
