"""Show what is hashed for one event: the exact preimage, separators made visible.

Presentation over an opened export (its ``events`` view); verification does not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..model import ABSENT_FIELD, PRECISION_FIELD
from . import digest
from .stages import HASHED

if TYPE_CHECKING:
    import duckdb

VISIBLE_US = "\u241f"  # ␟ SYMBOL FOR UNIT SEPARATOR


def show_preimage(con: duckdb.DuckDBPyConnection, event_id: str) -> str:
    """The exact bytes hashed for ``event_id`` (every row carrying it), separators visible.

    For a row with millisecond occurred_at the microseconds are recovered first when the
    stored content hash allows it.
    """
    table = con.sql(
        "SELECT * FROM events WHERE id = $id ORDER BY source_file, source_line",
        params={"id": event_id},
    ).to_arrow_table()
    if table.num_rows == 0:
        raise NotFoundError(f"no event with id {event_id!r} in the export")
    blocks = []
    for row in table.to_pylist():
        where = f"{row['source_file']}:{row['source_line']}"
        # audit data is attacker-influenced: no raw control characters reach a terminal
        lines = [_visible(f"event {event_id} (zone {row['zone_id']}, seq {row['chain_seq']}) "
                          f"from {where} [{row['source_shape']}]")]
        absent = [n for n in (row.get(ABSENT_FIELD) or "").split(",") if n in HASHED]
        if absent:
            lines.append(f"cannot build the preimage: {', '.join(absent)} absent from the export")
            blocks.append("\n".join(lines))
            continue
        head = digest.preimage_head(row)
        micros = digest.occurred_at_micros(row["occurred_at"])
        digits = row.get(PRECISION_FIELD) or 6
        if digits < 6:
            stored = (row.get("content_sha256") or "").lower()
            found = digest.recover_micros(head, micros, digits, stored) if stored else None
            if found is None:
                lines.append(f"occurred_at has {digits} fractional digits and no microsecond "
                             "value reproduces the stored content hash; showing .000")
            else:
                lines.append(f"occurred_at microseconds recovered: {found % 1_000_000:06d}")
                micros = found
        preimage = head + str(micros * 1000).encode("ascii")
        lines.append(f"content_sha256 recomputed: {digest.sha256_hex(preimage)}")
        if row.get("content_sha256"):
            lines.append(_visible(f"content_sha256 stored:     {row['content_sha256']}"))
        lines.append(f"preimage ({len(preimage)} bytes, {VISIBLE_US} = 0x1F):")
        lines.append(_visible(preimage.decode("utf-8")))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _visible(text: str) -> str:
    """Show 0x1F as ␟, other control characters as \\xNN, line separators as \\uNNNN."""
    out = []
    for ch in text:
        if ch == "\x1f":
            out.append(VISIBLE_US)
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
