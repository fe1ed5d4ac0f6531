"""Calendar shape of demand: growth, weekdays, months, Black Friday, December, Ramadan, hours of the day,
and the coupon codes each period runs.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

GROWTH_PER_YEAR = 0.15
WEEKDAY = np.array([0.95, 0.93, 0.97, 1.0, 1.0, 1.18, 1.12])  # Monday .. Sunday
MONTH = np.array([0.95, 0.82, 0.88, 0.90, 0.95, 1.0, 1.10, 1.15, 1.08, 0.98, 1.22, 1.35])

# Ramadan moves about 11 days earlier every year: anchored on 2023-03-23, one lunar year = 354.367 days.
_RAMADAN_ANCHOR = date(2023, 3, 23)
_LUNAR_YEAR = 354.367
_RAMADAN_DAYS = 30

# Share of orders per UTC hour. Nobody but night owls buys between 01:00 and 04:59, which is what makes
# the night_time fraud pattern stand out.
_DAY_HOURS = np.array(
    [
        1.2,
        0,
        0,
        0,
        0,
        0.3,
        0.8,
        1.6,
        2.8,
        4.0,
        5.2,
        6.0,
        6.4,
        6.0,
        5.6,
        5.5,
        5.6,
        6.0,
        6.6,
        7.2,
        7.6,
        7.0,
        5.0,
        2.8,
    ]
)
_OWL_HOURS = _DAY_HOURS + np.array([2.0, 2.5, 2.2, 1.8, 1.2] + [0] * 19)
# During Ramadan shopping moves from the afternoon to after iftar and late evening.
_RAMADAN_SHIFT = np.array(
    [
        1.8,
        1,
        1,
        1,
        1,
        1,
        1,
        0.9,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.7,
        0.6,
        0.6,
        1.2,
        1.5,
        1.6,
        1.6,
        1.5,
    ]
)

# Categories that sell more in some months (air conditioning in summer, consoles and TVs for the holidays,
# laptops for the back-to-school rush).
CATEGORY_MONTHS: dict[str, dict[int, float]] = {
    "Home Appliances": {6: 1.5, 7: 1.8, 8: 1.6},
    "Gaming": {11: 1.3, 12: 1.6},
    "TVs": {11: 1.3, 12: 1.3},
    "Laptops": {9: 1.5, 10: 1.2},
}


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def ramadan_start(day: date) -> date | None:
    """The start of the Ramadan `day` falls in, or None."""
    k = round((day - _RAMADAN_ANCHOR).days / _LUNAR_YEAR)
    start = _RAMADAN_ANCHOR + timedelta(days=round(k * _LUNAR_YEAR))
    return start if start <= day < start + timedelta(days=_RAMADAN_DAYS) else None


def day_weight(day: date, start: date) -> float:
    """Relative number of orders placed on `day`."""
    weight = (
        np.exp(GROWTH_PER_YEAR * (day - start).days / 365.25) * WEEKDAY[day.weekday()] * MONTH[day.month - 1]
    )
    offset = (day - black_friday(day.year)).days
    if offset == 0:
        weight *= 3.0
    elif offset in (1, 2):
        weight *= 1.9
    elif offset == 3:  # Cyber Monday
        weight *= 2.2
    elif -4 <= offset < 0 or (day.month == 12 and 15 <= day.day <= 24):  # Black Friday week, gifts
        weight *= 1.3
    ramadan = ramadan_start(day)
    if ramadan is not None:
        # Spending dips through the fast and picks up before Eid.
        weight *= 1.2 if (day - ramadan).days >= _RAMADAN_DAYS - 7 else 0.85
    return float(weight)


def hour_weights(day: date) -> np.ndarray:
    """Order-time profile for ordinary customers (row 0) and night owls (row 1)."""
    profiles = np.vstack([_DAY_HOURS, _OWL_HOURS])
    if ramadan_start(day) is not None:
        profiles = profiles * _RAMADAN_SHIFT
    return profiles


def category_factors(day: date, categories: tuple[str, ...]) -> np.ndarray:
    return np.array([CATEGORY_MONTHS.get(c, {}).get(day.month, 1.0) for c in categories])


def coupons(day: date) -> tuple[tuple[str, ...], float]:
    """The coupon codes in use on `day` and the share of orders that carry one."""
    offset = (day - black_friday(day.year)).days
    if 0 <= offset <= 3:
        return ("BLACKFRIDAY10", "CYBER15"), 0.35
    if ramadan_start(day) is not None:
        return ("RAMADAN15", "WELCOME10"), 0.12
    if day.month in (7, 8):
        return ("SUMMER5", "WELCOME10", "TECHMART5"), 0.08
    if day.month == 1 and day.day <= 7:
        return ("NEWYEAR10", "WELCOME10"), 0.10
    return ("WELCOME10", "TECHMART5"), 0.05
