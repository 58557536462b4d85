"""Verify the audit chain of an opened export, zone by zone (FORMAT.md sections 2 and 5).

Two passes give the same report. The clean pass (``clean.py``) proves an intact export
intact in one streaming pass and gives up at the first row it cannot prove; then the
exhaustive pipeline runs: its stages (``stages.py``: load, hash, recover microseconds,
link, vouch) build work tables, and its checks (``findings.py``, worded by
``wording.py``) find and explain every problem. ``Verifier`` (``verifier.py``) is the
public entry over paths or an opened snapshot; this is the one over a connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from ..keys import coerce_key
from . import clean, native
from .digest import Progress
from .findings import build_report
from .preimage import show_preimage
from .report import MAX_FINDINGS_PER_KIND, Report
from .stages import Run

__all__ = ["MAX_FINDINGS_PER_KIND", "show_preimage", "verify"]


def verify(
    con: duckdb.DuckDBPyConnection,
    *,
    key: bytes | str | None,
    zones: Sequence[str] | None = None,
    anchor: Report | None = None,
    recover_microseconds: bool = True,
    inputs: Iterable[Any] = (),
    progress: Progress | None = None,
    max_findings: int = MAX_FINDINGS_PER_KIND,
    clean_first: bool = True,
) -> Report:
    """Verify the events of ``con``'s view ``events``; never prints, never exits.

    ``key`` is the decoded HMAC key (bytes) or its hex text (str); None checks content
    and links only and reports the HMAC as unverifiable. ``zones`` narrows the work.
    ``anchor`` is an earlier Report whose zone heads must still be there. ``progress``
    is called with (done, total) during microsecond recovery. ``clean_first``: try the
    clean pass first (False when a clean pass over the same rows, as read, gave up where
    this one would too).
    """
    run = Run(con, coerce_key(key), zones, anchor, max_findings)
    # wire events (FORMAT.md 7) are checked against the ledger by the exhaustive checks
    if clean_first and clean.ENABLED and native.AVAILABLE and not _has_wire(inputs):
        report = clean.clean_pass(con, run.key, run.zones, anchor, inputs,
                                  recover_microseconds)
        if report is not None:
            return report
    with run:
        run.load()
        run.recover(recover_microseconds, progress)
        run.link()
        return build_report(run, inputs)


def _has_wire(inputs: Iterable[Any]) -> bool:
    """Whether any input is a spool or dead-letter entry (``model.Shape.WIRE_SHAPES``)."""
    from ..model import Shape

    return any(getattr(i, "shape", None) in Shape.WIRE_SHAPES for i in inputs)
