"""A canonical snapshot's files held to its manifest, beside the verification: a chain
can be intact in files swapped or edited since the snapshot was written.

The standard library only at import (pyarrow comes with the manifest's own records, on
the hashing thread), so that it may start before anything heavy is imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .report import Finding, Kind, Report, ZoneSummary, status_of


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


def admin_manifest_findings(directories: Sequence[str],
                            chains: Sequence[str] | None = None) -> list[Finding]:
    """Where the snapshots' admin parts disagree with their manifests' admin records
    (``snapshot_dir.admin_discrepancies``), as ``manifest_mismatch`` findings of the
    admin chain; ``chains`` narrows them as the verification is narrowed."""
    from ..manifest import MANIFEST
    from ..sources.snapshot_dir import admin_discrepancies

    wanted = list(chains) if chains is not None else None
    return [Finding(Kind.MANIFEST_MISMATCH, chain, None, None,
                    os.path.join(directory, MANIFEST), detail)
            for directory in directories
            for chain, detail in admin_discrepancies(directory, wanted)]


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
