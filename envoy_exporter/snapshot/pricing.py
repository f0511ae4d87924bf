"""The rate in force at a moment, from a tariff: pure, no I/O, no clock.

A tariff (``model.Tariff``) holds, for buying and for selling, a flat rate and optionally
seasons of day types of periods, as the gateway's ``/admin/lib/tariff`` describes them:

* a season runs from its start (month/day) until the next season's start; the last season of the
  year runs on into the next year, until the first one starts (so a year that starts mid-season
  is still covered);
* a day type names the weekdays it applies to;
* a period runs from its start (minutes after local midnight) until the next period's start;
  before the day's first period, the previous day's last period is still in force.

Where no season, day type or period applies, or a period carries no rate, the flat rate is the one
in force. Tiers (rates by consumption within a billing cycle) are not priced: the gateway does not
say where in the cycle the household stands.

Everything is judged on the local wall clock of the gateway: the caller converts the moment to
local time (``local_time``), so a period that starts at 07:00 starts at 07:00 on a DST day too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from envoy_exporter.snapshot.model import DayType, RatePeriod, Rates, Season, Tariff

IMPORT, EXPORT = "import", "export"
FLAT = "flat"  # the period name of a flat rate


@dataclass(frozen=True)
class Price:
    rate: float  # currency per kWh
    period: str  # the period's name, ``FLAT`` for a flat rate


def zone(name: str | None) -> tzinfo | None:
    """The IANA time zone ``name``, or None where it is not one this system knows."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(moment_s: float, where: tzinfo | None) -> datetime:
    """The wall-clock time at ``moment_s`` (epoch seconds) in ``where``; the exporter's own local
    time where it is None."""
    return datetime.fromtimestamp(moment_s, where)


def utc_offset_s(moment_s: float, where: tzinfo | None) -> float:
    """How far ``where``'s wall clock is ahead of UTC at ``moment_s`` (negative west of Greenwich);
    the exporter's own where it is None."""
    if where is None:
        return float(time.localtime(moment_s).tm_gmtoff)
    offset = datetime.fromtimestamp(moment_s, where).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def prices(tariff: Tariff, when: datetime) -> dict[str, Price]:
    """The import and export rates in force at local time ``when``; a direction without any rate
    is left out."""
    found = {IMPORT: price(tariff.buy, when), EXPORT: price(tariff.sell, when)}
    return {direction: p for direction, p in found.items() if p is not None}


def price(rates: Rates, when: datetime) -> Price | None:
    """The rate in force at local time ``when``."""
    return _price_on(rates, when.date(), when.hour * 60 + when.minute)


def _price_on(rates: Rates, day: date, minute: int) -> Price | None:
    period = _period(rates, day, minute)
    if period is not None and period.rate is not None:
        return Price(period.rate, period.name)
    return None if rates.flat is None else Price(rates.flat, FLAT)


def _period(rates: Rates, day: date, minute: int) -> RatePeriod | None:
    """The period in force; None where the day has no day type (the flat rate applies)."""
    day_type = _day_type(_season(rates.seasons, day), day)
    if day_type is None:
        return None
    started = [p for p in day_type.periods if p.start_min <= minute]
    if started:
        return started[-1]
    # Before the day's first period: the previous day's last one runs on.
    previous = _day_type(_season(rates.seasons, day - timedelta(days=1)), day - timedelta(days=1))
    return previous.periods[-1] if previous is not None and previous.periods else None


def _season(seasons: tuple[Season, ...], day: date) -> Season | None:
    if not seasons:
        return None
    started = [s for s in seasons if s.start <= (day.month, day.day)]
    # Before the first season's start the last season of the previous year is still in force.
    return started[-1] if started else seasons[-1]


def _day_type(season: Season | None, day: date) -> DayType | None:
    if season is None:
        return None
    return next((t for t in season.day_types if day.weekday() in t.weekdays), None)
