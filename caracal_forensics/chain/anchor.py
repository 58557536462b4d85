"""Anchors: zone heads seen at a trusted moment, which a later export must still hold.

Nothing inside an export can expose a cut-off tail; a head written down earlier can. An
anchor is whatever holds such heads (a zone and its last chain_seq, best with the content
hash there), however it was kept:

- a verification report (``verify --report``), its ``zones`` list;
- a snapshot's ``manifest.json`` (or the snapshot directory), its ``zones`` object;
- a minimal JSON object ``{"zones": {"ZONE": {"last_seq": N, "last_content_sha256":
  "..."}}}`` (or ``{"ZONE": N}``), or a ``zones`` list of ``{"zone_id", "last_seq", ...}``;
- a JSON list, JSON lines (``sql --json``) or a CSV with a header, one head per row:
  ``zone_id`` (or ``zone``), ``last_seq`` (or ``max(chain_seq)``, ``chain_seq``) and
  optionally ``last_content_sha256`` (or ``content_sha256``), as ``SELECT zone_id,
  max(chain_seq) ...`` gives them.

Other fields are ignored: ``last_chain_hmac`` may be there, but what is compared at the
head's seq is the content hash (the HMAC proves each link of the export itself).

Each becomes a :class:`Report` whose ``zones`` hold the heads, which is what the verify
passes read (``summary.anchor_heads``). Anything without heads is an InputError saying
what an anchor must hold.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

from ..errors import InputError
from .report import Report, ZoneSummary

#: What every refusal ends with: what an anchor must hold.
ANCHOR_MUST = (
    "an anchor holds zone heads: a verification report's JSON, a snapshot's "
    'manifest.json, {"zones": {"ZONE": {"last_seq": N, "last_content_sha256": "..."}}}, '
    "or CSV / JSON lines with columns zone_id,last_seq[,last_content_sha256]"
)

_ZONE_KEYS = ("zone_id", "zone")
_SEQ_KEYS = ("last_seq", "max(chain_seq)", "chain_seq", "max_chain_seq")
_HASH_KEYS = ("last_content_sha256", "content_sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Anchors are small: a head per zone. Beyond this it is not one (and not read whole).
MAX_BYTES = 64 << 20


def load_anchor(path: str | os.PathLike[str]) -> Report:
    """The anchor at ``path`` (any of the forms above) as a Report holding its heads."""
    name = os.fspath(path)
    if os.path.isdir(name):
        name = os.path.join(name, "manifest.json")
    text = _read(name)
    stripped = text.lstrip()
    if not stripped:
        raise InputError(name, f"empty; {ANCHOR_MUST}")
    if stripped[0] in "{[":
        data = _json(name, text)
        if isinstance(data, dict) and "status" in data and isinstance(data.get("zones"), list):
            return _report(name, data)
        origin = name
        if isinstance(data, dict) and data.get("format") == "caracal-forensics-snapshot":
            created = data.get("created_at")
            origin = f"the snapshot manifest {name}" + (
                f" of {created}" if isinstance(created, str) else "")
        heads = _heads_of(name, data)
    else:
        heads = _csv_heads(name, text)
    return _anchor(name, heads, origin if stripped[0] in "{[" else name)


def _read(name: str) -> str:
    from ..manifest import check_regular

    check_regular(name)  # not a FIFO that blocks, not a directory
    try:
        with open(name, "rb") as handle:
            blob = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise InputError(name, f"cannot read the anchor: {error.strerror or error}") from None
    if len(blob) > MAX_BYTES:
        raise InputError(name, f"over {MAX_BYTES >> 20} MiB: not an anchor; {ANCHOR_MUST}")
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(name, f"not UTF-8 text; {ANCHOR_MUST}") from None


def _json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(name, f"JSON nested too deeply; {ANCHOR_MUST}") from None
    except ValueError as first:
        # JSON lines: one head per line (``sql --json``)
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):
                raise InputError(name, f"malformed JSON ({first}); {ANCHOR_MUST}",
                                 f"line {number}") from None
        return rows


def _report(name: str, data: dict[str, Any]) -> Report:
    """A verification report, read as ``verify --report`` wrote it."""
    try:
        report = Report.from_dict(data)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(name, f"not a verification report: {error}; {ANCHOR_MUST}") from None
    heads = [(z.zone_id, z.last_seq, z.last_content_sha256) for z in report.zones]
    for zone, seq, digest in heads:
        _check_head(name, zone, seq, digest, f"zones entry {zone!r}")
    if not any(seq is not None for _zone, seq, _digest in heads):
        raise InputError(name, f"the report holds no zone head (no zone with a last_seq); "
                         f"{ANCHOR_MUST}")
    return report


def _heads_of(name: str, data: Any) -> list[tuple[str, int | None, str | None, str]]:
    """(zone, last_seq, last_content_sha256, where) from a JSON anchor."""
    if isinstance(data, dict):
        if "zones" in data:
            zones = data["zones"]
        elif data and all(isinstance(v, dict) or (isinstance(v, int) and not isinstance(v, bool))
                          for v in data.values()):
            zones = data  # {"ZONE": {...}} without the "zones" wrapper
        else:
            raise InputError(name, f"no zone heads found (no \"zones\"); {ANCHOR_MUST}")
    else:
        zones = data
    heads = []
    if isinstance(zones, dict):
        for zone, head in zones.items():
            where = f"zone {zone!r}"
            if isinstance(head, int) and not isinstance(head, bool):
                heads.append((zone, head, None, where))
            elif isinstance(head, dict):
                heads.append((zone, _pick(head, _SEQ_KEYS), _pick(head, _HASH_KEYS), where))
            else:
                raise InputError(name, f"{where} is neither a head object nor a last_seq; "
                                 f"{ANCHOR_MUST}")
    elif isinstance(zones, list):
        for index, head in enumerate(zones, 1):
            where = f"entry {index}"
            if not isinstance(head, dict):
                raise InputError(name, f"{where} is not an object; {ANCHOR_MUST}")
            zone = _pick(head, _ZONE_KEYS)
            heads.append((zone, _pick(head, _SEQ_KEYS), _pick(head, _HASH_KEYS), where))
    else:
        raise InputError(name, f"no zone heads found; {ANCHOR_MUST}")
    return heads


def _csv_heads(name: str, text: str) -> list[tuple[str, int | None, str | None, str]]:
    """(zone, last_seq, last_content_sha256, where) from a CSV with a header row."""
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise InputError(name, f"not CSV ({error}); {ANCHOR_MUST}") from None
    header = [column.strip().lower() for column in rows[0]] if rows else []
    zone_at = next((header.index(k) for k in _ZONE_KEYS if k in header), None)
    seq_at = next((header.index(k) for k in _SEQ_KEYS if k in header), None)
    hash_at = next((header.index(k) for k in _HASH_KEYS if k in header), None)
    if zone_at is None or seq_at is None:
        raise InputError(name, f"no zone_id and last_seq columns in the header; {ANCHOR_MUST}",
                         "line 1")
    heads = []
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {number}"
        if len(row) != len(header):
            raise InputError(name, f"{len(row)} fields where the header has {len(header)}",
                             where)
        seq_text = row[seq_at].strip()
        if not (seq_text.isascii() and seq_text.isdigit()):  # int("²") fails
            raise InputError(name, f"last_seq {seq_text!r} is not a whole number", where)
        digest = row[hash_at].strip() or None if hash_at is not None else None
        heads.append((row[zone_at], int(seq_text), digest, where))
    return heads


def _pick(head: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((head[k] for k in keys if k in head), None)


#: chain_seq is a bigint: a larger last_seq cannot be compared with the chain's.
_MAX_SEQ = 2**63 - 1


def _check_head(name: str, zone: Any, seq: Any, digest: Any, where: str) -> None:
    if not isinstance(zone, str) or not zone:
        raise InputError(name, f"{where}: no zone_id; {ANCHOR_MUST}")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
                            or seq > _MAX_SEQ):
        raise InputError(name, f"{where}: last_seq must be a whole number up to {_MAX_SEQ}, "
                         f"not {json.dumps(seq)[:40]}")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
        raise InputError(name, f"{where}: last_content_sha256 must be 64 lowercase hex "
                         "digits")


def _anchor(name: str, heads: list[tuple[Any, Any, Any, str]], origin: str) -> Report:
    """A Report holding ``heads``; a head needs a zone and a last_seq."""
    zones: dict[str, ZoneSummary] = {}
    for zone, seq, digest, where in heads:
        if isinstance(digest, str):
            digest = digest.strip().lower()
        _check_head(name, zone, seq, digest, where)
        if seq is None:
            raise InputError(name, f"{where}: no last_seq; {ANCHOR_MUST}")
        if zone in zones:
            raise InputError(name, f"{where}: zone {zone!r} has a second head")
        zones[zone] = ZoneSummary(zone, 0, None, seq, digest, "")
    if not zones:
        raise InputError(name, f"no zone heads found; {ANCHOR_MUST}")
    report = Report(status="", events_checked=0, zones=list(zones.values()))
    without = sum(1 for z in zones.values() if z.last_content_sha256 is None)
    report.anchor_origin = origin + (  # type: ignore[attr-defined]
        f" (seq only for {without} zone(s): no last_content_sha256)" if without else "")
    return report
