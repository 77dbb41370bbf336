"""Statutory deadlines under the Code of Administrative Procedure (KPA).

- art. 35 §3: a case is settled within a month; a complex case within two months.
- art. 237 §1: a complaint (skarga) is settled without undue delay, at the latest within a month.
- art. 57 §1: a deadline in days ends on the last day (the day of the event is not counted);
  §3: a deadline in months ends on the day of the last month that corresponds to the start day,
  or on the month's last day if there is none; §4: a deadline that ends on a public holiday or a
  Saturday ends on the next working day.

A deadline is the end of that day in Warsaw, returned in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

WARSAW = ZoneInfo("Europe/Warsaw")

KINDS = {
    "kpa_35_1m": "KPA art. 35 §3 – miesiąc",
    "kpa_35_2m": "KPA art. 35 §3 – sprawa szczególnie skomplikowana, dwa miesiące",
    "kpa_237": "KPA art. 237 §1 – skarga, miesiąc",
}
_DAYS = re.compile(r"^days:(\d{1,3})$")


class UnknownDeadlineKind(ValueError):
    pass


@lru_cache(maxsize=32)
def _polish_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("PL", years=year).keys())


def is_working_day(d: date) -> bool:
    return d.weekday() < 5 and d not in _polish_holidays(d.year)


def next_working_day(d: date) -> date:
    """art. 57 §4: Saturdays and public holidays move the end forward (Sundays are holidays)."""
    while not is_working_day(d):
        d += timedelta(days=1)
    return d


def deadline_date(kind: str, start: date) -> date:
    if kind in ("kpa_35_1m", "kpa_237"):
        end = start + relativedelta(months=1)
    elif kind == "kpa_35_2m":
        end = start + relativedelta(months=2)
    elif m := _DAYS.match(kind):
        end = start + timedelta(days=int(m.group(1)))
    else:
        raise UnknownDeadlineKind(kind)
    return next_working_day(end)


def statutory_deadline(kind: str, started_at: datetime) -> datetime:
    """The moment the deadline passes: the end of its last day in Warsaw, in UTC."""
    start = started_at.astimezone(WARSAW).date()
    last = deadline_date(kind, start)
    return datetime.combine(last, time(23, 59, 59), WARSAW).astimezone(UTC)
