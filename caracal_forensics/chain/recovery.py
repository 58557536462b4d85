"""Stage 3's inner loop: find the occurred_at microseconds a millisecond row (OCSF) had
when it was hashed, batch by batch, in the C kernel when it was built."""

from __future__ import annotations

import pyarrow as pa

from . import digest, native

#: Rows per batch handed to Python for microsecond recovery.
RECOVERY_BATCH = 4096


def recover_batch(batch: pa.RecordBatch) -> pa.Table:
    """Microsecond recovery for one batch: (fid, line, recovered epoch micros or NULL)."""
    recover = _native_recover if native.AVAILABLE else digest.recover_micros
    heads = batch.column("head").to_pylist()
    micros = batch.column("micros").to_pylist()
    digits = batch.column("digits").to_pylist()
    targets = batch.column("target").to_pylist()
    found = [
        recover(h.encode("utf-8"), us, d, t)
        for h, us, d, t in zip(heads, micros, digits, targets, strict=True)
    ]
    return pa.table({"fid": batch.column("fid"), "line": batch.column("line"),
                     "micros": pa.array(found, pa.int64())})


def _native_recover(head: bytes, occurred_us: int, digits: int, target: str) -> int | None:
    """digest.recover_micros with the candidate loop in C (same contract, same results)."""
    width = 6 - digits
    step = 10**width
    base = occurred_us - occurred_us % step
    if width <= 0 or base <= 0 or width > 6:
        return digest.recover_micros(head, occurred_us, digits, target)
    try:
        want = bytes.fromhex(target)
    except ValueError:
        return None
    if len(want) != 32:
        return None
    k = native.recover_suffix(head + str(base // step).encode("ascii"), want, width)
    return None if k is None else base + k

