"""``timetext``: every time the toolkit prints, the year in four digits; times read from
Arrow through their microseconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caracal_forensics.timetext import iso_text


@pytest.mark.parametrize(("moment", "timespec", "sep", "expected"), [
    (datetime(1, 1, 1, tzinfo=timezone.utc), "microseconds", "T", "0001-01-01T00:00:00.000000"),
    (datetime(999, 3, 1, 5, 6, 7, 891_234), "milliseconds", "T", "0999-03-01T05:06:07.891"),
    (datetime(9999, 12, 31, 23, tzinfo=timezone.utc), "hours", "T", "9999-12-31T23"),
    (datetime(2026, 5, 11, 10, 2, 3, tzinfo=timezone(timedelta(hours=5))), "seconds", " ",
     "2026-05-11 05:02:03"),  # converted to UTC
    (datetime(2026, 5, 11, 10, 2, 3, 999_999, tzinfo=timezone.utc), "milliseconds", "T",
     "2026-05-11T10:02:03.999"),  # cut, not rounded into the next second
])
def test_iso_text(moment: datetime, timespec: str, sep: str, expected: str) -> None:
    assert iso_text(moment, timespec, sep) == expected


@given(st.lists(st.one_of(st.none(), st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
    timezones=st.just(timezone.utc))), max_size=20), st.integers(0, 3))
def test_utc_times_are_pyarrows_datetimes(times, split) -> None:
    """Read through their microseconds, the same aware UTC times as pyarrow gives, chunked
    or not; NULL stays None. Another unit is refused (its numbers are not microseconds)."""
    import pyarrow as pa

    from caracal_forensics.timetext import from_micros, utc_times

    column = pa.array(times, pa.timestamp("us", tz="UTC"))
    assert utc_times(column) == column.to_pylist() == times
    chunked = pa.chunked_array([column[:split], column[split:]], column.type)
    assert utc_times(chunked) == times
    assert from_micros(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    with pytest.raises(TypeError, match="timestamp\\[us\\]"):
        utc_times(pa.array([0], pa.timestamp("ms", tz="UTC")))
