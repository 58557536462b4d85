"""The canonical snapshot directory that ``ingest`` and ``snapshot`` write.

Layout: ``manifest.json``, ``events/*.parquet`` (EVENT_SCHEMA, sorted by zone_id and
chain_seq, zstd) and ``alerts.parquet``. Read through DuckDB directly, it is the fastest
source: no Python touches its rows.

The manifest lists every data file with its size and SHA-256. Every open checks the
files against it cheaply (:func:`check_snapshot`: sizes and Parquet footers); ``verify``
also checks their SHA-256 (``manifest.check_digests``). A snapshot is trusted only as far as
its manifest, so a file added, removed or changed since it was written is an input error.
"""

from __future__ import annotations

import glob
import os

from ..errors import InputError
from ..manifest import (  # noqa: F401 - the manifest's side lives there, re-exported
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    check_listed,
    listed_files,
    load_manifest,
)

EVENTS_DIR = "events"
ALERTS_FILE = "alerts.parquet"


def is_snapshot_dir(directory: str) -> bool:
    """Whether ``directory`` holds a ``manifest.json`` (of any kind: :func:`load_manifest`
    says whether it is a readable snapshot manifest). Never opens it: it may be a FIFO."""
    return os.path.lexists(os.path.join(directory, MANIFEST))


def check_snapshot(directory: str) -> int:
    """Check the snapshot against its manifest without hashing (stat calls and Parquet
    footers, so opening a large snapshot stays fast); returns the events it holds.

    Every listed file must be a regular file of the listed size, every data file present
    must be listed, and every event part must have the event model's columns and types
    (a part with chain_seq as text would otherwise be read silently)."""
    manifest_path = os.path.join(directory, MANIFEST)
    listed = listed_files(directory, load_manifest(directory))
    known = {item.path for item in listed}
    present = event_files(directory)
    if os.path.lexists(os.path.join(directory, ALERTS_FILE)):
        present.append(os.path.join(directory, ALERTS_FILE))
    for path in present:
        if path not in known:
            raise InputError(path, f"not listed in {manifest_path} (added since the "
                             "snapshot was written)")
    for item in listed:
        check_listed(item, manifest_path)
        size = os.stat(item.path).st_size
        if size != item.bytes:
            raise InputError(item.path, f"{size} bytes, but {manifest_path} lists "
                             f"{item.bytes} (changed since the snapshot was written)")
    return sum(_event_part_rows(path) for path in event_files(directory))


def _event_part_rows(path: str) -> int:
    """The rows of one event part, from its footer, once its schema is the model's."""
    from ..model import EVENT_SCHEMA
    from ._parquet import open_parquet

    parquet = open_parquet(path)
    schema = parquet.schema_arrow
    if schema.names != EVENT_SCHEMA.names:
        missing = [n for n in EVENT_SCHEMA.names if n not in schema.names]
        extra = [n for n in schema.names if n not in EVENT_SCHEMA.names]
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
        ) if part) or "in another order"
        raise InputError(path, f"not a snapshot event file: its columns differ from the "
                         f"event model ({detail})")
    for field, expected in zip(schema, EVENT_SCHEMA, strict=True):
        if field.type != expected.type:
            raise InputError(path, f"not a snapshot event file: column {field.name} is "
                             f"{field.type}, not {expected.type}")
    return parquet.metadata.num_rows


def event_files(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, EVENTS_DIR, "*.parquet")))


def alerts_file(directory: str) -> str | None:
    path = os.path.join(directory, ALERTS_FILE)
    return path if os.path.isfile(path) else None
