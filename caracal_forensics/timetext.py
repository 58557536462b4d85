"""Times as text, the year always four digits.

``strftime("%Y")`` writes the year as the C library does: glibc writes year 1 as ``1``,
so an event dated 0001-01-01 (hostile or broken input, but input all the same) came out
as ``1-01-01T00:00:00.000000Z`` beside DuckDB's and Python's ``0001-...``. ``isoformat``
always pads it; every time the toolkit prints goes through here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["EPOCH", "from_micros", "iso_text", "utc_times"]

#: Where epoch microseconds count from (an aware UTC time).
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def from_micros(micros: int) -> datetime:
    """The aware UTC time ``micros`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=micros)


def utc_times(column: Any) -> list[datetime | None]:
    """An Arrow column of UTC instants in microseconds (DuckDB's TIMESTAMPTZ) as aware UTC
    datetimes, read through their microseconds: pyarrow converts a zoned time at about
    2.7 us a value (and imports pandas, where installed, for it), this at 0.5."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    times: list[datetime | None] = []
    for chunk in chunks:
        if not pa.types.is_timestamp(chunk.type) or chunk.type.unit != "us":
            raise TypeError(f"utc_times reads timestamp[us] columns, not {chunk.type}")
        times += [None if micros is None else from_micros(micros)
                  for micros in chunk.view(pa.int64()).to_pylist()]
    return times


def iso_text(moment: datetime, timespec: str = "microseconds", sep: str = "T") -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (no zone: the caller adds ``Z``
    where it means UTC). An aware time is converted to UTC; a naive one is taken as it
    is. ``timespec`` as ``datetime.isoformat`` (``hours``, ``seconds``, ``milliseconds``:
    cut, not rounded)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=sep, timespec=timespec)
