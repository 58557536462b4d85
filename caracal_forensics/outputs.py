"""Where the toolkit writes: never into its evidence, and each file whole or not at all.

Every writer (``ingest``'s and ``snapshot``'s directory, ``report``'s HTML, ``verify``'s
JSON report, ``Snapshot.write_lines`` given a path) first asks
:func:`refuse_overwriting_inputs`: an output equal to or inside an input (a snapshot is a
directory: its manifest and parts are inside it), equal to the key file or the anchor, or
a directory output holding an input, is refused before anything is read or written.
Paths are compared resolved, links followed, and by inode where both exist (a hard link,
a bind mount). A single file is written by :func:`atomic_file`: a temporary file beside
it, flushed to disk, then renamed over it, so that a full disk or a kill leaves the
previous file (perhaps someone's anchor) byte for byte as it was.

Errors speak of parameters (``out``, ``key_file``, ``anchor``); the CLI passes its flag
names in ``names``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, NamedTuple

from .errors import InputError, UsageError
from .keys import KEY_FILE_ENV

#: Parameter -> how a message calls it. The CLI passes flags ("--report", "--key-file").
PARAMETER_NAMES: Mapping[str, str] = {"out": "out", "key_file": "key_file", "anchor": "anchor"}

PathLike = str | os.PathLike[str]


class _Protected(NamedTuple):
    real: str  # resolved path
    shown: str  # as the user gave it
    what: str  # "the input", "the key file (--key-file)", ...
    contents: bool  # whatever lies inside it is protected too


def refuse_overwriting_inputs(
    out: PathLike,
    inputs: Iterable[PathLike],
    *,
    key_file: PathLike | None = None,
    anchor: PathLike | None = None,
    directory: bool = False,
    names: Mapping[str, str] | None = None,
) -> None:
    """Raise UsageError when writing ``out`` could change evidence.

    ``inputs``: what is read (files, directories, globs, as ``--source`` takes them; a
    glob stands for the files it matches and the directories holding them, where a
    later run of the same glob would look). ``out`` may not be one of them nor lie inside
    one; nor be ``key_file``, ``$AUDIT_HMAC_KEY_FILE`` or ``anchor``. With
    ``directory`` (an output directory, e.g. ingest's), ``out`` may not hold any of them
    either. ``names`` maps the parameters ``out``, ``key_file``, ``anchor`` to the words
    a message uses for them.
    """
    called = {**PARAMETER_NAMES, **(names or {})}
    if not isinstance(out, (str, os.PathLike)):  # a notebook's slip: not os.fspath's error
        raise UsageError(f"{called['out']} must be a path, not {out!r}")
    shown_out = f"{called['out']} {os.fspath(out)}"
    # (sources.objects.is_object_url, not imported: importing sources loads pyarrow, and
    # ingest picks Arrow's allocator after this check, before pyarrow is loaded)
    if str(os.fspath(out))[:5].lower() == "s3://":  # else a local directory "s3:" is made
        raise UsageError(f"{shown_out}: outputs are written to a local path, not to object "
                         "storage")
    real_out = os.path.realpath(out)
    out_stat = _stat(out)
    protected = _protected(inputs, key_file, anchor, called)
    for item in protected:  # the closest relation first: the same file
        if real_out == item.real or (out_stat is not None and out_stat == _stat(item.real)):
            named = "" if item.shown == os.fspath(out) else f" {item.shown}"
            raise UsageError(f"{shown_out} is {item.what}{named}; {_never(item)}")
    for item in protected:
        if item.contents and _inside(real_out, item.real):
            raise UsageError(f"{shown_out} is inside {item.what} {item.shown}; {_never(item)}")
        if directory and _inside(item.real, real_out):
            raise UsageError(f"{shown_out} holds {item.what} {item.shown}; {_never(item)}")


def _never(item: _Protected) -> str:
    return "inputs are never written" if item.contents else "it is never written"


def _protected(inputs: Iterable[PathLike], key_file: PathLike | None,
               anchor: PathLike | None, called: Mapping[str, str]) -> list[_Protected]:
    found = []
    for given in inputs:
        text = os.fspath(given)
        if not os.path.lexists(text) and glob.has_magic(text):
            for match in glob.glob(text, recursive=True):
                found.append(_Protected(os.path.realpath(match), match, "the input", True))
                parent = os.path.dirname(match) or os.curdir
                found.append(_Protected(os.path.realpath(parent), parent,
                                        "the directory of the input", True))
        else:
            found.append(_Protected(os.path.realpath(text), text, "the input", True))
    keys = [(key_file, called["key_file"])] if key_file is not None else []
    if os.environ.get(KEY_FILE_ENV, "").strip():
        keys.append((os.environ[KEY_FILE_ENV].strip(), f"${KEY_FILE_ENV}"))
    for path, key_name in keys:
        found.append(_Protected(os.path.realpath(path), os.fspath(path),
                                f"the key file ({key_name})", False))
    if anchor is not None:
        found.append(_Protected(os.path.realpath(anchor), os.fspath(anchor),
                                f"the anchor ({called['anchor']})", False))
    return found


def _inside(path: str, directory: str) -> bool:
    """Whether resolved ``path`` lies below resolved ``directory``."""
    return path.startswith(directory.rstrip(os.sep) + os.sep)


def _stat(path: PathLike) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` names, links followed; None when nothing."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def check_output_file(path: PathLike, *, name: str = "out") -> None:
    """Refuse, before any work, a file output that cannot be written: a directory, a
    device, FIFO or socket (the rename would replace it), or in a directory that does
    not exist (``name`` calls the parameter in the message)."""
    shown = f"{name} {os.fspath(path)}"
    if os.path.isdir(path):
        raise UsageError(f"{shown} is a directory; name the file to write")
    if os.path.exists(path) and not os.path.isfile(path):
        # the rename would replace it: /dev/null made a regular file, for every user
        from .manifest import check_regular

        try:
            check_regular(os.fspath(path))
        except InputError as error:
            raise UsageError(f"{shown} is {error.problem}; name the file to write") from None
    directory = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{shown}: directory {directory} does not exist")


def write_atomically(path: PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all (``atomic_file``)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path) as stream:
        stream.write(payload)


@contextmanager
def atomic_file(path: PathLike) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` whole when the block ends, and leaves ``path``
    as it was when it raises.

    A temporary file in the same directory is written, flushed to disk and renamed over
    ``path``; on any failure it is removed. Mode: the replaced file's, else a new file's
    under the umask (mkstemp's file starts private). An OSError (a full disk, a read-only
    directory) becomes a UsageError naming ``path``.
    """
    import tempfile

    check_output_file(path)
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    base = os.path.basename(target)[:100]  # prefix and suffix stay within NAME_MAX
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
        tmp = None
        _sync_directory(directory)
    except OSError as error:
        raise UsageError(f"{os.fspath(path)}: cannot write it: {error.strerror or error}"
                         ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:  # the error being raised is the one to report
                pass


@contextmanager
def text_output(out: PathLike | IO[Any] | None,
                inputs: Iterable[PathLike] = ()) -> Iterator[IO[str]]:
    """``out`` as a text stream to write lines to: stdout for None, a text stream as it
    is (one that is no text file through its ``write`` alone), a binary one (a file
    opened ``"wb"``) as UTF-8 text, a path written whole or not at all (``atomic_file``)
    and refused when it is one of ``inputs`` or inside one."""
    import io
    import sys

    if out is None:
        out = sys.stdout
    if isinstance(out, (str, os.PathLike)):
        refuse_overwriting_inputs(out, inputs)
        with atomic_file(out) as binary, _as_text(binary) as text:
            yield text
        return
    if isinstance(out, (io.RawIOBase, io.BufferedIOBase)):
        with _as_text(out) as text:
            yield text
        return
    if not callable(getattr(out, "write", None)):
        raise UsageError(f"out must be a path or a file opened for writing, not {out!r}")
    # a text file (stdout in a terminal or a pipe) is written fast through its file
    # descriptor; any other stream only through its write: Jupyter's stdout has the
    # descriptor of the server's terminal behind it, where the lines would have gone
    yield out if isinstance(out, io.TextIOWrapper) else _WriteOnly(out)


class _WriteOnly:
    """A stream's ``write`` and ``flush`` alone (no ``fileno``, no ``buffer``)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


@contextmanager
def _as_text(binary: IO[bytes]) -> Iterator[IO[str]]:
    """UTF-8 text over ``binary``, flushed and let go of at the end (closing ``binary``
    stays its owner's)."""
    import io

    text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=True)
    try:
        yield text
    finally:
        text.detach()  # flushes


def _mode_for(target: str) -> int:
    """The permission bits of ``target`` if it exists, else of a new file (0o666 under
    the umask, read from /proc: setting it to read it would race other threads)."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
