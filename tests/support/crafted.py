"""A small crafted export built so that every hunt has something to find: a step-up
failure burst, a request denied then allowed, one policy version with two manifests, late
ingestion, and hostile metadata. The named-query, stats and report tests read it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from caracal_forensics.chain.digest import chain_hmac, content_sha256
from caracal_forensics.jsonb import jsonb_text
from caracal_forensics.model import JSONB_FIELDS, TEXT_FIELDS

# --- a crafted export ----------------------------------------------------------------

KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
T0 = datetime(2026, 5, 11, 10, 0, tzinfo=timezone.utc)
HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert('x')</script>"
M_A1 = "sha256:" + "a1" * 32
M_A2 = "sha256:" + "a2" * 32
M_B = "sha256:" + "bb" * 32


class Raw(str):
    """JSON text to write as is (so ``1.50`` stays ``1.50``)."""


def ev(
    id: str,
    zone: str,
    event_type: str,
    seconds: float,
    decision: str | None = "allow",
    *,
    request: str | None = None,
    principal: str | None = None,
    version: str = "psv-B",
    manifest: str = M_B,
    status: str | None = "complete",
    diagnostics: Any = (),
    policies: tuple[str, ...] = ("base",),
    lag: float | None = 0.5,
    metadata: dict | str | None = None,
) -> dict[str, Any]:
    """One event; ``metadata`` given as text is raw JSON, kept verbatim (number literals)."""
    meta: dict | str = {"principal_id": principal} if principal is not None else {}
    if isinstance(metadata, str):
        meta = Raw(metadata)
    else:
        meta.update(metadata or {})
    return {
        "id": id,
        "zone_id": zone,
        "event_type": event_type,
        "request_id": request,
        "decision": decision,
        "policy_set_id": "ps-x",
        "policy_set_version_id": version,
        "manifest_sha": manifest,
        "evaluation_status": status,
        "determining_policies_json": [{"policy": p} for p in policies],
        "diagnostics_json": diagnostics if isinstance(diagnostics, dict) else list(diagnostics),
        "metadata_json": meta or None,
        "occurred_at": T0 + timedelta(seconds=seconds),
        "ingested_at": None if lag is None else T0 + timedelta(seconds=seconds + lag),
    }


def crafted_events() -> list[dict[str, Any]]:
    """21 events in zones z1 and z2, in chain (insertion) order."""
    burst = {"principal": "app-burst"}
    return [
        # a burst of failed step-ups (4 within 90 s, across both zones), one late straggler
        ev("e01", "z1", "challenge_invalid", 0, "deny", request="req-b1", **burst),
        ev("e02", "z2", "challenge_invalid", 30, "deny", request="req-b1", **burst),
        ev("e03", "z1", "challenge_cooldown", 60, "deny", request="req-b2", **burst),
        ev("e04", "z2", "challenge_invalid", 90, "deny", request="req-b2", **burst),
        ev("e05", "z1", "challenge_invalid", 7200, "deny", request="req-b3", **burst),
        ev("e06", "z2", "challenge_invalid", 100, "deny", request="req-o", principal="app-other"),
        # denied (step-up required), then allowed
        ev("e07", "z1", "token_exchange", 200, "deny", request="req-dta", principal="app-dta",
           diagnostics=[{"step_up_required": "mfa"}, {"risk": 0.9}]),
        ev("e08", "z1", "step_up_issued", 210, "allow", request="req-dta", principal="app-dta"),
        ev("e09", "z1", "token_exchange", 220, "allow", request="req-dta", principal="app-dta"),
        # allowed, then denied (upper-case decision): not a denied-then-allowed request
        ev("e10", "z2", "token_exchange", 300, "allow", request="req-ad", principal="app-ad"),
        ev("e11", "z2", "token_exchange", 310, "DENY", request="req-ad", principal="app-ad"),
        # one policy version id, two manifests; a bare-object diagnostics; no policies
        ev("e12", "z1", "token_exchange", 400, "allow", request="req-v1", principal="app-v",
           version="psv-A", manifest=M_A1),
        ev("e13", "z2", "token_exchange", 410, "deny", request="req-v2", principal="app-v",
           version="psv-A", manifest=M_A2, diagnostics={"step_up_required": "webauthn"},
           policies=()),
        # a replayed JTI
        ev("e14", "z2", "jti_collision", 500, "deny", request="req-j",
           metadata='{"principal_id": "app-replay", "jti": "jti-1", "n": 1.50}'),
        # stored an hour late; stored before it happened
        ev("e15", "z1", "token_exchange", 600, "allow", request="req-l1", principal="app-lag",
           lag=3600),
        ev("e16", "z1", "token_exchange", 610, "allow", request="req-l2", principal="app-lag",
           lag=-10),
        # evaluations that did not complete
        ev("e17", "z2", "control.invoke", 700, "deny", request="req-n1", principal="app-n",
           status="upstream_error"),
        ev("e18", "z2", "token_exchange", 710, "allow", request="req-n2", principal="app-n",
           status=None),
        # hostile metadata
        ev("e19", "z1", "token_exchange", 800, "deny", request="req-h1", principal=HOSTILE,
           metadata={"note": SCRIPT}),
        ev("e20", "z1", "token_exchange", 810, "deny", request="req-h2", principal=HOSTILE),
        # the latest decision of z2
        ev("e21", "z2", "token_exchange", 900, "allow", request="req-last", principal="app-v"),
    ]  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds")


def chain_events(events: list[dict[str, Any]], key_hex: str = KEY_HEX) -> list[dict[str, Any]]:
    """The events as ``row_to_json(audit_events)`` objects, chained per zone in list order."""
    key = bytes.fromhex(key_hex)
    prev: dict[str, str] = {}
    seq: dict[str, int] = {}
    rows = []
    for event in events:
        hashed = {name: event[name] for name in TEXT_FIELDS}
        for name in JSONB_FIELDS:
            value = event[name]
            raw = value if isinstance(value, Raw) else json.dumps(value)
            hashed[name] = None if value is None else jsonb_text(raw)
        hashed["occurred_at"] = event["occurred_at"]
        digest = content_sha256(hashed)
        zone = event["zone_id"]
        before = prev.get(zone)
        seq[zone] = seq.get(zone, 0) + 1
        row = {name: event[name] for name in TEXT_FIELDS}
        row.update({name: event[name] for name in JSONB_FIELDS})
        row.update(
            occurred_at=_iso(event["occurred_at"]),
            ingested_at=_iso(event["ingested_at"]),
            content_sha256=digest,
            prev_content_sha256=before,
            chain_hmac=chain_hmac(key, digest, before),
            chain_seq=seq[zone],
            ingest_signature=None,
        )
        prev[zone] = digest
        rows.append(row)
    return rows


def json_line(row: dict[str, Any]) -> str:
    """``row`` as one JSON line, Raw values spliced in verbatim."""
    raws: dict[str, str] = {}
    plain = {}
    for name, value in row.items():
        if isinstance(value, Raw):
            marker = f"@@raw{len(raws)}@@"
            raws[json.dumps(marker)] = str(value)
            value = marker
        plain[name] = value
    line = json.dumps(plain, ensure_ascii=False)
    for marker, text in raws.items():
        line = line.replace(marker, text)
    return line


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json_line(r) + "\n" for r in rows), "utf-8")
    return path


ALERTS_CSV = (
    "id,event_id,zone_id,kind,detail,observed_at\n"
    "1,e07,z1,content_mismatch_on_replay,stored=aa incoming=bb,2026-05-11 11:00:00+00\n"
    "2,ev-gone,z2,content_mismatch_on_replay,stored=cc incoming=dd,2026-05-11 11:30:00+00\n"
)


def crafted_export(folder: Path, *, copies: int = 1) -> Path:
    """Write the crafted export (``copies`` identical JSON-lines files) plus alerts."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = chain_events(crafted_events())
    first = write_jsonl(folder / "db.jsonl", rows)
    for n in range(1, copies):
        shutil.copy(first, folder / f"db-copy{n}.jsonl")
    (folder / "alerts.csv").write_text(ALERTS_CSV, "utf-8")
    (folder / "key.hex").write_text(KEY_HEX + "\n", "utf-8")
    return folder
