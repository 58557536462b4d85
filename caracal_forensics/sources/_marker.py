"""What marks a directory as a snapshot, apart from reading it: ``_io`` walks directories
with it and ``snapshot_dir`` reads them, so it sits below both (no import loop)."""

from __future__ import annotations

import os

from ..manifest import MANIFEST


def is_snapshot_dir(directory: str) -> bool:
    """Whether ``directory`` holds a ``manifest.json`` (of any kind: :func:`load_manifest`
    says whether it is a readable snapshot manifest). Never opens it: it may be a FIFO."""
    return os.path.lexists(os.path.join(directory, MANIFEST))
