"""Opening inputs: read-only, with gzip/zstd decompression detected from the bytes."""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import InputError
from ..manifest import check_regular, file_sha256  # noqa: F401 - re-exported

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"

#: File endings an export has: such a file found in a directory must be readable.
EXPORT_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
#: Endings that may hold an export (``tail --json > x.log``) but are as often notes (a
#: README.txt): such a file is read when it is an export and left out when it is not.
LOOSE_SUFFIXES = (".txt", ".log")
#: File endings a directory walk considers; anything else in a directory is not an export.
DATA_SUFFIXES = EXPORT_SUFFIXES + LOOSE_SUFFIXES
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")


def compression_of(path: str) -> str | None:
    """'gzip', 'zstd' or None, from the file's first bytes (not its name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_binary(path: str, tap: FileDigest | None = None) -> BinaryIO:
    """The file's decompressed bytes as a stream, opened read-only; ``tap`` sees the
    bytes as stored, as the stream reads them."""
    kind = compression_of(path)
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if tap is not None:
        raw = _Tapped(raw, tap)  # type: ignore[assignment]
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)  # type: ignore[arg-type]
    return raw


def peek(path: str, size: int = 65536) -> bytes:
    """Up to ``size`` decompressed bytes from the start of the file."""
    try:
        with open_binary(path) as stream:
            return stream.read(size)
    except (OSError, EOFError) as error:
        raise InputError(path, f"cannot decompress: {error}") from None
    except Exception as error:  # zstandard.ZstdError and friends
        raise InputError(path, f"cannot decompress: {error}") from None


class FileDigest:
    """The size and SHA-256 of a file, taken by its reader as it goes through the file
    from the first byte to the last, so that the file is not read again to be
    fingerprinted. ``result()`` is None unless the reader finished and the bytes it
    passed add up to the file's size (else the file is hashed on its own)."""

    def __init__(self, path: str):
        self._sha = hashlib.sha256()
        self._size = 0
        self._finished = False
        self._expected = os.stat(path).st_size
        self._later: Any = None  # (queue, thread) of update_later, once used

    def update(self, data) -> None:
        self._sha.update(data)
        self._size += len(data)

    def update_later(self, view) -> None:
        """``update`` on a thread of the digest's own, in order, so that the reader goes
        on reading: the JSON lines block reader spent a third of its time hashing (1M
        events). The bytes must stay as they are until hashed: a pooled read buffer is
        not taken again while a view of it is held."""
        if self._expected < 0:
            return  # discarded
        if self._later is None:
            import queue
            import threading

            work: queue.SimpleQueue = queue.SimpleQueue()
            thread = threading.Thread(target=self._hash, args=(work,), name="fingerprint-tap",
                                      daemon=True)
            thread.start()
            self._later = (work, thread)
        self._size += len(view)
        self._later[0].put(view)

    def discard(self) -> None:
        """No result will be asked for (an error elsewhere): the hashing thread ends."""
        self._finished = False
        self._expected = -1  # nothing taken from here on counts
        if self._later is not None:
            self._later[0].put(None)
            self._later = None

    def _hash(self, work) -> None:
        while (view := work.get()) is not None:
            self._sha.update(view)

    def finish(self) -> None:
        self._finished = True

    def result(self) -> tuple[int, str] | None:
        if self._later is not None:
            work, thread = self._later
            work.put(None)
            thread.join()
            self._later = None
        if not self._finished or self._size != self._expected:
            return None
        return self._size, self._sha.hexdigest()


class _Tapped(io.RawIOBase):
    """A read-only file whose bytes also go to a FileDigest as they are read."""

    def __init__(self, raw: BinaryIO, tap: FileDigest):
        self._raw, self._tap, self._at = raw, tap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        got = self._raw.readinto(buffer)
        if got:
            self._tap.update(memoryview(buffer)[:got])
            self._at += got
        return got

    def tell(self) -> int:
        return self._at

    def close(self) -> None:
        self._raw.close()
        super().close()


def _is_data_file(name: str) -> bool:
    return _uncompressed_name(name).endswith(DATA_SUFFIXES)


def is_export_name(path: str) -> bool:
    """Whether the file's name is an export's (``db.csv``, ``x.parquet``, ``a.jsonl.gz``):
    such a file found in a directory that cannot be read is an error, not left out."""
    return _uncompressed_name(os.path.basename(path)).endswith(EXPORT_SUFFIXES)


def _uncompressed_name(name: str) -> str:
    lowered = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lowered.endswith(suffix):
            return lowered[: -len(suffix)]
    return lowered


def expand_paths(paths: list[str]) -> Iterator[tuple[str, bool]]:
    """Each input file as (path, named_explicitly), in a stable order.

    Directories are walked recursively (hidden entries and non-data files left out); a
    directory holding a ``manifest.json`` is yielded whole, as one snapshot (whose
    manifest is checked when it is opened: a broken one must not turn the snapshot's part
    files into loose inputs). Globs are expanded. A path that names nothing is an input
    error.
    """
    for given in paths:
        if os.path.isdir(given):
            yield from _walk(given)
        elif os.path.exists(given):
            yield given, True
        elif os.path.islink(given):
            raise InputError(given, "a symbolic link to nothing")
        elif glob.has_magic(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                raise InputError(given, "the pattern matches no file")
            for match in matches:
                if os.path.isdir(match):
                    yield from _walk(match)
                else:
                    yield match, False
        else:
            raise InputError(given, "no such file or directory")


def _unlistable(error: OSError) -> None:
    raise InputError(error.filename or "a directory",
                     f"cannot list the directory: {error.strerror or error}")


def _walk(directory: str) -> Iterator[tuple[str, bool]]:
    from ._marker import is_snapshot_dir

    if is_snapshot_dir(directory):
        yield directory, True
        return
    # Links to directories are followed (each directory once: a link loop ends), and a
    # directory that cannot be listed is an error: either way its exports would be
    # missing without a word.
    visited: set[str] = set()
    for root, dirs, files in os.walk(directory, onerror=_unlistable, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if is_snapshot_dir(root):
            dirs[:] = []
            yield root, True
            continue
        for name in sorted(files):
            if not name.startswith(".") and _is_data_file(name):
                yield os.path.join(root, name), False
