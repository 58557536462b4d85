"""``Verifier``: the one typed way to verify, over export paths or an opened snapshot.

Both entries return the same ``Report`` for the same events. ``verify_paths`` first
streams the readers' batches through the clean pass (``clean.py``): loading a table dump
or JSON lines into DuckDB only to read it back costs more than the checks themselves, so
for an intact export that is the whole job, reading, hashing and linking overlapping on
both cores. Anything the pass cannot prove (a finding, rows out of chain order, ...) and
the files are opened as a Snapshot and verified by ``verify`` (the exhaustive pipeline),
which explains every finding.

Either way a canonical snapshot's files are hashed against its manifest meanwhile
(``manifests.SnapshotDigests``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .report import MAX_FINDINGS_PER_KIND, InputSummary, Report

if TYPE_CHECKING:  # not imported to run: the paths entry starts before pyarrow is loaded
    from ..sources import InputFile
    from .digest import Progress

@dataclass(frozen=True)
class Verifier:
    """What a verification needs besides the events, checked once when made.

    ``key``: the HMAC key, bytes or its hex text (read it with ``keys.load_key``); None
    checks content and links only and the report says partial. It is never shown (not
    in ``repr``). ``anchor``: an earlier Report, or the path of anything
    ``chain.anchor.load_anchor`` reads (a report, a snapshot's manifest, zone heads as
    CSV or JSON lines), whose zone heads must still be there. ``zones``: verify these
    zones only. ``recover_microseconds``: find the microseconds of millisecond rows
    (OCSF) from their content hash; False reports their content unproven instead.
    ``on_bad_line`` ("error" or "skip") and ``exclude`` (glob patterns of files to leave
    out) apply to ``verify_paths``. ``max_findings``: listed per zone and kind.
    ``engine``: "local", or "spark" to run ``verify_paths`` on Spark over hourly OCSF
    Parquet and canonical snapshots (``caracal_forensics.spark``; the same report).
    """

    key: bytes | str | None = field(default=None, repr=False)
    anchor: Report | str | os.PathLike[str] | None = field(default=None, repr=False)
    zones: Sequence[str] | None = None
    recover_microseconds: bool = True
    on_bad_line: str = "error"
    exclude: Sequence[str] = ()
    max_findings: int = MAX_FINDINGS_PER_KIND
    engine: str = "local"

    def __post_init__(self) -> None:
        from ..errors import check_on_bad_line
        from ..keys import coerce_key
        from ..spark import check_engine

        check_on_bad_line(self.on_bad_line)
        check_engine(self.engine)
        set_ = object.__setattr__  # frozen: the normalised values, once
        set_(self, "key", coerce_key(self.key))
        if self.anchor is not None and not isinstance(self.anchor, Report):
            from .anchor import load_anchor

            set_(self, "anchor", load_anchor(self.anchor))
        if self.zones is not None:
            set_(self, "zones", (self.zones,) if isinstance(self.zones, str)
                 else tuple(self.zones))
        set_(self, "exclude", (self.exclude,) if isinstance(self.exclude, str)
             else tuple(self.exclude))

    @property
    def key_bytes(self) -> bytes | None:
        """The key, decoded (``key`` holds it so after construction)."""
        return self.key  # type: ignore[return-value]

    @property
    def anchor_report(self) -> Report | None:
        """The anchor, read (``anchor`` holds it so after construction)."""
        return self.anchor  # type: ignore[return-value]

    def _zone_list(self) -> list[str] | None:
        return list(self.zones) if self.zones is not None else None

    # --- over an opened snapshot ------------------------------------------------------

    def verify_snapshot(self, snap: Any, *, progress: Progress | None = None) -> Report:
        """Verify the events of an opened Snapshot (``caracal_forensics.open``); never
        prints, never exits."""
        from ..model import Shape
        from .manifests import SnapshotDigests
        from .verify import verify

        snapshots = [i.path for i in snap.inputs if i.shape == Shape.SNAPSHOT]
        # a snapshot's files against its manifest: hashes, then its counts and heads
        with SnapshotDigests(snapshots, self._zone_list()) as digests:
            report = verify(snap.duckdb, key=self.key_bytes, zones=self._zone_list(),
                            anchor=self.anchor_report,
                            recover_microseconds=self.recover_microseconds,
                            inputs=snap.inputs, progress=progress,
                            max_findings=self.max_findings)
        report = digests.amend(report)
        report.skipped_lines = snap.skipped_lines
        return report

    # --- over paths -------------------------------------------------------------------

    def verify_paths(self, paths: Sequence[str | os.PathLike[str]], *,
                     progress: Progress | None = None) -> Report:
        """Verify the exports at ``paths`` (files, directories, globs) as
        ``verify_snapshot(caracal_forensics.open(*paths))`` would, often without loading
        them; never prints, never exits. ``report.skipped_lines`` counts the malformed
        lines left out (``on_bad_line="skip"``)."""
        from ..errors import UsageError
        from ..manifest import MANIFEST
        from ..model import Shape
        from ..sources import scan
        from .manifests import SnapshotDigests

        if self.engine == "spark":
            from ..spark import require

            require()
            from ..spark.verify import verify_paths

            return verify_paths(self, paths)
        paths = [os.fspath(p) for p in paths]
        zones = self._zone_list()
        # Snapshots' files against their manifests' SHA-256, beside the verification; those
        # named directly from now on, while the rest is imported.
        named = [p for p in paths if os.path.isdir(p)
                 and os.path.lexists(os.path.join(p, MANIFEST))]
        with SnapshotDigests(named, zones) as outer:
            inputs = scan(list(paths), fingerprint=False, exclude=self.exclude)
            if not inputs:
                raise UsageError(f"no export files found in {', '.join(paths)}")
            started = {os.path.realpath(p) for p in named}
            found = [i.path for i in inputs if i.shape == Shape.SNAPSHOT
                     and os.path.realpath(i.path) not in started]  # inside a directory given
            with SnapshotDigests(found, zones) as inner:
                report = self._verify_inputs(paths, inputs, progress)
            inner.amend(report)
        outer.amend(report)
        return report

    def _verify_inputs(self, paths: list[str], inputs: list[InputFile],
                       progress: Progress | None) -> Report:
        from ..model import Shape
        from ..sources import BadLines, Fingerprints, read_inputs
        from . import clean, native

        # alerts files are counted when loaded, so such a set is opened the usual way
        # wire files are held to the ledger by the exhaustive checks (FORMAT.md 7)
        if (clean.ENABLED and native.AVAILABLE and not any(i.holds_alerts for i in inputs)
                and not any(i.shape in Shape.WIRE_SHAPES for i in inputs)):
            bad = BadLines(skip=self.on_bad_line == "skip")
            # the inputs' SHA-256 on another thread while they are read and checked
            hashing = Fingerprints(inputs)
            try:
                # canonical snapshots are read by row group on both cores; the rest streams
                snapshots = all(i.shape == Shape.SNAPSHOT for i in inputs)
                report = clean.clean_pass_over(
                    None if snapshots else read_inputs(inputs, bad), self.key_bytes,
                    self._zone_list(), self.anchor_report, inputs,
                    self.recover_microseconds)
                if report is not None:
                    hashing.wait()
                    report.inputs = [InputSummary.of(i) for i in inputs]
                    report.skipped_lines = bad.count
                    return report
            finally:
                hashing.cancel()
        from ..loading import load_sources
        from .verify import verify

        # loaded below the Snapshot facade, which itself verifies through a Verifier
        loaded = load_sources(list(paths), self.on_bad_line, exclude=self.exclude)
        report = verify(loaded.con, key=self.key_bytes, zones=self._zone_list(),
                        anchor=self.anchor_report,
                        recover_microseconds=self.recover_microseconds, inputs=loaded.inputs,
                        progress=progress, max_findings=self.max_findings)
        report.skipped_lines = loaded.bad.count
        return report
