"""What both verify passes share: the trusted heads of an anchor, the report's checks
and summaries, and running a transform over batches on two threads (the findings' words
are in ``wording.py``).

Kept free of DuckDB so that the clean pass over a snapshot imports none of it.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from ..keys import key_fingerprint
from .report import Finding, InputSummary, Kind, Report, ZoneSummary, status_of


@dataclass(frozen=True)
class Head:
    """A trusted zone head from the anchor."""

    zone_id: str
    last_seq: int
    last_content_sha256: str | None


def anchor_heads(anchor: Report | None, zones: Sequence[str] | None) -> dict[str, Head]:
    """The trusted zone heads of an anchor report (of the zones verified)."""
    heads: dict[str, Head] = {}
    if anchor is not None:
        for z in anchor.zones:
            if z.last_seq is not None and (zones is None or z.zone_id in zones):
                heads[z.zone_id] = Head(z.zone_id, z.last_seq, z.last_content_sha256)
    return heads


def describe_checks(checks: dict[str, str], *, proven: int, total: int, key: bytes | None,
                    hmac_checked: int, heads: int, anchor: Report | None) -> dict[str, str]:
    """The report's ``checks``: what was checked, how often, in a fixed order."""
    checks = dict(checks)
    checks["content"] = f"recomputed and compared for {proven} of {total} row(s)"
    if key is None:
        checks["hmac"] = "not run: no key"
    else:
        checks["hmac"] = f"checked for {hmac_checked} event(s) with key {key_fingerprint(key)}"
    checks["links"] = "prev_content_sha256 against the predecessor, per zone in chain_seq order"
    checks["sequence"] = "gaps and duplicates of chain_seq and id, per zone"
    checks["anchor"] = (
        f"{heads} zone head(s) from "
        + (getattr(anchor, "anchor_origin", None) or f"a report of {anchor.generated_at}")
        if anchor is not None else "none: a cut-off tail cannot be detected"
    )
    checks.setdefault("microseconds", "not needed")
    order = ("content", "microseconds", "hmac", "links", "sequence", "anchor")
    return {name: checks[name] for name in order if name in checks}


def assemble_report(findings: list[Finding], zones: dict[str, dict[str, Any]],
                    inputs: Iterable[Any], key: bytes | None,
                    checks: dict[str, str]) -> Report:
    """The Report from findings and per-zone stats (events, first_seq, last_seq, last_c)."""
    findings = sorted(findings, key=Finding.sort_key)
    by_zone: dict[str | None, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_zone[finding.zone_id].append(finding)
    summaries = [
        ZoneSummary(zone_id=zone_id, events=z["events"], first_seq=z["first_seq"],
                    last_seq=z["last_seq"], last_content_sha256=z["last_c"],
                    status=status_of(by_zone.get(zone_id, [])))
        for zone_id, z in sorted(zones.items())
    ]
    for zone_id in sorted(set(by_zone) - set(zones) - {None}):
        summaries.append(ZoneSummary(zone_id, 0, None, None, None, status_of(by_zone[zone_id])))
    return Report(
        status=status_of(findings),
        events_checked=sum(z["events"] for z in zones.values()),
        zones=summaries,
        findings=findings,
        inputs=[InputSummary.of(i) for i in inputs],
        key_fingerprint=key_fingerprint(key),
        toolkit_version=__version__,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        checks=checks,
    )


def in_order(pool, transform, batches, in_flight: int = 2):
    """``transform`` over ``batches`` on the pool, results in input order, ``in_flight``
    at a time (so memory stays bounded while both cores work)."""
    pending = []
    for batch in batches:
        pending.append(pool.submit(transform, batch))
        if len(pending) > in_flight:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


# --- presenting a report: copies of one export in several shapes ---------------------

_COPY_DETAIL = re.compile(r"^exact copy of the event at (?P<other>.+); counted once$")


@dataclass
class CopyFold:
    """Exact copies of events in ``copy_shape`` files of events kept from ``kept_shape``
    files: a directory holding the same export in two shapes. Shown as one line; the
    findings stay in the report (``findings``), each with its file and line."""

    copy_shape: str
    kept_shape: str
    findings: list[Finding] = field(default_factory=list)
    copy_files: dict[str, None] = field(default_factory=dict)
    kept_files: dict[str, None] = field(default_factory=dict)

    @property
    def zones(self) -> list[str]:
        return sorted({f.zone_id for f in self.findings if f.zone_id is not None})

    def summary(self) -> str:
        n = len(self.findings)
        return (
            f"{n} event(s) kept from {self.kept_shape} "
            f"({_count(len(self.kept_files), 'file')}) are also in {self.copy_shape} "
            f"({_count(len(self.copy_files), 'file')}) as exact copies, in "
            f"{_count(len(self.zones), 'zone')}: the same export in two shapes, each event "
            "counted once"
        )

    def files_text(self, limit: int = 3) -> str:
        return (f"copies in {_names(self.copy_files, limit)}; "
                f"kept from {_names(self.kept_files, limit)}")


def fold_copies(report: Report) -> tuple[list[Finding], list[CopyFold]]:
    """The findings to show one by one, and the expected copies folded per shape pair.

    Folded: a ``duplicate_event`` (same id, same content and HMAC) whose copy and kept
    row come from different files of different shapes (the shape of each file is its
    input's; a row read from a snapshot keeps its original file, which counts as the
    snapshot's, and a row seen both in its file and in a snapshot made from it pairs that
    file's shape with ``snapshot``). Shown one by one: everything else, including copies
    in two files of one shape, two rows of one file, and every differing copy
    (``conflicting_duplicate``).
    """
    shapes = _Shapes(report)
    shown: list[Finding] = []
    folds: dict[tuple[str, str], CopyFold] = {}
    for finding in report.findings:
        match = _COPY_DETAIL.match(finding.detail) if finding.kind == Kind.DUPLICATE_EVENT else None
        copy_file = _file_of(finding.source)
        kept_file = _file_of(match.group("other")) if match else None
        copy_shape = shapes(copy_file)
        kept_shape = shapes(kept_file)
        if match and match.group("other") == finding.source and shapes.snapshots:
            copy_shape = "snapshot"  # one row twice: in its file and in a snapshot of it
        elif copy_file == kept_file:
            copy_shape = None  # two rows of one file: a genuine duplicate, shown
        if (match is None or copy_shape is None
                or kept_shape is None or copy_shape == kept_shape):
            shown.append(finding)
            continue
        fold = folds.setdefault((copy_shape, kept_shape), CopyFold(copy_shape, kept_shape))
        fold.findings.append(finding)
        if copy_shape == "snapshot" and copy_file not in shapes.snapshots:
            fold.copy_files.update(dict.fromkeys(shapes.snapshots))  # its file: the snapshot's
        else:
            fold.copy_files[str(copy_file)] = None
        fold.kept_files[str(kept_file)] = None
    return shown, sorted(folds.values(), key=lambda f: (f.kept_shape, f.copy_shape))


class _Shapes:
    """Which shape a finding's file has: its input's (a file inside an input directory:
    that input's). A file that is no input was read from a snapshot, whose rows keep the
    file they first came from."""

    def __init__(self, report: Report) -> None:
        self.by_path = {os.path.normpath(i.path): i.shape for i in report.inputs}
        self.snapshots = [i.path for i in report.inputs if i.shape == "snapshot"]

    def __call__(self, path: str | None) -> str | None:
        if path is None:
            return None
        current = os.path.normpath(path)
        while True:
            if current in self.by_path:
                return self.by_path[current]
            parent = os.path.dirname(current)
            if parent in ("", current):
                return "snapshot" if self.snapshots else None
            current = parent


def _file_of(source: str | None) -> str | None:
    """The file of a ``file:line`` source."""
    if not source:
        return None
    path, sep, line = source.rpartition(":")
    return path if sep and line.isdigit() else source


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _names(files: dict[str, None], limit: int) -> str:
    names = list(files)
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")
