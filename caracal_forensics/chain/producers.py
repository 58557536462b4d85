"""The ledger against what producers signed (FORMAT.md 7): wire events (spool lines,
dead-letter entries) matched to ledger rows by ingest_signature, else by id.

Ingest stores a wire event's signature as the row's ``ingest_signature``, so with the
key the row can be held to the exact bytes it came from: a row whose content differs
from them was rewritten after ingest, even if its chain was recomputed with the key.
The checks (``findings.producer_signatures``, ``findings.ledger_against_producers``)
word what this module matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..model import HASH_FIELDS, Shape
from . import digest

#: what a dead-letter reason says of a second version (FORMAT.md 7)
TAMPER_ON_REPLAY = "tamper_on_replay"


@dataclass
class Match:
    """One wire event and what the ledger holds of it."""

    event: Any  # sources.wire.WireEvent
    #: HMAC(key, its bytes), or None (no bytes: a list entry; or no key)
    computed: str | None
    #: the stored signature is present and is not ``computed``
    forged: bool
    #: the ledger row whose ingest_signature is ``computed`` (or the stored signature)
    by_sig: dict | None
    #: a ledger row of the same zone and id, when none has the signature
    by_id: dict | None

    @property
    def where(self) -> str:
        return f"{self.event.path}:{self.event.line}"


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _ledger_rows(con: Any, sigs: list[str], ids: list[str]) -> list[dict]:
    marks = ", ".join(f"'{s}'" for s in Shape.WIRE_SHAPES)
    cur = con.execute(
        f"""SELECT * FROM events WHERE coalesce(source_shape, '') NOT IN ({marks})
              AND (lower(ingest_signature) IN (SELECT unnest($sigs))
                   OR id IN (SELECT unnest($ids)))""", {"sigs": sigs, "ids": ids})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def match(con: Any, files: Sequence[tuple[str, str]], key: bytes | None,
          zones: Sequence[str] | None) -> Iterator[Match]:
    """Every wire event of ``files`` ((path, shape)), matched to ``con``'s ledger rows."""
    from ..sources._batch import BadLines  # what the reader refused, it has said
    from ..sources.wire import wire_events

    events = [e for path, shape in files for e in wire_events(path, shape, BadLines(skip=True))
              if zones is None or e.row["zone_id"] in zones]
    computed = {id(e): (sign(key, e.data) if key is not None and e.data is not None
                        else None) for e in events}
    sigs = sorted({s.lower() for e in events for s in (computed[id(e)], e.sig) if s})
    rows = _ledger_rows(con, sigs, sorted({e.row["id"] for e in events}))
    by_sig = {str(r["ingest_signature"]).lower(): r for r in rows if r["ingest_signature"]}
    by_id = {(r["zone_id"], r["id"]): r for r in rows}
    for e in events:
        mine = computed[id(e)]
        forged = bool(mine and e.sig and e.sig.lower() != mine)
        sig = mine or (e.sig.lower() if e.sig and key is None else None)
        row = by_sig.get(sig) if sig and not forged else None
        yield Match(e, mine, forged, row,
                    None if row is not None else by_id.get((e.row["zone_id"], e.row["id"])))


def differing(wire: dict, ledger: dict) -> list[str]:
    """The content fields in which a ledger row differs from a normalised wire event."""
    names = [n for n in HASH_FIELDS if _text(wire, n) != _text(ledger, n)]
    if _micros(wire) != _micros(ledger):
        names.append("occurred_at")
    return names


def same_time(wire: dict, ledger: dict) -> bool:
    return _micros(wire) == _micros(ledger)


def _text(row: dict, name: str) -> str:
    return digest._field_text(row, name)


def _micros(row: dict) -> int | None:
    value = row.get("occurred_at")
    return None if value is None else digest.occurred_at_micros(value)


def shown(row: dict, names: list[str]) -> str:
    """The differing fields of one side, for the finding's detail."""
    parts = []
    for name in names:
        value = row.get(name)
        if name == "occurred_at" and value is not None:
            value = digest.occurred_at_micros(value)
        parts.append(f"{name}={value!r}")
    return "{" + ", ".join(parts) + "}"


def located(row: dict) -> tuple[str | None, int | None, str | None]:
    """(zone, chain_seq, file:line) of a ledger row."""
    source = row.get("source_file")
    line = row.get("source_line")
    at = f"{source}:{line}" if source is not None and line is not None else source
    return row.get("zone_id"), row.get("chain_seq"), at
