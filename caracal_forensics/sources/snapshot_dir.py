"""The canonical snapshot directory that ``ingest`` and ``snapshot`` write.

Layout: ``manifest.json``, ``events/*.parquet`` (EVENT_SCHEMA, sorted by zone_id and
chain_seq, zstd) and ``alerts.parquet``. Read through DuckDB directly, it is the fastest
source: no Python touches its rows.

The manifest lists every data file with its size and SHA-256. Every open checks the
files against it cheaply (:func:`check_snapshot`: sizes and Parquet footers); ``verify``
also checks their SHA-256 (:func:`check_digests`). A snapshot is trusted only as far as
its manifest, so a file added, removed or changed since it was written is an input error.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import re
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ._io import check_regular, file_sha256

MANIFEST = "manifest.json"
FORMAT_NAME = "caracal-forensics-snapshot"
FORMAT_VERSION = 1
EVENTS_DIR = "events"
ALERTS_FILE = "alerts.parquet"

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ListedFile:
    """One data file as the manifest lists it; ``path`` is joined to the directory."""

    path: str
    bytes: int
    sha256: str


def is_snapshot_dir(directory: str) -> bool:
    """Whether ``directory`` holds a ``manifest.json`` (of any kind: :func:`load_manifest`
    says whether it is a readable snapshot manifest). Never opens it: it may be a FIFO."""
    return os.path.lexists(os.path.join(directory, MANIFEST))


def load_manifest(directory: str) -> dict[str, Any]:
    """The snapshot's manifest, with every field this toolkit reads type-checked, so a
    hand-edited manifest is an InputError naming it rather than a TypeError later."""
    path = os.path.join(directory, MANIFEST)
    check_regular(path)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(path, f"unreadable snapshot manifest: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise InputError(path, "not a caracal-forensics snapshot manifest")
    version = _field(path, manifest, "format_version", int, 0)
    if version > FORMAT_VERSION:
        raise InputError(
            path,
            f"snapshot format {version} is newer than this toolkit reads; "
            "upgrade caracal-forensics",
        )
    _field(path, manifest, "bytes", int, 0)
    _field(path, manifest, "duplicate_events", int, None)
    _field(path, manifest, "sort_order", str, None)
    listed_files(directory, manifest)
    return manifest


def _field(path: str, manifest: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """``manifest[name]`` if of ``kind`` (a non-negative int for int), else InputError."""
    if name not in manifest:
        return default
    value = manifest[name]
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, kind)
    if not ok:
        wanted = "a non-negative integer" if kind is int else "a string"
        raise InputError(path, f'"{name}" must be {wanted}, not {json.dumps(value)[:60]}')
    return value


def listed_files(directory: str, manifest: dict[str, Any]) -> list[ListedFile]:
    """The manifest's ``files``: relative, normalised paths inside the directory, each
    with its size and SHA-256; anything else is an InputError naming the manifest."""
    path = os.path.join(directory, MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, list):
        problem = "has no" if files is None else "has a malformed"
        raise InputError(path, f'{problem} "files" list (the data files and their SHA-256)')
    listed: list[ListedFile] = []
    seen: set[str] = set()
    for index, entry in enumerate(files, 1):
        where = f"files entry {index}"
        if not isinstance(entry, dict):
            raise InputError(path, "not an object with path, bytes and sha256", where)
        name, size, digest = entry.get("path"), entry.get("bytes"), entry.get("sha256")
        if not _inside(name):
            raise InputError(path, f"path {json.dumps(name)[:80]} is not a relative, "
                             "normalised path inside the snapshot", where)
        if name in seen:
            raise InputError(path, f"{name} is listed twice", where)
        seen.add(name)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(path, f'"bytes" of {name} must be a non-negative integer', where)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise InputError(path, f'"sha256" of {name} must be 64 lowercase hex digits',
                             where)
        listed.append(ListedFile(os.path.join(directory, *name.split("/")), size, digest))
    return listed


def _inside(name: Any) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", MANIFEST)
        and "\x00" not in name
        and "\\" not in name
        and not posixpath.isabs(name)
        and posixpath.normpath(name) == name
        and ".." not in name.split("/")
    )


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
        if not os.path.lexists(item.path):
            raise InputError(item.path, f"listed in {manifest_path} but missing")
        check_regular(item.path)
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


def check_digests(directory: str, stop: threading.Event | None = None) -> None:
    """Hash every file the manifest lists and compare (``verify``'s deep check; run on a
    thread beside the verification, as hashlib releases the GIL). ``stop`` ends it early.
    InputError naming the first file whose SHA-256 differs."""
    manifest_path = os.path.join(directory, MANIFEST)
    for item in listed_files(directory, load_manifest(directory)):
        if stop is not None and stop.is_set():
            return
        try:
            check_regular(item.path)
            _size, digest = file_sha256(item.path)
        except OSError as error:
            raise InputError(item.path, f"cannot read: {error.strerror or error}") from None
        if digest != item.sha256:
            raise InputError(item.path, f"SHA-256 differs from {manifest_path} (changed "
                             "since the snapshot was written)")


def event_files(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, EVENTS_DIR, "*.parquet")))


def alerts_file(directory: str) -> str | None:
    path = os.path.join(directory, ALERTS_FILE)
    return path if os.path.isfile(path) else None
