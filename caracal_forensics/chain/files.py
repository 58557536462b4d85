"""``verify_files``: the earlier entry for verifying export files, kept for its callers.

Use ``Verifier(...).verify_paths(paths)`` (``verifier.py``, exported as
``caracal_forensics.Verifier``): the same work, options held in one typed object.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .report import Report

if TYPE_CHECKING:
    from .digest import Progress


@dataclass(frozen=True)
class Verified:
    """A report, and how many malformed lines were skipped (``on_bad_line="skip"``)."""

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
    """``Verifier(key=..., ...).verify_paths(paths)``, with the skipped lines beside."""
    from .verifier import Verifier

    report = Verifier(key=key, zones=zones, anchor=anchor,
                      recover_microseconds=recover_microseconds, on_bad_line=on_bad_line,
                      exclude=exclude).verify_paths(paths, progress=progress)
    return Verified(report, report.skipped_lines)
