"""A snapshot's ``manifest.json``: read and type-checked, its list of data files, and
those files hashed against it. Standard library only, unlike the rest of ``sources``:
``verify`` starts hashing a snapshot on a thread of its own before it imports pyarrow and
DuckDB (a tenth of a second or more on one core while the other is idle), so checking
every file's SHA-256 costs a 1M-event verify next to nothing."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import threading
from dataclasses import dataclass
from typing import Any

from .errors import InputError

MANIFEST = "manifest.json"
FORMAT_NAME = "caracal-forensics-snapshot"
FORMAT_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ListedFile:
    """One data file as the manifest lists it; ``path`` is joined to the directory."""

    path: str
    bytes: int
    sha256: str


def check_regular(path: str) -> None:
    """InputError unless ``path`` is a regular file (or a link to one), checked without
    opening it: opening a FIFO blocks until a writer comes, a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(path, "a symbolic link to nothing") from None
        raise InputError(path, "no such file or directory") from None
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise InputError(path, f"not a regular file (a {_kind(mode)})")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def file_sha256(path: str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of the file as stored (compressed bytes, as handed over)."""
    digest = hashlib.sha256()
    size = 0
    # one reused 8 MiB buffer, hashed without the GIL: few GIL requests, which a busy
    # main thread (importing, say) is slow to grant
    buffer = bytearray(8 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while got := handle.readinto(buffer):
            digest.update(view[:got])
            size += got
    return size, digest.hexdigest()


def load_manifest(directory: str) -> dict[str, Any]:
    """The snapshot's manifest, with every field this toolkit reads type-checked, so a
    hand-edited manifest is an InputError naming it rather than a TypeError later
    (``files`` by :func:`listed_files`, where the files are used)."""
    path = os.path.join(directory, MANIFEST)
    check_regular(path)
    check_inside(path, directory)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(path, f"unreadable snapshot manifest: {error}") from None
    except RecursionError:  # JSON nested thousands deep
        raise InputError(path, "unreadable snapshot manifest: nested too deeply") from None
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
    _field(path, manifest, "events", int, None)
    _field(path, manifest, "duplicate_events", int, None)
    _field(path, manifest, "sort_order", str, None)
    _field(path, manifest, "admin_events", int, None)
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


def check_listed(item: ListedFile, manifest_path: str) -> None:
    """InputError unless the listed file is there, as a regular file inside the snapshot."""
    if not os.path.lexists(item.path):
        raise InputError(item.path, f"listed in {manifest_path} but missing")
    check_regular(item.path)
    check_inside(item.path, os.path.dirname(manifest_path))


def check_inside(path: str, directory: str) -> None:
    """InputError if ``path`` resolves outside ``directory`` (a symbolic link, of the file
    or of a directory on its way, to elsewhere): a snapshot is what its directory holds,
    and a link could swap in any file on the machine, or follow one that changes."""
    root = os.path.realpath(directory)
    real = os.path.realpath(path)
    if not real.startswith(root.rstrip(os.sep) + os.sep):
        raise InputError(path, f"a symbolic link to {real}, outside the snapshot {directory}; "
                         "a snapshot's files must be inside its directory")


#: The fields of a manifest's ``zones`` entry this toolkit reads, and their types.
ZONE_FIELDS = {"events": int, "first_seq": int, "last_seq": int, "last_content_sha256": str}


def manifest_zones(directory: str, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The manifest's ``zones`` (per zone: events, first_seq, last_seq,
    last_content_sha256, each may be null), type-checked: InputError naming the manifest."""
    path = os.path.join(directory, MANIFEST)
    zones = manifest.get("zones", {})
    if not isinstance(zones, dict):
        raise InputError(path, '"zones" must be an object of zone heads')
    for zone, head in zones.items():
        if not isinstance(head, dict):
            raise InputError(path, f"zones entry {json.dumps(zone)[:60]} is not an object")
        for name, kind in ZONE_FIELDS.items():
            value = head.get(name)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise InputError(path, f'"{name}" of zone {json.dumps(zone)[:60]} must be '
                                 f"{'an integer' if kind is int else 'a string'} or null")
    return zones


#: The fields of a manifest's ``admin_chains`` entry (per admin chain: its zone, or the
#: global chain's name), and their types.
ADMIN_CHAIN_FIELDS = {**ZONE_FIELDS, "last_chain_hmac": str}


def manifest_admin_chains(directory: str, manifest: dict[str, Any]
                          ) -> dict[str, dict[str, Any]]:
    """The manifest's ``admin_chains`` (per admin chain: events, first_seq, last_seq,
    last_content_sha256, last_chain_hmac, each may be null; {} for a snapshot without
    admin rows or written before they were kept), type-checked: InputError naming the
    manifest."""
    path = os.path.join(directory, MANIFEST)
    chains = manifest.get("admin_chains", {})
    if not isinstance(chains, dict):
        raise InputError(path, '"admin_chains" must be an object of admin chain heads')
    for chain, head in chains.items():
        if not isinstance(head, dict):
            raise InputError(path, f"admin_chains entry {json.dumps(chain)[:60]} is not an "
                             "object")
        for name, kind in ADMIN_CHAIN_FIELDS.items():
            value = head.get(name)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise InputError(path, f'"{name}" of admin chain {json.dumps(chain)[:60]} '
                                 f"must be {'an integer' if kind is int else 'a string'} "
                                 "or null")
    return chains


def check_digests(directory: str, stop: threading.Event | None = None) -> None:
    """Hash every file the manifest lists and compare (``verify``'s deep check; run on a
    thread beside the verification, as hashlib releases the GIL). ``stop`` ends it early.
    InputError naming the first file whose SHA-256 differs."""
    manifest_path = os.path.join(directory, MANIFEST)
    for item in listed_files(directory, load_manifest(directory)):
        if stop is not None and stop.is_set():
            return
        check_listed(item, manifest_path)
        try:
            _size, digest = file_sha256(item.path)
        except OSError as error:
            raise InputError(item.path, f"cannot read: {error.strerror or error}") from None
        if digest != item.sha256:
            raise InputError(item.path, f"SHA-256 differs from {manifest_path} (changed "
                             "since the snapshot was written)")
