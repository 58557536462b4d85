"""A caracal-forensics snapshot: a directory with ``manifest.json`` and Parquet parts."""

from __future__ import annotations

import os

from ...model import Shape
from .._io import file_sha256
from .._marker import is_snapshot_dir
from .base import DIRECTORY, SourceShape


class Snapshot(SourceShape):
    name = Shape.SNAPSHOT
    kind = DIRECTORY
    written_whole = True

    @classmethod
    def detect(cls, probe):
        return is_snapshot_dir(probe.path)

    @classmethod
    def read(cls, source, bad):
        from .._parquet import open_parquet
        from ..snapshot_dir import event_files

        for path in event_files(source.path):
            yield from open_parquet(path).iter_batches()

    @classmethod
    def check(cls, path):
        from ..snapshot_dir import check_snapshot

        return check_snapshot(path)

    @classmethod
    def fingerprint(cls, path):
        from ..snapshot_dir import MANIFEST, load_manifest

        # The manifest fingerprints every data file of the snapshot, so its hash covers
        # all: scan holds the files to it by size, verify by SHA-256 (check_digests).
        manifest = load_manifest(path)
        _size, digest = file_sha256(os.path.join(path, MANIFEST))
        return int(manifest.get("bytes", 0)), digest
