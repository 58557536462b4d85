"""Times as text, the year always four digits.

``strftime("%Y")`` writes the year as the C library does: glibc writes year 1 as ``1``,
so an event dated 0001-01-01 (hostile or broken input, but input all the same) came out
as ``1-01-01T00:00:00.000000Z`` beside DuckDB's and Python's ``0001-...``. ``isoformat``
always pads it; every time the toolkit prints goes through here.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["iso_text"]


def iso_text(moment: datetime, timespec: str = "microseconds", sep: str = "T") -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (no zone: the caller adds ``Z``
    where it means UTC). An aware time is converted to UTC; a naive one is taken as it
    is. ``timespec`` as ``datetime.isoformat`` (``hours``, ``seconds``, ``milliseconds``:
    cut, not rounded)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=sep, timespec=timespec)
