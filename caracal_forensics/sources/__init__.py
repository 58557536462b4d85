"""Readers for every export shape. Only this package knows about shapes.

Each input is detected from its content, opened read-only, and read as a stream of
record batches in the one event schema (or the alert schema). Every shape is one class in
``shapes/`` listed in ``registry.SHAPES``: this module asks the shape of an input (its
``read``, ``check``, ``fingerprint``, ``taps``), never compares shape names. Adding a
shape is one new module in ``shapes/`` plus a line in the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pyarrow as pa

from ..errors import InputError
from ..model import source_line_unit
from ._batch import BadLines, drop_out_of_range
from ._io import (
    ChangedWhileRead,
    check_unchanged,
    expand_paths,
    file_sha256,
    file_states,
    is_export_name,
    open_raw,
)
from .detect import detect_shape
from .objects import is_object_url
from .registry import holds_admin, holds_alerts, shape_named
from .shapes.base import DIRECTORY

__all__ = [
    "read_inputs",
    "is_excluded",
    "BadLines",
    "Fingerprints",
    "InputFile",
    "scan",
    "read_events",
    "read_alerts",
    "detect_shape",
]


@dataclass
class InputFile:
    """One examined input: where it is, what it is, and its fingerprint as handed over."""

    path: str
    shape: str
    bytes: int
    sha256: str
    rows: int = 0
    #: set while Fingerprints lets the reader take the file's fingerprint (not reported)
    reader_tap: Any = field(default=None, repr=False, compare=False)
    #: the file's state when it was found (``_io.file_states``): reading it, and taking its
    #: fingerprint, must end with it unchanged, so that both are of the same bytes
    states: Any = field(default=None, repr=False, compare=False)
    #: an object's ETag (``s3://`` inputs only, ``objects.ObjectState``), else None
    etag: str | None = None

    @property
    def holds_alerts(self) -> bool:
        return holds_alerts(self.shape)

    @property
    def holds_admin(self) -> bool:
        return holds_admin(self.shape)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("reader_tap", "states")
                and not (f.name == "etag" and self.etag is None)}


def scan(paths: list[str], fingerprint: bool = True,
         exclude: Sequence[str] = (), admin: bool = False) -> list[InputFile]:
    """Expand paths (files, directories, globs) and detect each file's shape.

    A file found in a directory (or by a glob) whose name is not an export's (a key, a
    README) is left out when it is not an export; one with an export's name (``.csv``,
    ``.parquet``, ...) that cannot be read is an error, or a truncated hourly file would
    silently drop its events: the error says how to leave it out (``exclude``, glob
    patterns, see :func:`is_excluded`). A file named explicitly must be an export. A
    snapshot is checked against its manifest (sizes, footers). ``fingerprint=False``
    leaves ``bytes`` and ``sha256`` to :class:`Fingerprints` (which hashes while the
    inputs are read). ``admin``: keep the admin change exports (``admin_audit_events``);
    without it one found in a directory is left out (both chains may sit in one
    directory) and one named explicitly is an error: the event commands do not read it.
    """
    exclude = _patterns(exclude)
    found: list[InputFile] = []
    seen: set[str] = set()
    expanded: Iterable[tuple[str, bool]] = expand_paths(paths)
    prefetched: dict[str, Any] = {}
    if any(is_object_url(path) for path in paths):  # objects: looked at on many threads
        from ._io import PEEK_BYTES
        from .objects import prefetch

        expanded = list(expanded)
        prefetched = prefetch([path for path, _explicit in expanded
                               if is_object_url(path)
                               and not (exclude and is_excluded(path, exclude))], PEEK_BYTES)
    for path, explicit in expanded:
        if exclude and is_excluded(path, exclude):
            continue
        real = _realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:  # before anything of it is read (detection too)
            states = ({path: prefetched[path]} if path in prefetched
                      else file_states(path))
        except InputError:
            states = None  # detection says what is wrong with it
        try:
            shape = detect_shape(path)
        except InputError as error:
            if explicit:
                raise
            if is_export_name(path):
                raise _with_exclude_hint(error, path) from None
            continue
        known = _shape(path, shape)
        if known.holds_admin and not admin:
            if explicit:
                raise InputError(path, "holds admin changes (admin_audit_events), not "
                                 "events: this command reads events (verify and report "
                                 "read both chains)")
            continue
        rows = known.check(path)
        if states is None:
            states = file_states(path)
        size, digest = known.fingerprint(path) if fingerprint else (0, "")
        found.append(InputFile(path=path, shape=shape, bytes=size, sha256=digest, rows=rows,
                               states=states, etag=_etag(path, states)))
    return found


def _etag(path: str, states: dict) -> str | None:
    """The ETag an object had when found (what the report hands over beside its SHA-256)."""
    state = states.get(path)
    return getattr(state, "etag", None)


def _patterns(exclude: str | Sequence[str] | None) -> tuple[str, ...]:
    from ..errors import UsageError

    items = [exclude] if isinstance(exclude, str) else list(exclude or ())
    for item in items:
        if not isinstance(item, str) or not item:
            raise UsageError(f"exclude needs non-empty glob patterns, not {item!r}",
                             "exclude")
    return tuple(items)


def is_excluded(path: str, patterns: Sequence[str]) -> bool:
    """Whether a pattern (an ``fnmatch`` glob: ``*``, ``?``, ``[...]``) matches the file's
    name or the name of a directory on its path (``old`` leaves out everything under
    ``old/``); a pattern with a ``/`` matches as many consecutive parts of the path
    (``old/*.csv``, ``export/notes.json``, ``case/old``) or the whole path."""
    import fnmatch
    import os

    normal = os.path.normpath(path)
    parts = normal.split(os.sep)
    for pattern in patterns:
        pattern = os.path.normpath(pattern)
        if os.sep not in pattern:
            if any(fnmatch.fnmatchcase(part, pattern) for part in parts):
                return True
            continue
        if fnmatch.fnmatchcase(normal, pattern):
            return True
        depth = pattern.strip(os.sep).count(os.sep) + 1
        if any(fnmatch.fnmatchcase(os.sep.join(parts[start:start + depth]), pattern)
               for start in range(len(parts) - depth + 1)):
            return True
    return False


def _with_exclude_hint(error: InputError, path: str) -> InputError:
    """The error of a stray file found in a directory, naming the way out; the CLI says
    ``--exclude NAME`` where the library says ``exclude=[NAME]`` (``exclude_name``)."""
    import glob
    import os

    name = glob.escape(os.path.basename(path))
    hinted = InputError(error.path, f"{error.problem} (pass exclude=[{name!r}] to leave it "
                        "out)", error.where)
    hinted.exclude_name = name  # type: ignore[attr-defined]
    return hinted


class Fingerprints:
    """Size and SHA-256 of each input, computed on a background thread (hashlib releases
    the GIL, so hashing overlaps the reading); :meth:`wait` fills them in.

    An uncompressed JSON lines file, which the C kernel reads end to end, and a table
    dump CSV are fingerprinted by their reader on the way instead (a tap,
    ``_io.FileDigest``), so they are read once; if the reader did not go through the
    whole file, :meth:`wait` hashes it itself."""

    CHUNK = 8 << 20

    def __init__(self, inputs: list[InputFile]):
        import threading

        self._inputs = [i for i in inputs if not i.sha256]
        self._taps = {index: tap for index, source in enumerate(self._inputs)
                      if (tap := _reader_tap(source)) is not None}
        self._results: dict[int, tuple[int, str]] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fingerprint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import hashlib

        try:
            for index, source in enumerate(self._inputs):
                if index in self._taps:
                    continue  # its reader fingerprints it
                shape = shape_named(source.shape)
                if shape is not None and shape.kind == DIRECTORY:  # not a stream of bytes
                    self._results[index] = shape.fingerprint(source.path)
                    if source.states is not None:
                        check_unchanged(source.states)
                    continue
                digest = hashlib.sha256()
                size = 0
                # One reused buffer, read into and hashed without the GIL: large reads
                # ask for the GIL rarely, which busy reader threads make slow to get.
                buffer = bytearray(self.CHUNK)
                view = memoryview(buffer)
                with open_raw(source.path) as handle:
                    while got := handle.readinto(buffer):
                        if self._stop.is_set():
                            return
                        digest.update(view[:got])
                        size += got
                if source.states is not None:  # what was hashed is what is read
                    check_unchanged(source.states, size)
                self._results[index] = (size, digest.hexdigest())
        except BaseException as error:  # re-raised by wait()
            self._error = error

    def wait(self) -> None:
        """Block until every input is hashed; fill in ``bytes`` and ``sha256``, once every
        input is still as it was when found (else the InputError of ``check_unchanged``)."""
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, OSError):
                raise InputError(
                    getattr(self._error, "filename", None) or "input",
                    f"cannot read: {self._error.strerror or self._error}",
                ) from None
            raise self._error
        for index, tap in self._taps.items():
            source = self._inputs[index]
            source.reader_tap = None
            found = tap.result()
            if found is None:  # not read through (an error, or a pass that gave up)
                try:
                    found = file_sha256(source.path)
                except OSError as error:
                    raise InputError(source.path, f"cannot read: {error.strerror or error}"
                                     ) from None
            if source.states is not None:
                check_unchanged(source.states, found[0])
            self._results[index] = found
        for index, source in enumerate(self._inputs):
            if source.states is not None:
                # read (a snapshot's parts by DuckDB or verify's row groups too) and
                # hashed: the fingerprints handed over are of the files as they still are
                check_unchanged(source.states)
            source.bytes, source.sha256 = self._results[index]

    def restart(self) -> None:
        """The inputs are read again from the start: the readers' taps start over."""
        for tap in self._taps.values():
            tap.restart()

    def cancel(self) -> None:
        """Stop hashing (after an error elsewhere); a no-op once finished."""
        self._stop.set()
        for tap in self._taps.values():
            tap.discard()


def _reader_tap(source: InputFile):
    """A FileDigest for a reader that reads its file once, end to end (the shape's
    ``taps``: the C kernel's for an uncompressed JSON lines file, the CSV reader's
    parallel pass for a table dump); else None."""
    import os

    from ._io import FileDigest

    shape = shape_named(source.shape)
    if shape is None or not (is_object_url(source.path) or os.path.isfile(source.path)) \
            or not shape.taps(source.path):
        return None
    tap = FileDigest(source.path)
    source.reader_tap = tap
    return tap


def read_events(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """The events of one input file as record batches of model.EVENT_SCHEMA; a file that
    changes while it is read (or since it was found) is an InputError at the end."""
    return _unchanged(source, _read_events, bad)


def _unchanged(source: InputFile, read, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """``read(source, bad)``, every reader's batches, held to the state its file (or a
    snapshot's files) had when it was found: read to the end, it must be unchanged (its
    readers' streams also check that the file ended where it did when opened). An error
    the reader met in a file that changed meanwhile is that change's error (a Parquet
    row group past the new end is "corrupt" only because it was cut)."""
    states = source.states or file_states(source.path)
    try:
        batches = read(source, bad)
    except ChangedWhileRead:
        raise
    except InputError:
        check_unchanged(states)
        raise
    word = source_line_unit(source.shape)
    return _checked_after((drop_out_of_range(batch, bad, word) for batch in batches), states)


def _checked_after(batches: Iterator[pa.RecordBatch], states: dict
                   ) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except ChangedWhileRead:
        raise
    except InputError:
        check_unchanged(states)
        raise
    check_unchanged(states)


def _read_events(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    shape = shape_named(source.shape)
    if shape is None or shape.holds_alerts or shape.holds_admin:
        raise InputError(source.path, f"holds {source.shape}, not events")
    return shape.read(source, bad)


def read_inputs(inputs: list[InputFile], bad: BadLines,
                read=None) -> Iterator[pa.RecordBatch]:
    """Every input's batches in order (``read``: read_events, or read_alerts), setting
    each input's ``rows`` once it has been read to its end."""
    read = read or read_events
    for source in inputs:
        rows = 0
        for batch in read(source, bad):
            rows += batch.num_rows
            yield batch
        source.rows = rows


def read_alerts(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """The audit_ingest_alerts rows of one input as record batches of model.ALERT_SCHEMA
    (held to the file's state as ``read_events`` is)."""
    return _unchanged(source, _read_alerts, bad)


def _read_alerts(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    shape = shape_named(source.shape)
    if shape is None or not shape.holds_alerts:
        raise InputError(source.path, f"holds {source.shape}, not alerts")
    return shape.read(source, bad)


def read_admin_rows(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    """The admin_audit_events rows of one input as record batches of
    ``admin.model.ADMIN_SCHEMA`` (held to the file's state as ``read_events`` is)."""
    return _unchanged(source, _read_admin, bad)


def _read_admin(source: InputFile, bad: BadLines) -> Iterator[pa.RecordBatch]:
    shape = shape_named(source.shape)
    if shape is None or not shape.holds_admin:
        raise InputError(source.path, f"holds {source.shape}, not admin changes")
    return shape.read(source, bad)


def _shape(path: str, name: str):
    """The registered shape ``detect_shape`` named (it names only registered ones)."""
    shape = shape_named(name)
    if shape is None:  # pragma: no cover - detect_shape returns registered names
        raise InputError(path, f"no registered shape named {name!r}")
    return shape


def _realpath(path: str) -> str:
    import os

    return path if is_object_url(path) else os.path.realpath(path)
