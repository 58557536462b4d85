"""The admin chain's key-order search at its worst (``make bench``, group verify).

Writes ``ROWS`` admin_audit_events rows as ``row_to_json`` lines whose payloads were
built in an order no rule gives (9 keys: 9! = 362,880 orders, past the budget), so every
row spends the whole budget (``admin.chain.ORDER_BUDGET``) and ends unverifiable; the
HMAC and links still verify. ``run.py`` times ``verify`` over them.

    .venv/bin/python bench/admin_orders.py OUT_DIR [ROWS]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caracal_forensics.admin.chain import preimage_parts  # noqa: E402
from caracal_forensics.admin.js import stringify  # noqa: E402
from caracal_forensics.jsonb import dumps, loads  # noqa: E402

KEY_HEX = "8f1c2a9e4b7d3f60a5c8e2b1d4f7a0c3e6b9d2f5a8c1e4b7d0f3a6c9e2b5d8f1"
ROWS = 20


def write(out: str, rows: int = ROWS) -> tuple[str, str]:
    """The JSON lines file and the key file."""
    os.makedirs(out, exist_ok=True)
    key = bytes.fromhex(KEY_HEX)
    path = os.path.join(out, "admin-worst.jsonl")
    prev = ""
    with open(path, "w", encoding="utf-8") as handle:
        for seq in range(1, rows + 1):
            # keys built longest-name-last reversed: neither jsonb's order nor a service's
            built = "{" + ", ".join(f'"{"k" * (i % 3 + 1)}{chr(106 - i)}": {i}'
                                    for i in range(9)) + "}"
            value = loads(built)
            row = {"id": f"w{seq}", "request_id": f"r{seq}", "actor_id": "adm-1",
                   "actor_name": "alice", "actor_scope": "control", "action": "PUT /x",
                   "method": "PUT", "path": "/x", "zone_id": "zone-bench",
                   "entity_type": "grants", "entity_id": "g-1", "status_code": 200,
                   "occurred_at": datetime(2026, 5, 11, 8, 0, seq % 60, 1000 * seq,
                                           tzinfo=timezone.utc)}
            head, tail = preimage_parts(row)
            content = hashlib.sha256((head + stringify(value) + tail).encode()).hexdigest()
            record = dict(row, occurred_at=row["occurred_at"].isoformat(),
                          content_sha256=content, prev_content_sha256=prev or None,
                          chain_hmac=hmac.new(key, f"{content}|{prev}".encode(),
                                              hashlib.sha256).hexdigest(), chain_seq=seq)
            text = json.dumps(record, ensure_ascii=False)
            # the payload as row_to_json writes jsonb: nested, in PostgreSQL's key order
            text = text[:-1] + ', "payload_json": ' + dumps(value) + "}"
            handle.write(text + "\n")
            prev = content
    key_file = os.path.join(out, "admin-worst.key")
    with open(key_file, "w", encoding="utf-8") as handle:
        handle.write(KEY_HEX + "\n")
    return path, key_file


if __name__ == "__main__":
    print(write(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else ROWS))
