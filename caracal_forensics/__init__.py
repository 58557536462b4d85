"""caracal-forensics: offline forensics for exported Caracal audit data.

The notebook API::

    import caracal_forensics as cf
    snap = cf.open("export/")
    snap.tail(decision="deny", limit=20)
    snap.explain("req-000042")
    snap.verify(key=open("key.hex").read())

Heavy modules load on first use so that importing the package (and the CLI) is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .snapshot import Snapshot

__all__ = ["__version__", "open", "jsonb_text", "Snapshot"]


def open(*sources: str, on_bad_line: str = "error",  # noqa: A001
         exclude: str | Sequence[str] = ()) -> Snapshot:
    """Open export files, directories, globs or canonical snapshots as one Snapshot;
    ``exclude``: glob patterns of files (names, paths or directory names) to leave out."""
    from .snapshot import open_sources

    return open_sources(list(sources), on_bad_line=on_bad_line,
                        exclude=(exclude,) if isinstance(exclude, str) else tuple(exclude))


def jsonb_text(raw_json: str) -> str:
    """Render JSON text exactly as PostgreSQL's ``jsonb::text`` prints it."""
    from .jsonb import jsonb_text as _jsonb_text

    return _jsonb_text(raw_json)


def __getattr__(name: str) -> Any:
    if name == "Snapshot":
        from .snapshot import Snapshot

        return Snapshot
    if name == "Report":
        from .chain.report import Report

        return Report
    raise AttributeError(name)
