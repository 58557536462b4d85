"""caracal-forensics: offline forensics for exported Caracal audit data.

The notebook API::

    import caracal_forensics as cf
    snap = cf.open("export/")
    snap.tail(decision="deny", limit=20)
    snap.explain("req-000042")
    snap.verify(key=open("key.hex").read())

    verifier = cf.Verifier(key=open("key.hex").read(), anchor="q3.json")
    report = verifier.verify_paths(["export/"])    # or verifier.verify_snapshot(snap)
    report.status, report.findings_of(cf.FindingKind.CHAIN_BREAK)

    cf.reconcile(["siem/"], ["dump/db.csv"], since="2026-05-11").findings

Heavy modules load on first use so that importing the package (and the CLI) is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .reconcile import Reconciliation
    from .snapshot import Snapshot

#: Names loaded on first use (``cf.Verifier`` ...): name -> (module, attribute).
_LAZY = {
    "Snapshot": ("snapshot", "Snapshot"),
    "Verifier": ("chain.verifier", "Verifier"),
    "Report": ("chain.report", "Report"),
    "Finding": ("chain.report", "Finding"),
    "ZoneSummary": ("chain.report", "ZoneSummary"),
    "InputSummary": ("chain.report", "InputSummary"),
    "FindingKind": ("chain.report", "Kind"),
    "Severity": ("chain.report", "Severity"),
    "SEVERITY": ("chain.report", "SEVERITY"),
    "Reason": ("chain.report", "Reason"),
    "Status": ("chain.report", "Status"),
    "ForensicsError": ("errors", "ForensicsError"),
    "UsageError": ("errors", "UsageError"),
    "HmacKeyError": ("errors", "HmacKeyError"),
    "InputError": ("errors", "InputError"),
    "NotFoundError": ("errors", "NotFoundError"),
    "DatabaseError": ("errors", "DatabaseError"),
    "Reconciliation": ("reconcile", "Reconciliation"),
    "HourCount": ("reconcile", "HourCount"),
    "ReconcileFinding": ("reconcile", "ReconcileFinding"),
}

__all__ = ["__version__", "open", "jsonb_text", "reconcile", *_LAZY]


def open(*sources: str, on_bad_line: str = "error",  # noqa: A001
         exclude: str | Sequence[str] = ()) -> Snapshot:
    """Open export files, directories, globs or canonical snapshots as one Snapshot;
    ``exclude``: glob patterns of files (names, paths or directory names) to leave out."""
    from .snapshot import open_sources

    return open_sources(list(sources), on_bad_line=on_bad_line,
                        exclude=(exclude,) if isinstance(exclude, str) else tuple(exclude))


def reconcile(source: str | Sequence[str] | Snapshot, against: str | Sequence[str] | Snapshot,
              *, zone: str | Sequence[str] | None = None, since: Any = None, until: Any = None,
              on_bad_line: str = "error", exclude: Sequence[str] = ()) -> Reconciliation:
    """Compare two sets of sources (paths as ``open`` takes them, or opened Snapshots) by
    event id: per zone and hour of occurred_at the counts on each side, and the findings
    ``missing_in_source`` and ``field_mismatch`` (a ``Reconciliation``); ``zone``,
    ``since`` (inclusive) and ``until`` (exclusive) narrow both sides alike."""
    from .reconcile import reconcile as _reconcile

    return _reconcile(source, against, zone=zone, since=since, until=until,
                      on_bad_line=on_bad_line, exclude=exclude)


def jsonb_text(raw_json: str) -> str:
    """Render JSON text exactly as PostgreSQL's ``jsonb::text`` prints it. A ValueError
    says why PostgreSQL would reject the text (bad JSON, NaN, \\u0000, numeric overflow);
    a TypeError, that ``raw_json`` is not a str."""
    if not isinstance(raw_json, str):
        raise TypeError(f"raw_json must be str, not {type(raw_json).__name__}")
    from .jsonb import jsonb_text as _jsonb_text

    return _jsonb_text(raw_json)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(name)
    from importlib import import_module

    module, attribute = _LAZY[name]
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
