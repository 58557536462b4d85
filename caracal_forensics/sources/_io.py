"""Opening inputs: read-only, with gzip/zstd decompression detected from the bytes."""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import manifest as _manifest
from ..errors import InputError
from ..settings import MAX_LINE_ENV, settings
from . import objects

if TYPE_CHECKING:  # for annotations: _batch imports this module
    from ._batch import BadLines

def check_regular(path: str) -> None:
    """``manifest.check_regular`` (never open a FIFO or a device); an object is a file."""
    if not objects.is_object_url(path):
        _manifest.check_regular(path)


def file_sha256(path: str) -> tuple[int, str]:
    """Size and SHA-256 of a file or an object, read to its end."""
    if objects.is_object_url(path):
        return objects.object_sha256(path)
    return _manifest.file_sha256(path)


def input_size(path: str) -> int:
    """The size of a file or object as stored (OSError or InputError when it is not)."""
    if objects.is_object_url(path):
        return objects.object_state(path).size
    return os.path.getsize(path)


def open_raw(path: str) -> BinaryIO:
    """The stored bytes of a file or an object, unbuffered, from the first."""
    if objects.is_object_url(path):
        return objects.RawObject(path)  # type: ignore[return-value]
    return open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it


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

#: The default: far beyond any real event (a few KB), small enough that a hostile line
#: cannot take the machine's memory.
DEFAULT_MAX_LINE_BYTES = 16 << 20
_UNITS = {"": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def max_line_bytes() -> int:
    """The longest line, JSON document or CSV record a reader accepts: $CARACAL_FORENSICS_
    MAX_LINE_BYTES (``settings``), else 16 MiB. Parsed here only, so every reader bounds
    its memory alike."""
    import re

    from ..errors import UsageError

    configured = settings().max_line_bytes
    if not configured:
        return DEFAULT_MAX_LINE_BYTES
    match = re.fullmatch(r"([0-9]+)\s*([a-zA-Z]*)", configured)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or int(match.group(1)) * unit < 1:
        raise UsageError(f"{MAX_LINE_ENV} must be a positive number of bytes (such as "
                         f"16MiB or 1048576), not {configured[:40]!r}")
    return int(match.group(1)) * unit


def too_long(path: str, limit: int, where: str | None, what: str = "a line") -> InputError:
    """The error of a line (or document, record) past the maximum: read no further."""
    return InputError(path, f"{what} longer than the maximum of {limit:,} bytes (raise it "
                      f"with {MAX_LINE_ENV} if it is genuine)", where)


def read_document(path: str, limit: int, what: str) -> bytes:
    """The whole (decompressed) bytes of a file read as one JSON document (``what``: "a
    search page"), refused as ``too_long`` past ``limit``: before it is read when it is
    not compressed, else once that much of it is read. Never held past the limit."""
    try:
        if compression_of(path) is None and input_size(path) > limit:
            raise too_long(path, limit, None, what)
        with open_binary(path) as stream:
            data = stream.read(limit + 1)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"truncated or unreadable compressed data: {error}") from None
    if len(data) > limit:
        raise too_long(path, limit, None, what)
    return data


def compression_of(path: str) -> str | None:
    """'gzip', 'zstd' or None, from the file's first bytes (not its name)."""
    try:
        if objects.is_object_url(path):
            head = objects.read_head(path, 4)
        else:
            with open(path, "rb") as handle:
                head = handle.read(4)
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_binary(path: str, tap: FileDigest | None = None, *,
                request: int = objects.READ_BYTES) -> BinaryIO:
    """The file's decompressed bytes as a stream, opened read-only; ``tap`` sees the
    bytes as stored, as the stream reads them. A stream read to its end checks that the
    file ended where it did when it was opened (``_Watched``): one truncated, grown or
    rewritten meanwhile is an InputError, not half its events. ``request``: the bytes an
    object's stream asks the store for at a time (a peek asks for less)."""
    kind = compression_of(path)
    # buffered in C: the decompressors' small reads do not each call _Watched (an
    # object's reads are requests: fewer, larger)
    if objects.is_object_url(path):
        # the buffer hands over what each piece fetched ahead holds
        raw = io.BufferedReader(_WatchedObject(path, tap, request), 1 << 17)
    else:
        raw = io.BufferedReader(_Watched(path, tap), 1 << 17)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)  # type: ignore[arg-type]
    return raw  # type: ignore[return-value]


# --- a file that changes while it is read --------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileState:
    """What says a file is still the one that was opened: its identity (device, inode),
    size and modification times (st_ctime changes with every write, and no one can set
    it back)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileState:
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_states(path: str) -> dict[str, Any]:
    """The state of an input before it is read: of the file (of the object: size and ETag,
    ``objects.ObjectState``), or of each file a snapshot directory lists (the manifest
    and every data file)."""
    if objects.is_object_url(path):
        return {path: objects.object_state(path)}
    try:
        if not os.path.isdir(path):
            return {path: FileState.of(os.stat(path))}
        from ..manifest import MANIFEST
        from ._marker import ALERTS_FILE, event_files

        files = [os.path.join(path, MANIFEST), *event_files(path)]
        if os.path.isfile(os.path.join(path, ALERTS_FILE)):
            files.append(os.path.join(path, ALERTS_FILE))
        return {name: FileState.of(os.stat(name)) for name in files}
    except OSError as error:
        raise InputError(error.filename or path, f"cannot read: {error.strerror or error}"
                         ) from None


def check_unchanged(before: dict[str, Any], read: int | None = None) -> None:
    """InputError naming the first file whose state differs from ``before`` (taken before
    it was read), or whose ``read`` bytes (when all were read) are not its size: what was
    read is then part of one file and part of another, or a part only."""
    for path, was in before.items():
        now: Any
        if isinstance(was, objects.ObjectState):
            now = objects.state_or_none(path)
        else:
            try:
                now = FileState.of(os.stat(path))
            except OSError:
                now = None
        if now == was and (read is None or read == was.size):
            continue
        raise changed(path, was, now, read)


def changed(path: str, was: Any, now: Any, read: int | None) -> InputError:
    """The one-line error of a file (or object) that changed while it was read."""
    if now is None:
        after = "it is gone now"
    elif isinstance(was, objects.ObjectState):
        after = (f"it has {now.size:,} now" if now.size != was.size
                 else f"its ETag is {now.etag} now, not {was.etag} (uploaded again)")
    elif (now.dev, now.ino) != (was.dev, was.ino):
        after = "another file has its name now"
    elif now.size != was.size:
        after = f"it has {now.size:,} now"
    else:
        after = "it was modified meanwhile"
    got = (f"{read:,} bytes read of {was.size:,}" if read is not None
           else f"it had {was.size:,} bytes when its reading began")
    return ChangedWhileRead(path, f"changed while it was read: {got}; {after} (read it again "
                            "once it is complete, or a copy of it)")


class ChangedWhileRead(InputError):
    """An input that changed while it was read (``changed``)."""


class _Watched(io.RawIOBase):
    """A file opened read-only whose reads go to ``tap`` (its fingerprint), and whose end,
    once a read meets it, must be where the file ended when it was opened, the file
    unchanged since (``FileState``): else InputError, so a truncated file is not taken
    for a shorter one."""

    def __init__(self, path: str, tap: FileDigest | None = None):
        self._path, self._tap = path, tap
        self._raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._state = FileState.of(os.fstat(self._raw.fileno()))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer) -> int:
        got = self._raw.readinto(buffer)
        if got:
            if self._tap is not None:
                self._tap.update(memoryview(buffer)[:got])
        elif len(buffer):  # the end of the file: where it was, the file unchanged?
            at = self._raw.tell()
            if at != self._state.size or FileState.of(os.fstat(self._raw.fileno())) != self._state:
                try:  # what its name holds now says best what happened
                    now: FileState | None = FileState.of(os.stat(self._path))
                except OSError:
                    now = None
                raise changed(self._path, self._state, now, at)
        return got

    def close(self) -> None:
        self._raw.close()
        super().close()


class _WatchedObject(io.RawIOBase):
    """An object read as ``_Watched`` reads a file: its bytes go to ``tap``, and at its
    end the bytes read must be its size when opened and its ETag unchanged (asked again
    of the store: a ranged GET after a new upload reads the new object's bytes)."""

    def __init__(self, path: str, tap: FileDigest | None = None,
                 request: int = objects.READ_BYTES):
        self._path, self._tap = path, tap
        self._raw = objects.RawObject(path, request)
        self._state = self._raw.state
        self._at = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def readinto(self, buffer) -> int:
        got = self._raw.readinto(buffer)
        if got:
            self._at += got
            if self._tap is not None:
                self._tap.update(memoryview(buffer)[:got])
        elif len(buffer):
            now = objects.state_or_none(self._path)
            if self._at != self._state.size or now != self._state:
                raise changed(self._path, self._state, now, self._at)
        return got

    def close(self) -> None:
        self._raw.close()
        super().close()


#: What detection reads of a file to tell its shape (a JSON first line may need more).
PEEK_BYTES = 65536


def peek(path: str, size: int = PEEK_BYTES) -> bytes:
    """Up to ``size`` decompressed bytes from the start of the file."""
    if objects.is_object_url(path) and compression_of(path) is None:
        return objects.read_head(path, size)  # fetched once (objects.prefetch)
    try:
        with open_binary(path, request=max(size, 1 << 16)) as stream:
            return stream.read(size)
    except InputError:  # the store refused (objects.store_error): said as it is
        raise
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
        self._expected = input_size(path)
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

    def restart(self) -> None:
        """The reader starts again from the first byte (verify's second pass after a
        first that gave up early): what it passed so far is forgotten."""
        if self._expected < 0:
            return  # discarded
        if self._later is not None:
            work, thread = self._later
            work.put(None)
            thread.join()
            self._later = None
        self._sha = hashlib.sha256()
        self._size = 0
        self._finished = False

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
        if objects.is_object_url(given):
            yield from objects.expand(given, _is_data_file)
        elif os.path.isdir(given):
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


class LongLine:
    """In place of a block's bytes: one line longer than the maximum, never read whole."""


#: What ``_parallel.line_blocks`` yields as the data of such a line.
LONG_LINE = LongLine()


def allow_csv_cells(limit: int) -> None:
    """Let Python's csv module read cells as long as a record may be (``limit``, the
    readers' maximum): its own default, 128 KiB, refused a long cell as malformed."""
    import csv

    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def csv_records(path: str, bad: BadLines, *, unique_header: bool = False
                ) -> Iterator[tuple[int, list[str], list[str]]]:
    """(the line a record starts on, the header's names, the record's cells) of each
    record of a CSV file with a header line, as the Admin API and COPY ... CSV write it.

    A record may span lines (a quoted newline), so its line is counted by the csv
    module, not by the records before it: an error names the line an editor shows. A
    malformed file stops (InputError naming the line); an empty line is no record; a
    record longer than ``bad.max_line``, or with more or fewer cells than the header, is
    a bad line (``bad.handle``). ``unique_header``: a name the header holds twice is
    refused."""
    import csv

    allow_csv_cells(bad.max_line)
    with open_binary(path) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        records = csv.reader(text, strict=True)
        try:
            header = [name.strip().lstrip("\ufeff") for name in next(records)]
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as error:
            raise InputError(path, f"malformed CSV: {error}", "line 1") from None
        twice = unique_header and sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise InputError(path, f"CSV header names {', '.join(twice)} more than once",
                             "line 1")
        while True:
            number = records.line_num + 1
            try:
                record = next(records)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as error:
                raise InputError(path, f"malformed CSV: {error}", f"line {number}") from None
            if len(record) > 0 and sum(map(len, record)) > bad.max_line:
                bad.handle(too_long(path, bad.max_line, f"line {number}", "a CSV record"))
                continue
            if not record:
                continue
            if len(record) != len(header):
                bad.handle(InputError(path, f"expected {len(header)} cells, got "
                                      f"{len(record)}", f"line {number}"))
                continue
            yield number, header, record


def numbered_lines(path: str, bad: BadLines) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of a possibly compressed file, split on b"\\n". A
    line longer than ``bad.max_line`` is never held whole: it is refused, or skipped (read
    past in small pieces) and counted, as ``bad`` says."""
    number = 0
    limit = bad.max_line
    try:
        with open_binary(path) as stream:
            readline = stream.readline
            while raw := readline(limit + 1):
                number += 1
                if len(raw) > limit and not raw.endswith(b"\n"):
                    bad.handle(too_long(path, limit, f"line {number}"))
                    while raw and not raw.endswith(b"\n"):
                        raw = readline(1 << 16)
                    continue
                yield number, raw
    except InputError:
        raise
    except Exception as error:  # OSError, EOFError, zstd errors: a cut-off compressed stream
        raise InputError(
            path, f"truncated or unreadable compressed data: {error}", f"line {number + 1}"
        ) from None
