"""The optional C kernel (``_native.c``, OpenSSL libcrypto) behind a pyarrow-level API.

SHA-256 in DuckDB runs at roughly 250 MB/s per core; OpenSSL with the CPU's SHA
extensions at several times that, so the bulk hashing of verify goes through this kernel
when the package was built with it. Without it (``AVAILABLE`` is False, or
``CARACAL_FORENSICS_NATIVE=0``) verify uses DuckDB SQL and the pure-Python reference;
tests check all paths give the same hashes.
"""

from __future__ import annotations

import os

import pyarrow as pa

from ..model import HASH_FIELDS, JSONB_FIELDS

try:
    from . import _native
except ImportError:  # not built: a source checkout without a compiler, or a pure wheel
    _native = None

AVAILABLE = _native is not None and os.environ.get("CARACAL_FORENSICS_NATIVE", "1") != "0"


def _parts(values: pa.Array) -> tuple:
    """(validity, offsets, data, offset, large) of a string array, as the kernel takes them."""
    if pa.types.is_large_string(values.type):
        large = True
    else:
        if not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        large = False
    validity, offsets, data = values.buffers()[:3]
    if validity is None or values.null_count == 0:
        validity = None
    return validity, offsets, data if data is not None else b"", values.offset, large


def _array(length: int, result: tuple[bytes, bytes, bytes]) -> pa.Array:
    validity, offsets, data = result
    return pa.Array.from_buffers(
        pa.string(), length, [pa.py_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def sha256_hex(values: pa.Array) -> pa.Array:
    """Lowercase hex SHA-256 of each UTF-8 value; NULL stays NULL."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return _array(len(values), _native.sha256_hex(len(values), *_parts(values)))


def content_hex(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """content_sha256 of every row from the model's hashed columns and occurred_at
    (timestamp[us]); NULL where occurred_at is NULL. The same bytes as
    digest.content_preimage, hashed field by field without building the preimage."""
    fields = []
    for name in HASH_FIELDS:
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        fields.append(_parts(column))
    micros = batch.column("occurred_at")
    if isinstance(micros, pa.ChunkedArray):
        micros = micros.combine_chunks()
    micros = micros.cast(pa.int64())
    validity, data = micros.buffers()[:2]
    if micros.null_count == 0:
        validity = None
    flags = [name in JSONB_FIELDS for name in HASH_FIELDS]
    return _array(len(micros), _native.content_hex(len(micros), fields, flags, validity, data,
                                                   micros.offset))


def hmac_hex(key: bytes, content: pa.Array, prev: pa.Array) -> pa.Array:
    """HMAC-SHA256(key, content + "|" + (prev or "")) per row; NULL where content is NULL."""
    if isinstance(content, pa.ChunkedArray):
        content = content.combine_chunks()
    if isinstance(prev, pa.ChunkedArray):
        prev = prev.combine_chunks()
    if len(content) != len(prev):
        raise ValueError("content and prev differ in length")
    return _array(len(content), _native.hmac_hex(key, len(content), *_parts(content),
                                                 *_parts(prev)))


def recover_suffix(prefix: bytes, target: bytes, width: int) -> int | None:
    """The k whose ``prefix + "%0{width}d000" % k`` hashes to target (32 raw bytes)."""
    found = _native.recover(prefix, target, width)
    return None if found < 0 else found
