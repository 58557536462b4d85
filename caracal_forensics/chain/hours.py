"""Hours with no hourly OCSF file inside the range said to be complete (``missing_hour``).

The audit service uploads one file per hour of ingested_at, keyed
``audit/YYYY/MM/DD/YYYY-MM-DDTHH.parquet``, and nothing for an hour without events
(FORMAT.md sections 4.4 and 9). So an absent hour is a gap only up to the hour the user
says the upload is complete (``through``: ``--through HOUR``, else the exporter's
``audit_export_watermark`` when a snapshot's manifest holds it), from the first hour
found. Whether events were lost with it, the chains say (``sequence_gap``,
``truncated``): the finding is a warning, naming the hours and the keys expected.

Pure names and dates: no file is read here but a snapshot's manifest.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..timetext import iso_text
from . import wording
from .report import Finding, Kind, Report

#: ``<root>YYYY/MM/DD/YYYY-MM-DDTHH.parquet`` (optionally .gz / .zst), both dates agreeing
_HOURLY = re.compile(r"^(?P<root>.*?)(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
                     r"(?P=y)-(?P=m)-(?P=d)T(?P<h>\d{2})\.parquet(?P<ext>\.gz|\.zst|\.zstd)?$")
HOUR = timedelta(hours=1)
#: The watermark's name for the hourly Parquet upload (FORMAT.md 9).
WATERMARK_NAME = "parquet-hourly"


def parse_hour(value: str | datetime, parameter: str = "through") -> datetime:
    """The hour (UTC, minutes dropped) a value names: ``2026-05-11T10``, an ISO time
    (``2026-05-11T10:00:00Z``, ``2026-05-11 10:00+00``), or a datetime (naive: UTC)."""
    from ..errors import UsageError

    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace(" ", "T")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}", text):
            text += ":00"
        text = re.sub(r"([+-]\d{2})$", r"\1:00", text)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise UsageError(f"{parameter} must be an hour such as 2026-05-11T10 (UTC), not "
                             f"{str(value)[:40]!r}", parameter) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def hour_text(hour: datetime) -> str:
    return iso_text(hour, "hours")


def _key(root: str, hour: datetime) -> str:
    text = hour_text(hour)
    return f"{root}{text[:4]}/{text[5:7]}/{text[8:10]}/{text}.parquet"


def hourly_files(paths: Iterable[str]) -> dict[str, set[datetime]]:
    """The hours found per root (the part of a path before ``YYYY/MM/DD/``)."""
    found: dict[str, set[datetime]] = defaultdict(set)
    for path in paths:
        match = _HOURLY.match(path.replace("\\", "/"))
        if match is None:
            continue
        try:
            hour = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]),
                            tzinfo=timezone.utc)
        except ValueError:  # 2026-02-30: not an hour the exporter names
            continue
        found[match["root"]].add(hour)
    return found


def watermark(manifest: dict[str, Any]) -> datetime | None:
    """``last_exported_hour`` of the hourly upload in a snapshot's manifest, if recorded
    (``snapshot --dsn`` writes it as ``last_exported_hour``; older layouts kept it under
    ``audit_export_watermark``: {name: hour}, a row {name, last_exported_hour}, or rows)."""
    if isinstance(manifest.get("last_exported_hour"), str):
        try:
            return parse_hour(manifest["last_exported_hour"], "last_exported_hour")
        except Exception:
            return None
    held = manifest.get("audit_export_watermark")
    rows: list[Any] = held if isinstance(held, list) else [held]
    for row in rows:
        if not isinstance(row, dict):
            continue
        if row.get("name", WATERMARK_NAME) == WATERMARK_NAME and row.get("last_exported_hour"):
            value = row["last_exported_hour"]
        elif isinstance(row.get(WATERMARK_NAME), str):
            value = row[WATERMARK_NAME]
        else:
            continue
        try:
            return parse_hour(value, "audit_export_watermark")
        except Exception:
            return None
    return None


def snapshot_watermark(inputs: Iterable[Any]) -> datetime | None:
    """The latest watermark recorded in the manifests of the snapshots among ``inputs``."""
    from ..sources.snapshot_dir import load_manifest

    found = None
    for item in inputs:
        if getattr(item, "shape", None) != "snapshot":
            continue
        try:
            hour = watermark(load_manifest(item.path))
        except Exception:  # a broken manifest is verify's finding, not this one's
            hour = None
        if hour is not None and (found is None or hour > found):
            found = hour
    return found


def missing_runs(paths: Iterable[str], through: datetime
                 ) -> list[tuple[str, list[datetime]]]:
    """(root, hours) per run of consecutive hours with no file, from the first hour found
    of each root through ``through``."""
    runs = []
    for root, hours in sorted(hourly_files(paths).items()):
        hour, run = min(hours), []
        while hour <= through:
            if hour not in hours:
                run.append(hour)
            if run and (hour in hours or hour == through):
                runs.append((root, run))
                run = []
            hour += HOUR
    return runs


def missing_hours(paths: Iterable[str], through: datetime) -> list[Finding]:
    """One ``missing_hour`` finding per run of consecutive hours with no file."""
    return [_finding(root, run, through) for root, run in missing_runs(paths, through)]


def _finding(root: str, run: list[datetime], through: datetime) -> Finding:
    return Finding(Kind.MISSING_HOUR, None, None, None, _key(root, run[0]),
                   wording.missing_hour(hour_text(run[0]), hour_text(run[-1]), len(run),
                                        hour_text(through)))


def amend(report: Report, through: datetime | None) -> Report:
    """``report`` with the missing hours of its hourly OCSF inputs up to ``through`` (else
    the watermark a snapshot among them records), and the check said in ``checks``."""
    from .manifests import add_findings

    said = "the hour given"
    if through is None:
        through, said = snapshot_watermark(report.inputs), "the snapshot's watermark"
    if through is None:
        return report
    paths = [i.path for i in report.inputs if i.shape == "ocsf_parquet"]
    found = hourly_files(paths)
    if not found:
        return report
    runs = missing_runs(paths, through)
    first = min(min(hours) for hours in found.values())
    report.checks["hours"] = wording.hours_check(hour_text(first), hour_text(through), said,
                                                 sum(len(run) for _root, run in runs))
    return add_findings(report, [_finding(root, run, through) for root, run in runs])
