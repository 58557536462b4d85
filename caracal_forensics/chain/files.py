"""Verify export files: straight from the readers when the export is intact.

Loading a table dump or JSON lines into DuckDB only to read it back costs more than the
checks themselves. So ``verify_files`` first streams the readers' batches through the
clean pass (``clean.py``): for an intact export that is the whole job, with reading,
hashing and linking overlapping on both cores. Anything it cannot prove (a finding, rows
out of chain order, ...) and the files are opened as a Snapshot and verified the usual
way, which gives the same report for an intact export and explains every finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .digest import Progress
from .report import InputSummary, Report


@dataclass(frozen=True)
class Verified:
    """A report, and how many malformed lines were skipped (``--on-bad-line skip``)."""

    report: Report
    skipped_lines: int


def verify_files(
    paths: Sequence[str],
    *,
    key: bytes | str | None,
    zones: Sequence[str] | None = None,
    anchor: Report | None = None,
    recover_microseconds: bool = True,
    on_bad_line: str = "error",
    progress: Progress | None = None,
) -> Verified:
    """Verify the exports at ``paths`` (files, directories, globs), as ``verify`` does
    over ``open_sources(paths)``; never prints, never exits."""
    from ..errors import UsageError
    from ..keys import coerce_key
    from ..model import Shape
    from ..sources import BadLines, Fingerprints, read_inputs, scan
    from . import clean, native
    from .clean import clean_pass_over

    if on_bad_line not in ("error", "skip"):
        raise UsageError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    key_bytes = coerce_key(key)
    inputs = scan(list(paths), fingerprint=False)
    if not inputs:
        raise UsageError(f"no export files found in {', '.join(paths)}")
    # alerts files are counted when loaded, so such a set is opened the usual way
    if clean.ENABLED and native.AVAILABLE and not any(i.holds_alerts for i in inputs):
        bad = BadLines(skip=on_bad_line == "skip")
        # the inputs' SHA-256 on another thread while they are read and checked
        hashing = Fingerprints(inputs)
        try:
            # canonical snapshots are read by row group on both cores; the rest streams
            snapshots = all(i.shape == Shape.SNAPSHOT for i in inputs)
            report = clean_pass_over(None if snapshots else read_inputs(inputs, bad),
                                     key_bytes, zones, anchor, inputs, recover_microseconds)
            if report is not None:
                hashing.wait()
                report.inputs = [InputSummary.of(i) for i in inputs]
                return Verified(report, bad.count)
        finally:
            hashing.cancel()
    from ..snapshot import open_sources
    from .verify import verify

    snap = open_sources(list(paths), on_bad_line=on_bad_line)
    report = verify(snap.duckdb, key=key_bytes, zones=zones, anchor=anchor,
                    recover_microseconds=recover_microseconds, inputs=snap.inputs,
                    progress=progress)
    return Verified(report, snap.skipped_lines)

