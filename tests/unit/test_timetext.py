"""``timetext.iso_text``: every time the toolkit prints, the year in four digits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

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
