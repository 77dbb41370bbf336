"""KPA deadlines: art. 35 (a month, two months), art. 237 (complaints), art. 57 (how months and
days are counted, and Saturdays and public holidays moving the end to the next working day)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from workflow.processes.deadlines import (
    UnknownDeadlineKind,
    deadline_date,
    is_working_day,
    statutory_deadline,
)


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        # A month ends on the corresponding day of the next month (art. 57 §3).
        ("kpa_35_1m", date(2026, 3, 10), date(2026, 4, 10)),
        # No corresponding day: the month's last day (28 February 2027 is a Sunday → 1 March).
        ("kpa_35_1m", date(2027, 1, 31), date(2027, 3, 1)),
        # 29 February 2028 exists (leap year) and is a Tuesday.
        ("kpa_35_1m", date(2028, 1, 31), date(2028, 2, 29)),
        # Ends on Saturday 11 April 2026 → Monday 13 April.
        ("kpa_35_1m", date(2026, 3, 11), date(2026, 4, 13)),
        # Ends on Easter Monday (6 April 2026) → Tuesday 7 April.
        ("kpa_35_1m", date(2026, 3, 6), date(2026, 4, 7)),
        # Ends on 11 November (Independence Day, a Wednesday in 2026) → 12 November.
        ("kpa_35_1m", date(2026, 10, 11), date(2026, 11, 12)),
        # Two months for a complex case.
        ("kpa_35_2m", date(2026, 3, 10), date(2026, 5, 11)),  # 10 May 2026 is a Sunday
        # A complaint: a month (art. 237 §1); 24 December is a public holiday from 2025 on.
        ("kpa_237", date(2026, 11, 24), date(2026, 12, 28)),
        # Days: the day of the event is not counted (art. 57 §1).
        ("days:7", date(2026, 12, 1), date(2026, 12, 8)),
        ("days:14", date(2026, 12, 18), date(2027, 1, 4)),  # 1 January; 2–3 January a weekend
    ],
)
def test_statutory_deadline_dates(kind: str, start: date, end: date) -> None:
    assert deadline_date(kind, start) == end
    assert is_working_day(end)


def test_deadline_is_the_end_of_the_day_in_warsaw() -> None:
    # Registered late on 10 March (Warsaw), which is still 10 March in UTC.
    at = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)  # 23:30 in Warsaw (CET)
    assert statutory_deadline("kpa_35_1m", at) == datetime(2026, 4, 10, 21, 59, 59, tzinfo=UTC)
    # 23:30 UTC on 10 March is already 11 March in Warsaw.
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    assert statutory_deadline("kpa_35_1m", late) == datetime(2026, 4, 13, 21, 59, 59, tzinfo=UTC)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownDeadlineKind):
        deadline_date("three_fortnights", date(2026, 1, 1))
