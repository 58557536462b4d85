"""The optional C kernel (``_native.c``, OpenSSL libcrypto) behind a pyarrow-level API.

SHA-256 in DuckDB runs at roughly 250 MB/s per core; OpenSSL with the CPU's SHA
extensions at several times that, so the bulk hashing of verify goes through this kernel
when the package was built with it. Without it (``AVAILABLE`` is False, or
``CARACAL_FORENSICS_NATIVE=0``) verify uses DuckDB SQL and the pure-Python reference;
tests check all paths give the same hashes.
"""

from __future__ import annotations

import pyarrow as pa

from ..model import HASH_FIELDS, JSONB_FIELDS
from ..settings import settings

try:
    from . import _native
except ImportError:  # not built: a source checkout without a compiler, or a pure wheel
    _native = None

AVAILABLE = _native is not None and settings().native


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


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    column = batch.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _int64_parts(values: pa.Array) -> tuple:
    """(validity, data, offset) of an int64 (or timestamp) array, as the kernel takes them."""
    if pa.types.is_timestamp(values.type):
        values = values.view(pa.int64())  # the same 64-bit values: no compute call
    elif values.type != pa.int64():
        values = values.cast(pa.int64())
    validity, data = values.buffers()[:2]
    return (None if values.null_count == 0 else validity), data, values.offset


def _field_parts(values: pa.Array) -> tuple:
    """``_parts`` of a hashed field and (indices, their offset, dictionary length): a
    dictionary-encoded column (a snapshot's repeating columns, read as stored) is hashed
    through its int32 indices without being expanded first; a NULL in the dictionary
    hashes as its empty value, as NULL and "" do (FORMAT.md section 2)."""
    kind = values.type
    if (pa.types.is_dictionary(kind) and kind.index_type == pa.int32()
            and (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type))):
        indices, dictionary = values.indices, values.dictionary
        _, offsets, data = dictionary.buffers()[:3]
        validity = indices.buffers()[0] if indices.null_count else None
        return (validity, offsets, data if data is not None else b"", dictionary.offset,
                pa.types.is_large_string(kind.value_type), indices.buffers()[1],
                indices.offset, len(dictionary))
    return (*_parts(values), None, 0, 0)


def _content_args(batch: pa.RecordBatch | pa.Table) -> tuple:
    """(n, fields, jsonb flags, micros validity, data, offset): the content hash's inputs."""
    fields = [_field_parts(_column(batch, name)) for name in HASH_FIELDS]
    flags = [name in JSONB_FIELDS for name in HASH_FIELDS]
    return (batch.num_rows, fields, flags, *_int64_parts(_column(batch, "occurred_at")))


def content_hex(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """content_sha256 of every row from the model's hashed columns and occurred_at
    (timestamp[us]); NULL where occurred_at is NULL. The same bytes as
    digest.content_preimage, hashed field by field without building the preimage."""
    return _array(batch.num_rows, _native.content_hex(*_content_args(batch)))


def first_unproven_row(batch: pa.RecordBatch, key: bytes | None, *, check_content: bool = True,
                       has_prev: bool = True, wrong_key: bool = False) -> int:
    """The first row whose stored content_sha256 is not exactly the recomputed lowercase
    hex (without ``check_content``: not 64 characters), or, with a key and ``has_prev``,
    whose chain_hmac over its stored prev is not (with ``wrong_key``: is missing, or is
    it once lower-cased, as ``follow`` tests it); -1 if every row holds."""
    return _native.row_check(
        key, check_content, has_prev, wrong_key, *_content_args(batch),
        *_parts(_column(batch, "content_sha256")),
        *_parts(_column(batch, "chain_hmac")), *_parts(_column(batch, "prev_content_sha256")))


def follower() -> object:
    """Per-zone state of the clean pass's chain walk (see ``follow``)."""
    return _native.follower_new()


def follow(state: object, batch: pa.RecordBatch, key: bytes | None = None,
           has_prev: bool = True, wrong_key: bool = False) -> tuple[int, list[int], bool]:
    """Link each row to the previous row of its zone: the next seq, and its prev is the
    predecessor's content hash (without ``has_prev``: with a key, its chain_hmac chains to
    that hash; with ``wrong_key``, every such HMAC is present and fails instead, compared
    lower-cased). Returns the first row that does not link (-1 if none), the rows
    starting a zone, and whether that row failed on its HMAC alone."""
    return _native.follow(
        state, key, has_prev, wrong_key, batch.num_rows, *_parts(_column(batch, "zone_id")),
        *_int64_parts(_column(batch, "chain_seq")), *_parts(_column(batch, "content_sha256")),
        *_parts(_column(batch, "prev_content_sha256")), *_parts(_column(batch, "id")),
        *_parts(_column(batch, "chain_hmac")))


def follower_zones(state: object) -> list[tuple[str, int, int, int, str]]:
    """Per zone followed: (zone_id, events, first seq, last seq, last content hash)."""
    return [(zone.decode("utf-8"), events, first, last, head)
            for zone, events, first, last, head in _native.follower_zones(state)]


def ids_unique(state: object) -> bool:
    """Whether no two rows followed share an event id (by 64-bit hash)."""
    return _native.follower_ids_unique(state)


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
