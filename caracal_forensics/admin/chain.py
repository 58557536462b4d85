"""The admin chain's content hash (FORMAT.md 8), and the search for the payload's key
order that the stored jsonb has lost.

content_sha256 = SHA-256 over 14 fields each followed by 0x1F: the 11 text fields (NULL
is ""), status_code in decimal, P = ``JSON.stringify(payload)`` as the service built it
("" for a NULL payload), occurred_at as ``toISOString()`` (milliseconds, ``Z``). NUL
characters are stripped from every string first.

The key order search, per row (``find_payload``):
1. JavaScript's rule fixes the integer-like keys: first, ascending (``js.js_key_order``).
2. The orders the services build, per object whose keys they cover (``SERVICE_ORDERS``),
   and the order as stored, are tried first: they find every row Caracal writes today.
3. Then every order of every object (nested ones too), until ``ORDER_BUDGET`` orders in
   all were tried.
4. Nothing found: when every order was tried (their number, the product of n! over the
   objects' n non-index keys, is within the budget) the content check fails
   (``content_mismatch``); else it is ``unverifiable``, with the reason
   (``ORDER_NOT_FOUND`` in ``missing``), while the HMAC and the links still check the
   stored hash.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from ..chain.description import ChainSpec
from ..jsonb import loads
from ..timetext import EPOCH, from_micros
from .js import is_index_key, string_text, stringify
from .model import GLOBAL_CHAIN, HASH_FIELDS, TEXT_FIELDS

US = "\x1f"

#: The most orders (whole payload renderings) tried per row: every order of an object of
#: up to 8 keys (8! = 40,320), or of several smaller ones (their n! multiplied). Its
#: cost, the worst case, is measured by ``make bench``; a row needing more is
#: ``unverifiable`` (a mismatch is only proven when every order was tried).
ORDER_BUDGET = 40_320

#: The key orders the services build (FORMAT.md 8): the ``api`` hook, the zone route's
#: ``DCR shutdown <mode>`` rows, the subject route's ``Subject authority revoked`` rows.
SERVICE_ORDERS: tuple[tuple[str, ...], ...] = (
    ("rls_mode", "rls_zone_guc", "operator", "change_kind", "changed_fields",
     "secret_rotated"),
    ("dcr_registration_disabled", "dcr_shutdown_mode", "live_dcr_applications",
     "revoked_applications", "revoked_authority_records", "terminated_sessions",
     "revoked_delegations"),
    ("subject_id", "reason", "revoked_authority_records", "terminated_sessions",
     "revoked_delegations", "revoked_connections"),
)

#: Put in ``missing`` for a row whose payload key order was not found within the budget.
ORDER_NOT_FOUND = "payload_json key order"


def iso_millis(value: datetime | int) -> str:
    """occurred_at (a UTC datetime, or microseconds since the epoch) as JavaScript's
    ``toISOString()``: always three fractional digits and ``Z``."""
    micros = value if isinstance(value, int) else (value - EPOCH) // timedelta(microseconds=1)
    moment = from_micros(micros - micros % 1000)
    year = moment.year
    year_text = f"{year:04d}" if year <= 9999 else f"+{year:06d}"
    return (f"{year_text}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def _text(value: object) -> str:
    return "" if value is None else str(value).replace("\x00", "")


def preimage_parts(row: dict) -> tuple[str, str]:
    """The preimage before P (12 fields, each followed by 0x1F) and after it (0x1F, the
    time, 0x1F). ``row`` has the admin fields; a zone_id of ``GLOBAL_CHAIN`` is NULL."""
    head = []
    for name in TEXT_FIELDS:
        value = row.get(name)
        if name == "zone_id" and value == GLOBAL_CHAIN:
            value = None
        head.append(_text(value) + US)
    status = row.get("status_code")
    head.append(("" if status is None else str(int(status))) + US)
    return "".join(head), US + iso_millis(row["occurred_at"]) + US


# --- the key order search ----------------------------------------------------------------


def _objects(value: object) -> Iterator[dict]:
    """Every object in the value, outermost first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item)


def _free(obj: dict) -> list[str]:
    """The keys whose place is a choice (not integer-like), as stored."""
    return [k for k in obj if not is_index_key(k)]


def likely_orders(obj: dict) -> list[tuple[str, ...]]:
    """The orders tried first: a service's layout when its keys cover the object's (its
    keys in layout order, any others after them as stored), then the order as stored."""
    free = _free(obj)
    orders: list[tuple[str, ...]] = []
    for layout in SERVICE_ORDERS:
        known = [k for k in layout if k in obj]
        if len(known) >= min(2, len(free)) and known:
            order = tuple(known + [k for k in free if k not in layout])
            if order not in orders:
                orders.append(order)
    stored = tuple(free)
    if stored not in orders:
        orders.append(stored)
    return orders


def order_space(value: object) -> int:
    """How many renderings the value has: the product of n! over its objects."""
    space = 1
    for obj in _objects(value):
        space *= math.factorial(len(_free(obj)))
        if space > 10**12:
            return space
    return space


def _render(value: object, choice: dict[int, tuple[str, ...]]) -> str:
    """P with each object's free keys in the chosen order (index keys go first anyway)."""
    def order(obj: dict) -> list[str]:
        chosen = choice.get(id(obj))
        if chosen is None:
            return list(obj)
        return [k for k in obj if is_index_key(k)] + list(chosen)

    return stringify(value, order=order)


def candidate_payloads(value: object, budget: int = ORDER_BUDGET) -> Iterator[str]:
    """P for each candidate order, likeliest first, at most ``budget`` of them (each once)."""
    objects = list(_objects(value))
    if not objects:
        yield stringify(value)
        return
    seen: set[str] = set()
    tried = 0
    likely = [likely_orders(obj) for obj in objects]
    for combo in itertools.product(*likely):
        text = _render(value, {id(o): order for o, order in zip(objects, combo, strict=True)})
        if text not in seen:
            seen.add(text)
            tried += 1
            yield text
            if tried >= budget:
                return
    # every order of every object (rendered from parts made once), until the budget
    for text in _renderings(value, budget):
        if text not in seen:
            tried += 1
            yield text
            if tried >= budget:
                return


def _renderings(value: object, budget: int) -> Iterator[str]:
    """Every rendering of the value, each object's free keys in every order (its values'
    own renderings made once, at most ``budget`` of each)."""
    if isinstance(value, dict):
        index = sorted((k for k in value if is_index_key(k)), key=int)
        free = _free(value)
        keys = index + free
        names = {k: string_text(k) + ":" for k in keys}
        options = [_options(value[k], budget) for k in keys]
        for combo in itertools.product(*options):
            part = {k: names[k] + text for k, text in zip(keys, combo, strict=True)}
            head = [part[k] for k in index]
            for order in itertools.permutations(free):
                yield "{" + ",".join(head + [part[k] for k in order]) + "}"
    elif isinstance(value, list):
        for combo in itertools.product(*(_options(v, budget) for v in value)):
            yield "[" + ",".join(combo) + "]"
    else:
        yield stringify(value)


def _options(value: object, budget: int) -> list[str]:
    """The renderings of a value inside an object or array (one unless it holds objects)."""
    if next(_objects(value), None) is None:
        return [stringify(value)]
    return list(itertools.islice(_renderings(value, budget), budget))


@dataclass(frozen=True)
class Found:
    """The outcome of the search for one row. ``payload``: P that reproduced the stored
    hash (or the likeliest P when none did or none was stored); ``content_sha256``: its
    hash; ``matched``; ``exhausted``: every order was tried (so a mismatch is proven);
    ``tried``: how many."""

    payload: str
    content_sha256: str
    matched: bool
    exhausted: bool
    tried: int


def find_payload(payload_text: str | None, head: str, tail: str, stored: str | None,
                 budget: int = ORDER_BUDGET) -> Found:
    """Search the payload's key order against the stored content hash (see the module)."""
    prefix = hashlib.sha256(head.encode("utf-8", "surrogatepass"))
    suffix = tail.encode("utf-8")
    if payload_text is None:
        digest = prefix.copy()
        digest.update(suffix)
        calc = digest.hexdigest()
        return Found("", calc, stored is not None and calc == stored, True, 1)
    value = strip_nul(loads(payload_text))
    first: tuple[str, str] | None = None
    tried = 0
    for text in candidate_payloads(value, budget):
        tried += 1
        digest = prefix.copy()
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(suffix)
        calc = digest.hexdigest()
        if first is None:
            first = (text, calc)
            if stored is None:
                return Found(text, calc, False, True, 1)
        if calc == stored:
            return Found(text, calc, True, True, tried)
    assert first is not None
    return Found(first[0], first[1], False, order_space(value) <= budget, tried)


def strip_nul(value: object) -> object:
    """The value with NUL removed from every string and key (the writer does so before
    hashing and storing)."""
    if isinstance(value, dict):
        return {k.replace("\x00", ""): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    if type(value) is str:
        return value.replace("\x00", "")
    return value


# --- the chain's description ----------------------------------------------------------


def content_batch(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
    """The admin chain's ``ChainSpec.content``: each row's content hash (the stored one
    when an order reproduces it), and ``missing`` naming ``ORDER_NOT_FOUND`` where the
    budget ran out first."""
    rows = batch.to_pylist()
    calcs: list[str | None] = []
    missing: list[str] = []
    for row in rows:
        gone = row.get("missing") or ""
        if not row.get("has_prev") and row.get("stored_c") is None:
            # a shape without hashes (the Admin API): its payload is redacted and parsed
            # into JavaScript values, so P cannot be rebuilt; its content stays unknown
            calcs.append(None)
            missing.append(",".join(filter(None, (gone, "content_sha256"))))
            continue
        if not row.get("hashable") or row.get("occurred_at") is None:
            calcs.append(None)
            missing.append(gone)
            continue
        head, tail = preimage_parts(row)
        found = find_payload(row.get("payload_json"), head, tail, row.get("stored_c"))
        if found.matched or found.exhausted or row.get("stored_c") is None:
            calcs.append(found.content_sha256)
            missing.append(gone)
        else:
            calcs.append(None)
            missing.append(",".join(filter(None, (gone, ORDER_NOT_FOUND))))
    return pa.array(calcs, pa.string()), pa.array(missing, pa.string())


#: The admin changes' chain (FORMAT.md 8), verified by the shared stages and findings.
ADMIN_CHAIN = ChainSpec(name="admin", view="admin_events", hashed=HASH_FIELDS,
                        optional=("payload_json",), content=content_batch,
                        what="admin change", undecided=ORDER_NOT_FOUND,
                        budget=ORDER_BUDGET, unsigned_allowed=True)
