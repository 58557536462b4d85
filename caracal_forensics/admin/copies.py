"""Admin API rows beside a table dump of the same chain: held to the dump, not chained.

The Admin API's exports carry no hashes and a redacted payload parsed into JavaScript
values (FORMAT.md 6.4), so their content hash cannot be rebuilt. Where a dump (which has
the hashes) holds the same chain and chain_seq, the API row is compared with the dump's
row on every field it carries: the same is an expected copy (``duplicate_event``, folded
by the report like copies of events in other shapes), a difference is a
``conflicting_duplicate`` naming the fields. API rows at a seq no dump holds stay in the
chain, where chain_seq still exposes gaps.
"""

from __future__ import annotations

import pyarrow as pa

from ..chain import wording
from ..chain.report import Finding, Kind
from .js import number_text
from .model import GLOBAL_CHAIN

#: Fields the Admin API carries that the dump's row must match.
COMPARED = ("id", "request_id", "actor_id", "actor_name", "actor_scope", "action", "method",
            "path", "entity_type", "entity_id", "status_code", "occurred_at")
#: The Admin API redacts these keys' values at any depth (FORMAT.md 6).
SENSITIVE = frozenset({"password", "passwd", "secret", "token", "access_token",
                       "refresh_token", "id_token", "api_key", "apikey", "authorization",
                       "cookie", "set_cookie", "client_secret", "private_key", "session",
                       "session_id", "assertion"})


def _hashless(row: dict) -> bool:
    return "content_sha256" in (row.get("absent_fields") or "").split(",")


def _chain(row: dict) -> str:
    return row["zone_id"] if row["zone_id"] is not None else GLOBAL_CHAIN


def _as_api(value: object, redact: bool) -> object:
    """A payload as the API hands it on: sensitive values redacted, numbers as doubles,
    key order ignored."""
    from ..jsonb import JsonbNumber

    if isinstance(value, dict):
        return sorted((k, "[redacted]" if redact and k.lower() in SENSITIVE
                       else _as_api(v, redact)) for k, v in value.items())
    if isinstance(value, list):
        return [_as_api(v, redact) for v in value]
    if isinstance(value, JsonbNumber):
        return ("number", number_text(value))
    return value


def _payload(row: dict, redact: bool) -> object:
    from ..jsonb import loads

    text = row.get("payload_json")
    return None if text is None else _as_api(loads(text), redact)


def differing(api: dict, dump: dict) -> list[str]:
    """The fields the API row carries that differ from the dump's row."""
    absent = set((api.get("absent_fields") or "").split(","))
    differs = [name for name in COMPARED if name not in absent and api[name] != dump[name]]
    if api.get("signed") is not None and api["signed"] != (dump["chain_hmac"] is not None):
        differs.append("signed")
    if "payload_json" not in absent:
        if _payload(api, False) != _payload(dump, True):
            differs.append("payload_json")
    else:
        for name in ("change_kind", "changed_fields"):
            if api.get(name) != dump.get(name):
                differs.append(name)
    return differs


def hold_copies(table: pa.Table, zones: list[str] | None = None
                ) -> tuple[pa.Table, list[Finding]]:
    """The rows to chain (API rows at a seq a dump holds taken out) and the findings of
    the rows taken out, located at the API row."""
    rows = table.to_pylist()
    if not any(_hashless(r) for r in rows) or all(_hashless(r) for r in rows):
        return table, []
    kept: dict[tuple[str, int], dict] = {}
    for row in rows:
        if not _hashless(row) and row["chain_seq"] is not None:
            kept.setdefault((_chain(row), row["chain_seq"]), row)
    keep: list[bool] = []
    found: list[Finding] = []
    for row in rows:
        dump = kept.get((_chain(row), row["chain_seq"])) if _hashless(row) else None
        if dump is None:
            keep.append(True)
            continue
        keep.append(False)
        if zones is not None and _chain(row) not in zones:
            continue
        where = f"{row['source_file']}:{row['source_line']}"
        other = f"{dump['source_file']}:{dump['source_line']}"
        differs = differing(row, dump)
        if differs:
            found.append(Finding(Kind.CONFLICTING_DUPLICATE, _chain(row), row["id"],
                                 row["chain_seq"], where,
                                 wording.conflicting_version(row["chain_seq"], other,
                                                             dump["id"], differs)))
        else:
            found.append(Finding(Kind.DUPLICATE_EVENT, _chain(row), row["id"],
                                 row["chain_seq"], where, wording.duplicate_event(other)))
    return table.filter(pa.array(keep, pa.bool_())), found
