"""What marks a directory as a snapshot, and where its files lie, apart from reading them:
``_io`` walks directories and notes input files' states with it and ``snapshot_dir``
reads them, so it sits below both (no import loop)."""

from __future__ import annotations

import glob
import os

from ..manifest import MANIFEST


def is_snapshot_dir(directory: str) -> bool:
    """Whether ``directory`` holds a ``manifest.json`` (of any kind: :func:`load_manifest`
    says whether it is a readable snapshot manifest). Never opens it: it may be a FIFO."""
    return os.path.lexists(os.path.join(directory, MANIFEST))


EVENTS_DIR = "events"
ALERTS_FILE = "alerts.parquet"


def event_files(directory: str) -> list[str]:
    """A snapshot's event parts, in order."""
    return sorted(glob.glob(os.path.join(directory, EVENTS_DIR, "*.parquet")))


def alerts_file(directory: str) -> str | None:
    """A snapshot's alerts file, if it has one."""
    path = os.path.join(directory, ALERTS_FILE)
    return path if os.path.isfile(path) else None
