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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .report import MAX_FINDINGS_PER_KIND, InputSummary, Report

if TYPE_CHECKING:  # not imported to run: the paths entry starts before pyarrow is loaded
    import pyarrow as pa

    from ..sources import InputFile
    from .digest import Progress


def _snapshot_admin_rows(directories: Iterable[str]) -> pa.Table | None:
    """The admin parts of the canonical snapshots ``directories`` as one table; None when
    none has admin rows."""
    from ..admin.snapshot import admin_rows

    tables = [t for t in (admin_rows(d) for d in directories) if t.num_rows]
    if not tables:
        return None
    import pyarrow as pa

    return pa.concat_tables(tables)


def _forget_zones(report: Report, elsewhere: set[str]) -> None:
    """Drop the "no rows of this zone" findings of zones the other chain holds."""
    from .report import status_of
    from .wording import NO_EVENTS_DETAIL

    report.findings = [f for f in report.findings
                       if not (f.detail == NO_EVENTS_DETAIL and f.zone_id in elsewhere)]
    report.zones = [z for z in report.zones if z.events or z.zone_id not in elsewhere]
    report.status = status_of(report.findings)


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
    through: str | datetime | None = None
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
        if self.through is not None:
            from .hours import parse_hour

            set_(self, "through", parse_hour(self.through))

    @property
    def key_bytes(self) -> bytes | None:
        """The key, decoded (``key`` holds it so after construction)."""
        return self.key  # type: ignore[return-value]

    @property
    def anchor_report(self) -> Report | None:
        """The anchor, read (``anchor`` holds it so after construction)."""
        return self.anchor  # type: ignore[return-value]

    @property
    def event_anchor(self) -> Report | None:
        """The anchor's event heads: none when it is an admin chain's report alone."""
        anchor = self.anchor_report
        return anchor if anchor is None or anchor.chain == "events" else None

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
                            anchor=self.event_anchor,
                            recover_microseconds=self.recover_microseconds,
                            inputs=snap.inputs, progress=progress,
                            max_findings=self.max_findings)
        report = digests.amend(report)
        report.skipped_lines = snap.skipped_lines
        # the admin chain of the same sources: exports read beside the events and the
        # admin part of a canonical snapshot alike sit in the view admin_events
        from ..admin.snapshot import admin_rows

        report = self._hours(report)
        rows = admin_rows(snap)
        admin = self._verify_admin_table(rows, snap.inputs) if rows.num_rows else None
        return self.with_admin(report, self._admin_manifests(admin, snapshots, snap.inputs))

    def _hours(self, report: Report) -> Report:
        """``report`` with the hours missing from its hourly files (``chain/hours.py``)."""
        from .hours import amend

        return amend(report, self.through)  # type: ignore[arg-type] - parsed when made

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

            report = self._hours(verify_paths(self, paths))
            # the admin chain is small: a snapshot's admin part is verified here, locally
            directories = [os.fspath(p) for p in paths if os.path.isdir(p)
                           and os.path.lexists(os.path.join(p, MANIFEST))]
            held = _snapshot_admin_rows(directories)
            admin = self.verify_admin_inputs([], held) if held is not None else None
            return self.with_admin(report, self._admin_manifests(admin, directories, []))
        paths = [os.fspath(p) for p in paths]
        zones = self._zone_list()
        # Snapshots' files against their manifests' SHA-256, beside the verification; those
        # named directly from now on, while the rest is imported.
        named = [p for p in paths if os.path.isdir(p)
                 and os.path.lexists(os.path.join(p, MANIFEST))]
        with SnapshotDigests(named, zones) as outer:
            # both chains: the admin changes (FORMAT.md 8) may sit beside the events
            found_all = scan(list(paths), fingerprint=False, exclude=self.exclude, admin=True)
            if not found_all:
                raise UsageError(f"no export files found in {', '.join(paths)}")
            admin = [i for i in found_all if i.holds_admin]
            inputs = [i for i in found_all if not i.holds_admin]
            # a canonical snapshot keeps the admin chain as its own part (ingest)
            directories = [i.path for i in inputs if i.shape == Shape.SNAPSHOT]
            held = _snapshot_admin_rows(directories)
            report = None
            if inputs:
                started = {os.path.realpath(p) for p in named}
                found = [i.path for i in inputs if i.shape == Shape.SNAPSHOT
                         and os.path.realpath(i.path) not in started]  # inside a directory
                # the event readers are given the event inputs only when admin files are
                # among the paths (one named explicitly is not an event export)
                event_paths = [i.path for i in inputs] if admin else paths
                with SnapshotDigests(found, zones) as inner:
                    report = self._verify_inputs(event_paths, inputs, progress)
                inner.amend(report)
        if report is not None:
            outer.amend(report)
            report = self._hours(report)
        admin_report = (self.verify_admin_inputs(admin, held) if admin or held is not None
                        else None)
        return self.with_admin(report, self._admin_manifests(admin_report, directories,
                                                             found_all))

    # --- the admin chain (FORMAT.md 8) ----------------------------------------------

    def verify_admin_inputs(self, inputs: list[InputFile],
                            held: pa.Table | None = None) -> Report:
        """Verify the admin change exports among the inputs (``sources.scan(...,
        admin=True)``), with the same key, anchor (its admin section) and zones; ``held``:
        admin rows already read (a snapshot's admin part), verified with them."""
        from ..admin import read_admin_inputs
        from ..sources import BadLines, Fingerprints

        bad = BadLines(skip=self.on_bad_line == "skip")
        hashing = Fingerprints(inputs)
        try:
            table = read_admin_inputs(inputs, bad) if inputs else None
            hashing.wait()
        finally:
            hashing.cancel()
        if held is not None:
            import pyarrow as pa

            table = held if table is None else pa.concat_tables(
                [table.select(held.schema.names).cast(held.schema), held])
        assert table is not None
        report = self._verify_admin_table(table, inputs)
        report.skipped_lines = bad.count
        return report

    def _admin_manifests(self, admin: Report | None, directories: Sequence[str],
                         inputs: Sequence[InputFile]) -> Report | None:
        """``admin`` (the admin chain's report; None: no admin row was read) with where
        the snapshots ``directories``' admin parts disagree with their manifests: a part
        deleted, or rows added or removed, under a manifest whose hashes were recomputed."""
        from .manifests import add_findings, admin_manifest_findings

        findings = admin_manifest_findings(directories, self._zone_list())
        if admin is None and findings:
            from ..admin.model import ADMIN_SCHEMA

            admin = self._verify_admin_table(ADMIN_SCHEMA.empty_table(), inputs)
        if admin is None or not directories:
            return admin
        admin.checks["manifest"] = (f"admin changes and chain heads of {len(directories)} "
                                    "snapshot manifest(s) against their admin parts")
        return add_findings(admin, findings)

    def _verify_admin_table(self, table: pa.Table, inputs: Sequence[InputFile]) -> Report:
        from ..admin.verify import verify_admin_table

        return verify_admin_table(table, key=self.key_bytes, zones=self._zone_list(),
                                  anchor=self.anchor_report, inputs=inputs,
                                  max_findings=self.max_findings)

    def verify_admin_paths(self, paths: Sequence[str | os.PathLike[str]]) -> Report | None:
        """The admin chain's report over the admin exports at ``paths``; None if none."""
        from ..admin import admin_inputs

        inputs = admin_inputs([os.fspath(p) for p in paths], exclude=self.exclude,
                              fingerprint=False)
        return self.verify_admin_inputs(inputs) if inputs else None

    def with_admin(self, events: Report | None, admin: Report | None) -> Report:
        """One report of both chains: the events' with the admin chain's as its second
        section. With ``zones``, a zone only one chain has is not "missing" in the other,
        and a section left with nothing (no row, no finding) is dropped."""
        if admin is None or events is None:
            report = events if events is not None else admin
            assert report is not None
            return report
        if self.zones is not None:
            _forget_zones(events, {z.zone_id for z in admin.zones if z.events})
            _forget_zones(admin, {z.zone_id for z in events.zones if z.events})
            if not events.events_checked and not events.findings:
                admin.skipped_lines += events.skipped_lines
                return admin
            if not admin.events_checked and not admin.findings:
                return events
        events.admin = admin
        events.skipped_lines += admin.skipped_lines
        return events

    def _verify_inputs(self, paths: list[str], inputs: list[InputFile],
                       progress: Progress | None) -> Report:
        from ..model import Shape
        from ..sources import BadLines, Fingerprints, read_inputs
        from . import clean, native

        outcome = None  # the clean pass's, over the inputs as read
        # alerts files are counted when loaded, so such a set is opened the usual way
        # wire files are held to the ledger by the exhaustive checks (FORMAT.md 7)
        if (clean.ENABLED and native.AVAILABLE and not any(i.holds_alerts for i in inputs)
                and not any(i.shape in Shape.WIRE_SHAPES for i in inputs)):
            bad = BadLines(skip=self.on_bad_line == "skip")
            # the inputs' SHA-256 on another thread while they are read and checked
            hashing = Fingerprints(inputs)
            readings = 0

            def read() -> Iterator[pa.RecordBatch]:
                """The inputs' batches, from the start (a wrong key's pass reads them
                again); each reading counts its own skipped lines and hashes anew."""
                nonlocal bad, readings
                if readings:
                    hashing.restart()
                    bad = BadLines(skip=bad.skip)
                readings += 1
                return read_inputs(inputs, bad)

            try:
                # canonical snapshots are read by row group on both cores; the rest streams
                snapshots = all(i.shape == Shape.SNAPSHOT for i in inputs)
                outcome = clean.clean_pass_over(
                    None if snapshots else read, self.key_bytes, self._zone_list(),
                    self.event_anchor, inputs, self.recover_microseconds)
                report = outcome.report
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
                        anchor=self.event_anchor,
                        recover_microseconds=self.recover_microseconds, inputs=loaded.inputs,
                        progress=progress, max_findings=self.max_findings,
                        # the clean pass gave up above: again only if sorting may help
                        clean_first=outcome is None or outcome.sorting_may_prove)
        report.skipped_lines = loaded.bad.count
        return report
