"""Verify export files: straight from the readers when the export is intact.

Loading a table dump or JSON lines into DuckDB only to read it back costs more than the
checks themselves. So ``verify_files`` first streams the readers' batches through the
clean pass (``clean.py``): for an intact export that is the whole job, with reading,
hashing and linking overlapping on both cores. Anything it cannot prove (a finding, rows
out of chain order, ...) and the files are opened as a Snapshot and verified the usual
way, which gives the same report for an intact export and explains every finding.

Either way a canonical snapshot's files are hashed against its manifest meanwhile: a
chain can be intact in files swapped or edited since the snapshot was written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .report import Finding, InputSummary, Kind, Report, ZoneSummary, status_of

if TYPE_CHECKING:  # not imported to run: they import pyarrow (see SnapshotDigests)
    from ..sources import InputFile
    from .digest import Progress


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
    anchor: Report | str | os.PathLike[str] | None = None,
    recover_microseconds: bool = True,
    on_bad_line: str = "error",
    progress: Progress | None = None,
    exclude: Sequence[str] = (),
) -> Verified:
    """Verify the exports at ``paths`` (files, directories, globs), as ``verify`` does
    over ``open_sources(paths)``; never prints, never exits. ``anchor`` is a Report or
    the path of anything ``chain.anchor.load_anchor`` reads (a report, a manifest, heads).
    """

    from ..errors import UsageError
    from ..keys import coerce_key
    from ..manifest import MANIFEST

    if on_bad_line not in ("error", "skip"):
        raise UsageError(f"on_bad_line must be 'error' or 'skip', not {on_bad_line!r}")
    key_bytes = coerce_key(key)
    if anchor is not None and not isinstance(anchor, Report):
        from .anchor import load_anchor

        anchor = load_anchor(anchor)
    # Snapshots' files against their manifests' SHA-256, beside the verification; those
    # named directly from now on, while the rest is imported.
    named = [p for p in paths if os.path.isdir(p) and os.path.lexists(os.path.join(p, MANIFEST))]
    with SnapshotDigests(named, zones) as outer:
        from ..model import Shape
        from ..sources import scan

        inputs = scan(list(paths), fingerprint=False, exclude=exclude)
        if not inputs:
            raise UsageError(f"no export files found in {', '.join(paths)}")
        started = {os.path.realpath(p) for p in named}
        found = [i.path for i in inputs if i.shape == Shape.SNAPSHOT
                 and os.path.realpath(i.path) not in started]  # inside a directory given
        with SnapshotDigests(found, zones) as inner:
            verified = _verify(paths, inputs, key_bytes, zones, anchor, recover_microseconds,
                               on_bad_line, progress, exclude)
        inner.amend(verified.report)
    outer.amend(verified.report)
    return verified


def _verify(paths: Sequence[str], inputs: list[InputFile], key_bytes: bytes | None,
            zones: Sequence[str] | None, anchor: Report | None, recover_microseconds: bool,
            on_bad_line: str, progress: Progress | None,
            exclude: Sequence[str] = ()) -> Verified:
    from ..model import Shape
    from ..sources import BadLines, Fingerprints, read_inputs
    from . import clean, native
    from .clean import clean_pass_over

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

    snap = open_sources(list(paths), on_bad_line=on_bad_line, exclude=exclude)
    report = verify(snap.duckdb, key=key_bytes, zones=zones, anchor=anchor,
                    recover_microseconds=recover_microseconds, inputs=snap.inputs,
                    progress=progress)
    return Verified(report, snap.skipped_lines)


class SnapshotDigests:
    """Snapshot directories hashed against their manifests on a background thread
    (hashlib releases the GIL, so it overlaps the verification; the standard library
    only, so it may start before pyarrow is imported), as a context around the work:
    leaving it waits and raises the InputError of a file changed since the snapshot was
    written. That error also replaces one the work raised (a corrupt part DuckDB cannot
    decompress, say), which it explains better.

    Then, on the same thread, each snapshot's event files are held to the manifest's own
    records (events, zone heads, events held in two parts): a manifest whose sizes and hashes
    were recomputed after a part was copied or deleted still disagrees with its data.
    :meth:`amend` adds what disagrees to the report, as ``manifest_mismatch`` findings.
    ``zones`` narrows those checks as the verification is narrowed."""

    def __init__(self, directories: Sequence[str], zones: Sequence[str] | None = None):
        import threading

        self._directories = list(directories)
        self._zones = list(zones) if zones is not None else None
        self._error: BaseException | None = None
        self._findings: list[Finding] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-sha256",
                                        daemon=True)
        if self._directories:
            self._thread.start()

    def __enter__(self) -> SnapshotDigests:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        from ..errors import ForensicsError

        if kind is None or (issubclass(kind, Exception)
                            and not issubclass(kind, ForensicsError)):
            self.check()
        else:  # interrupted, or an error that already names its cause: stop hashing
            self._stop.set()

    def _run(self) -> None:
        from ..manifest import MANIFEST, check_digests

        try:
            for directory in self._directories:
                check_digests(directory, self._stop)
            if self._stop.is_set() or not self._directories:
                return
            from ..sources.snapshot_dir import manifest_discrepancies  # imports pyarrow

            for directory in self._directories:
                if self._stop.is_set():
                    return
                source = os.path.join(directory, MANIFEST)
                self._findings += [
                    Finding(Kind.MANIFEST_MISMATCH, zone, None, None, source, detail)
                    for zone, detail in manifest_discrepancies(directory, self._zones)
                ]
        except BaseException as error:  # re-raised by check()
            self._error = error

    def check(self) -> None:
        """Wait for the hashing; raise what it found."""
        if self._directories:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def amend(self, report: Report) -> Report:
        """``report`` with the snapshots' manifest findings (waits for them)."""
        self.check()
        if self._directories:
            report.checks["manifest"] = (
                f"events, zone heads and parts of {len(self._directories)} "
                "snapshot manifest(s) against their event files")
        return add_findings(report, self._findings)


def add_findings(report: Report, extra: Sequence[Finding]) -> Report:
    """``report`` with ``extra`` findings: statuses of the report and its zones again."""
    from collections import defaultdict
    from dataclasses import replace

    if not extra:
        return report
    findings = sorted([*report.findings, *extra], key=Finding.sort_key)
    by_zone: dict[str | None, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_zone[finding.zone_id].append(finding)
    zones = [replace(z, status=status_of(by_zone.get(z.zone_id, []))) for z in report.zones]
    known = {z.zone_id for z in zones}
    zones += [ZoneSummary(zone, 0, None, None, None, status_of(by_zone[zone]))
              for zone in sorted(z for z in by_zone if z is not None and z not in known)]
    report.findings = findings
    report.zones = zones
    report.status = status_of(findings)
    return report
