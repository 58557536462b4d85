"""Show what is hashed for one admin change: the 14 fields, separators made visible, and
the payload key order the search found (``verify --show-preimage ID``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..chain.preimage import VISIBLE_US, _visible
from .chain import ORDER_BUDGET, find_payload, order_space, preimage_parts
from .model import GLOBAL_CHAIN

if TYPE_CHECKING:
    import pyarrow as pa


def show_admin_preimage(table: pa.Table, change_id: str) -> str | None:
    """The exact bytes hashed for ``change_id`` (every row carrying it), or None when no
    admin row has that id."""
    import pyarrow.compute as pc

    rows = table.filter(pc.equal(table.column("id"), change_id)).to_pylist()
    if not rows:
        return None
    blocks = []
    for row in rows:
        zone = row["zone_id"] if row["zone_id"] is not None else GLOBAL_CHAIN
        lines = [_visible(f"admin change {change_id} (chain {zone}, seq {row['chain_seq']}) "
                          f"from {row['source_file']}:{row['source_line']} "
                          f"[{row['source_shape']}]")]
        absent = [n for n in (row.get("absent_fields") or "").split(",")
                  if n in ("payload_json", "occurred_at", "status_code")]
        if absent or row.get("occurred_at") is None:
            lines.append(f"cannot build the preimage: {', '.join(absent) or 'occurred_at'} "
                         "absent from the export")
            blocks.append("\n".join(lines))
            continue
        head, tail = preimage_parts(row)
        stored = (row.get("content_sha256") or "").lower() or None
        found = find_payload(row.get("payload_json"), head, tail, stored)
        if row.get("payload_json") is not None:
            if found.matched:
                lines.append(f"payload key order found after {found.tried} candidate(s)")
            elif stored is None:
                lines.append("no stored content hash: the payload shown in the likeliest "
                             "key order")
            elif found.exhausted:
                lines.append(f"no key order of the payload reproduces the stored hash "
                             f"({found.tried} tried, every one)")
            else:
                lines.append(f"key order not found within the budget ({ORDER_BUDGET:,} of "
                             f"{order_space(_parsed(row)):,} orders)")
        preimage = (head + found.payload + tail).encode("utf-8", "surrogatepass")
        lines.append(f"content_sha256 recomputed: {found.content_sha256}")
        if stored:
            lines.append(_visible(f"content_sha256 stored:     {stored}"))
        lines.append(f"preimage ({len(preimage)} bytes, {VISIBLE_US} = 0x1F):")
        lines.append(_visible(head + found.payload + tail))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _parsed(row: dict) -> object:
    from ..jsonb import loads

    return loads(row["payload_json"])
