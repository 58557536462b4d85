"""The canonical snapshot directory that ``ingest`` and ``snapshot`` write.

Layout: ``manifest.json``, ``events/*.parquet`` (EVENT_SCHEMA, sorted by zone_id and
chain_seq, zstd) and ``alerts.parquet``. Read through DuckDB directly, it is the fastest
source: no Python touches its rows.
"""

from __future__ import annotations

import glob
import json
import os

from ..errors import InputError

MANIFEST = "manifest.json"
FORMAT_NAME = "caracal-forensics-snapshot"
FORMAT_VERSION = 1
EVENTS_DIR = "events"
ALERTS_FILE = "alerts.parquet"


def is_snapshot_dir(directory: str) -> bool:
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def load_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(path, f"unreadable snapshot manifest: {error}") from None
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(path, "not a caracal-forensics snapshot manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(
            path,
            f"snapshot format {manifest['format_version']} is newer than this "
            "toolkit reads; upgrade caracal-forensics",
        )
    return manifest


def event_files(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, EVENTS_DIR, "*.parquet")))


def alerts_file(directory: str) -> str | None:
    path = os.path.join(directory, ALERTS_FILE)
    return path if os.path.isfile(path) else None
