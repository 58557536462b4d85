"""Private temporary directories that a later run can clean up after a killed one.

DuckDB's spill directory, the spool of an opened export and ``--follow``'s chunk file
live in ``$TMPDIR/caracal-forensics-<pid>-<random>`` (``caracal-follow-...`` for
``--follow``). A process removes its directories when it is done, also on Ctrl-C and
SIGTERM; ``kill -9`` (or the out-of-memory killer, a power cut) gives it no chance, so
every directory holds a lock file that its process keeps locked (``flock``) for as long
as it lives. The kernel drops the lock when the process dies, however it dies: the next
run (:func:`sweep_stale`, called before each new directory is made) takes the lock of
any such directory it can and removes the directory. A process id can be reused, a lock
cannot be inherited by a stranger, so the lock is what decides; the pid in the name only
serves the instant between making a directory and locking it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
import time

#: The lock file inside each directory, held by its process for the directory's life.
LOCK_NAME = ".owner.lock"
#: ``caracal-forensics-<pid>-<mkdtemp's 8 characters>`` and ``caracal-follow-...``.
_NAME = re.compile(r"^caracal-(?:forensics|follow)-(\d+)-[A-Za-z0-9_]{8}$")
#: A directory without its lock yet is left alone this long (it is being made).
_UNLOCKED_GRACE_SECONDS = 60.0

#: directory -> the descriptor holding its lock (closed when the directory is removed)
_held: dict[str, int] = {}
_swept = False


def make(kind: str = "forensics") -> str:
    """A new private directory ``$TMPDIR/caracal-<kind>-<pid>-<random>``, locked by this
    process; stale ones of dead processes are removed first (once per process)."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale()
    directory = tempfile.mkdtemp(prefix=f"caracal-{kind}-{os.getpid()}-")
    # Locked under another name, then renamed: a sweeper that sees LOCK_NAME finds it
    # locked already, never in the instant between creating and locking it.
    pending = os.path.join(directory, LOCK_NAME + ".new")
    fd = os.open(pending, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(pending, os.path.join(directory, LOCK_NAME))
    except BaseException:
        os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _held[directory] = fd
    return directory


def remove(directory: str) -> None:
    """Remove a directory made by :func:`make` and release its lock (twice is harmless)."""
    shutil.rmtree(directory, ignore_errors=True)
    fd = _held.pop(directory, None)
    if fd is not None:
        os.close(fd)


def remove_all() -> None:
    """Remove every directory this process made and still holds: for an exit that runs
    no finalizers (``os._exit``)."""
    for directory in list(_held):
        remove(directory)


def sweep_stale(parent: str | None = None) -> list[str]:
    """Remove the directories of processes that are gone; returns the ones removed.

    A directory is stale when its lock file can be locked (its process died, since a
    live one holds the lock), or, lacking a lock file, when the process named by its pid
    no longer exists and it is older than a minute. Anything else is left alone.
    """
    parent = parent or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or entry.path in _held:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if _stale(entry.path, int(match.group(1))):
                removed.append(entry.path)
        except OSError:
            continue  # another run is removing it, or it is not ours to read
    return removed


def _stale(directory: str, pid: int) -> bool:
    """Remove ``directory`` if its process is gone; whether it was removed."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        if _alive(pid) or time.time() - os.stat(directory).st_mtime < _UNLOCKED_GRACE_SECONDS:
            return False
        shutil.rmtree(directory, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False  # its process is alive
            raise
        shutil.rmtree(directory, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
