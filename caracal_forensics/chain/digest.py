"""The content hash and the chain HMAC (FORMAT.md section 2), in Python and in DuckDB SQL.

The Python functions are the reference: one event at a time, easy to read against the
spec. The ``*_sql`` builders give the same computation as DuckDB expressions so that the
bulk path runs vectorised on every core; tests check that both agree byte for byte. The
field order comes from ``model.HASH_FIELDS`` only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..model import HASH_FIELDS, JSONB_FIELDS

#: The unit separator that follows each of the 12 hashed fields.
US = b"\x1f"
#: What a NULL jsonb value hashes as (``coalesce(x::text, 'null')`` upstream).
JSON_NULL = "null"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def occurred_at_micros(value: datetime | int) -> int:
    """Epoch microseconds of occurred_at: an aware datetime (naive means UTC) or an int."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def occurred_at_nanos(value: datetime | int) -> int:
    """N(occurred_at): integer nanoseconds since the epoch (microseconds * 1000)."""
    return occurred_at_micros(value) * 1000


def _field_text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if name in JSONB_FIELDS:
        # "" is not jsonb text; OCSF files write it for NULL.
        return JSON_NULL if value is None or value == "" else value
    return "" if value is None else value


def preimage_head(row: Mapping[str, Any]) -> bytes:
    """The preimage up to N(occurred_at): the 12 fields, each followed by 0x1F."""
    return "".join(_field_text(row, name) + "\x1f" for name in HASH_FIELDS).encode("utf-8")


def content_preimage(row: Mapping[str, Any]) -> bytes:
    """The exact bytes whose SHA-256 is content_sha256."""
    return preimage_head(row) + str(occurred_at_nanos(row["occurred_at"])).encode("ascii")


def content_sha256(row: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of :func:`content_preimage`."""
    return sha256_hex(content_preimage(row))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_message(content_hash: str, prev: str | None) -> bytes:
    """The HMAC input: ``content_sha256 + "|" + prev`` (prev "" for a zone's first event)."""
    return f"{content_hash}|{prev or ''}".encode("ascii")


def chain_hmac(key: bytes, content_hash: str, prev: str | None) -> str:
    """Lowercase hex HMAC-SHA256 over :func:`chain_message`, keyed with the decoded key."""
    return hmac.new(key, chain_message(content_hash, prev), hashlib.sha256).hexdigest()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104's inner and outer padded keys: HMAC = H(opad || H(ipad || msg)).

    Lets SQL (which has SHA-256 but no HMAC) compute the HMAC; the pads are as secret as
    the key and are passed as bound parameters only.
    """
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


# --- microsecond recovery (OCSF keeps occurred_at in milliseconds) ---------------------


def candidate_count(digits: int) -> int:
    """How many occurred_at values share one stored value of ``digits`` fractional digits."""
    return 10 ** (6 - digits)


def recover_micros(
    head: bytes,
    occurred_us: int,
    digits: int,
    target: str,
    hint: int | None = None,
) -> int | None:
    """The epoch microseconds, within the stored precision, whose preimage hashes to target.

    ``occurred_us`` is the stored (truncated) value. Every candidate's preimage is
    ``head + str(N)``, and for a positive time N's decimal text is the coarse part
    followed by ``width`` varying digits and ``000``: the common prefix is hashed once
    and each candidate only adds its last bytes to a copy of that state. ``hint`` (a
    microsecond value seen elsewhere, e.g. in another shape) is tried first.
    """
    width = 6 - digits
    if width <= 0:
        return occurred_us if _full_hash(head, occurred_us) == target else None
    step = 10**width
    base_us = occurred_us - occurred_us % step
    if hint is not None and base_us <= hint < base_us + step:
        if _full_hash(head, hint) == target:
            return hint
    if base_us <= 0:  # before the epoch N's text does not split cleanly; rare, brute force
        for micros in range(base_us, base_us + step):
            if _full_hash(head, micros) == target:
                return micros
        return None
    prefix = hashlib.sha256(head + str(base_us // step).encode("ascii"))
    want = bytes.fromhex(target)
    for suffix, k in _suffixes(width):
        state = prefix.copy()
        state.update(suffix)
        if state.digest() == want:
            return base_us + k
    return None


def _full_hash(head: bytes, micros: int) -> str:
    return hashlib.sha256(head + str(micros * 1000).encode("ascii")).hexdigest()


_SUFFIX_CACHE: dict[int, list[tuple[bytes, int]]] = {}


def _suffixes(width: int) -> list[tuple[bytes, int]]:
    """The ``width`` varying digits plus the constant "000", for every candidate."""
    if width not in _SUFFIX_CACHE:
        _SUFFIX_CACHE[width] = [
            (f"{k:0{width}d}000".encode("ascii"), k) for k in range(10**width)
        ]
    return _SUFFIX_CACHE[width]


# --- the same computation as DuckDB SQL -------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def preimage_head_sql() -> str:
    """SQL for :func:`preimage_head` (as VARCHAR) over a relation with the model columns."""
    parts = []
    for name in HASH_FIELDS:
        column = _quote(name)
        if name in JSONB_FIELDS:
            parts.append(f"coalesce(nullif({column}, ''), '{JSON_NULL}')")
        else:
            parts.append(f"coalesce({column}, '')")
    return " || ".join(f"{part} || chr(31)" for part in parts)


def nanos_sql(column: str = "occurred_at") -> str:
    """SQL for N(occurred_at) as decimal text (HUGEINT: no overflow past year 2262)."""
    return f"CAST(CAST(epoch_us({_quote(column)}) AS HUGEINT) * 1000 AS VARCHAR)"


def content_sha256_sql(sha256: str = "sha256") -> str:
    """SQL for :func:`content_sha256`; ``sha256`` names the hash function to call."""
    return f"{sha256}({preimage_head_sql()} || {nanos_sql()})"


def chain_hmac_sql(content_sql: str, prev_sql: str) -> str:
    """SQL for :func:`chain_hmac` with the pads bound as ``$ipad`` and ``$opad`` (BLOBs)."""
    message = f"encode({content_sql} || '|' || coalesce({prev_sql}, ''))"
    return f"sha256($opad || unhex(sha256($ipad || {message})))"


#: A progress callback: called with (done, total) as work advances.
Progress = Callable[[int, int], None]
