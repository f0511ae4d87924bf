"""The rate in force: seasons (wrapping across the new year), day types, period boundaries and DST
days, judged on the gateway's wall clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from envoy_exporter.snapshot.model import DayType, RatePeriod, Rates, Season, Tariff
from envoy_exporter.snapshot.pricing import EXPORT, FLAT, IMPORT, Price, local_time, price, prices, zone

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})


def _day(weekdays: frozenset[int], *periods: tuple[int, float | None, str]) -> DayType:
    return DayType(weekdays, tuple(RatePeriod(start, rate, name) for start, rate, name in periods))


# Summer from 1 May, winter from 1 November (so January is winter: the last season wraps).
# Weekdays: off-peak until 07:00, peak 07:00-19:00 (420-1140), shoulder until 22:00, off-peak after.
SUMMER = Season(
    (5, 1),
    (
        _day(WEEKDAYS, (0, 0.10, "off"), (420, 0.40, "peak"), (1140, 0.25, "shoulder"), (1320, 0.10, "off")),
        _day(WEEKEND, (0, 0.12, "weekend")),
    ),
    "summer",
)
WINTER = Season(
    (11, 1),
    (
        _day(WEEKDAYS, (0, 0.11, "off"), (420, 0.33, "peak"), (1140, 0.22, "shoulder"), (1320, 0.11, "off")),
        _day(WEEKEND, (0, 0.13, "weekend")),
    ),
    "winter",
)
TIME_OF_USE = Rates(flat=0.20, seasons=(SUMMER, WINTER))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "rate", "period"),
    [
        ("2025-01-15 12:00", 0.33, "peak"),  # January: the winter that began last November
        ("2025-04-30 12:00", 0.33, "peak"),  # Wednesday, last day of winter
        ("2025-05-01 12:00", 0.40, "peak"),  # Thursday, first day of summer
        ("2025-10-31 12:00", 0.40, "peak"),  # Friday, last day of summer
        ("2025-11-03 12:00", 0.33, "peak"),
        ("2025-12-31 23:59", 0.11, "off"),  # Wednesday night, the year's last minute
        ("2026-01-01 00:00", 0.11, "off"),
    ],
)
def test_seasons_wrap_across_the_new_year(when: str, rate: float, period: str) -> None:
    assert price(TIME_OF_USE, _at(when)) == Price(rate, period)


def test_day_types_name_their_weekdays() -> None:
    assert price(TIME_OF_USE, _at("2025-06-06 12:00")) == Price(0.40, "peak")  # Friday
    assert price(TIME_OF_USE, _at("2025-06-07 12:00")) == Price(0.12, "weekend")  # Saturday
    assert price(TIME_OF_USE, _at("2025-06-08 12:00")) == Price(0.12, "weekend")  # Sunday


@pytest.mark.parametrize(
    ("clock", "rate", "period"),
    [
        ("00:00", 0.10, "off"),
        ("06:59", 0.10, "off"),
        ("07:00", 0.40, "peak"),
        ("18:59", 0.40, "peak"),
        ("19:00", 0.25, "shoulder"),
        ("21:59", 0.25, "shoulder"),
        ("22:00", 0.10, "off"),
        ("23:59", 0.10, "off"),
    ],
)
def test_a_period_runs_from_its_start_until_the_next_one(clock: str, rate: float, period: str) -> None:
    assert price(TIME_OF_USE, _at(f"2025-06-04 {clock}")) == Price(rate, period)  # a Wednesday


def test_before_the_first_period_the_previous_days_last_period_runs_on() -> None:
    # As on 7.3.466: the day's first period starts at 08:00, the last at 22:00.
    night = Rates(
        flat=0.01,
        seasons=(
            Season(
                (1, 1),
                (
                    _day(WEEKDAYS, (480, 0.14, "day"), (1320, 0.02, "night")),
                    _day(WEEKEND, (480, 0.09, "weekend day"), (1200, 0.03, "weekend night")),
                ),
                "all year",
            ),
        ),
    )
    assert price(night, _at("2025-06-04 05:00")) == Price(0.02, "night")  # Wednesday, from Tuesday
    assert price(night, _at("2025-06-09 05:00")) == Price(0.03, "weekend night")  # Monday, from Sunday
    assert price(night, _at("2025-06-04 08:00")) == Price(0.14, "day")


def test_the_flat_rate_where_the_schedule_says_nothing() -> None:
    tiered = Rates(flat=0.15, seasons=(Season((5, 1), (), "tiers only"),))
    assert price(tiered, _at("2025-07-01 12:00")) == Price(0.15, FLAT)
    weekdays_only = Rates(flat=0.15, seasons=(Season((1, 1), (_day(WEEKDAYS, (0, 0.3, "all day")),), "s"),))
    assert price(weekdays_only, _at("2025-06-07 12:00")) == Price(0.15, FLAT)  # a Saturday
    unpriced = Rates(flat=0.15, seasons=(Season((1, 1), (_day(WEEKDAYS, (0, None, "no rate")),), "s"),))
    assert price(unpriced, _at("2025-06-04 12:00")) == Price(0.15, FLAT)
    assert price(Rates(flat=0.07), _at("2025-06-04 12:00")) == Price(0.07, FLAT)
    assert price(Rates(), _at("2025-06-04 12:00")) is None


def test_both_directions_and_a_direction_without_a_rate_left_out() -> None:
    tariff = Tariff("EUR", buy=TIME_OF_USE, sell=Rates(flat=0.08))
    assert prices(tariff, _at("2025-06-04 12:00")) == {IMPORT: Price(0.40, "peak"), EXPORT: Price(0.08, FLAT)}
    assert prices(Tariff("EUR", buy=Rates(flat=0.3)), _at("2025-06-04 12:00")) == {IMPORT: Price(0.3, FLAT)}


def test_a_rate_of_zero_and_no_seasons_is_no_tariff() -> None:
    assert not Tariff("USD", buy=Rates(flat=0.0), sell=Rates(flat=0.0)).held
    assert not Tariff("USD").held
    assert Tariff("USD", buy=Rates(flat=0.2)).held
    assert Tariff("USD", buy=Rates(flat=0.0, seasons=(SUMMER,))).held


NEW_YORK = zone("America/New_York")


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_periods_start_on_the_wall_clock_on_dst_days() -> None:
    # Peak starts at 07:00 local: 12:00 UTC in winter time (EST, UTC-5), 11:00 UTC in summer time.
    # 2025-03-10 is the Monday after the spring change, 2025-03-07 the Friday before it.
    assert price(TIME_OF_USE, local_time(_utc("2025-03-07 11:59"), NEW_YORK)).period == "off"
    assert price(TIME_OF_USE, local_time(_utc("2025-03-07 12:00"), NEW_YORK)).period == "peak"
    assert price(TIME_OF_USE, local_time(_utc("2025-03-10 10:59"), NEW_YORK)).period == "off"
    assert price(TIME_OF_USE, local_time(_utc("2025-03-10 11:00"), NEW_YORK)).period == "peak"


def test_the_dst_change_itself() -> None:
    # Sunday 9 March 2025, 02:00 EST -> 03:00 EDT; Sunday 2 November 2025, 02:00 EDT -> 01:00 EST.
    hourly = Rates(
        flat=0.5,
        seasons=(
            Season(
                (1, 1), (_day(frozenset(range(7)), *((h * 60, h / 100, f"h{h}") for h in range(24))),), "s"
            ),
        ),
    )
    assert price(hourly, local_time(_utc("2025-03-09 06:59"), NEW_YORK)).period == "h1"
    assert price(hourly, local_time(_utc("2025-03-09 07:00"), NEW_YORK)).period == "h3"  # 02:00 never was
    # 01:30 comes twice in the autumn: the same period both times.
    assert price(hourly, local_time(_utc("2025-11-02 05:30"), NEW_YORK)).period == "h1"
    assert price(hourly, local_time(_utc("2025-11-02 06:30"), NEW_YORK)).period == "h1"
    assert price(hourly, local_time(_utc("2025-11-02 07:30"), NEW_YORK)).period == "h2"


def test_time_zones() -> None:
    assert zone("US/Eastern") is not None  # the legacy name a gateway reports (8.3.1598)
    assert zone("Mars/Olympus_Mons") is None
    assert zone("") is None
    assert zone(None) is None
    assert zone("../../etc/passwd") is None
    # None: the exporter's own local time
    assert local_time(0.0, None) == datetime.fromtimestamp(0.0)


def test_a_season_that_starts_on_february_29() -> None:
    leap = Rates(flat=0.5, seasons=(Season((2, 29), (_day(frozenset(range(7)), (0, 0.2, "leap")),), "s"),))
    # from 29 February in a leap year, from 1 March otherwise; before it, the season runs on from last year
    assert price(leap, _at("2024-02-29 00:00")) == Price(0.2, "leap")
    assert price(leap, _at("2027-02-28 23:59")) == Price(0.2, "leap")
    assert price(leap, _at("2027-03-01 00:00")) == Price(0.2, "leap")


def test_a_weekday_no_day_type_names_and_a_day_without_periods_get_the_flat_rate() -> None:
    weekdays_only = Rates(flat=0.5, seasons=(Season((1, 1), (_day(WEEKDAYS, (0, 0.2, "wd")),), "s"),))
    assert price(weekdays_only, _at("2025-06-07 12:00")) == Price(0.5, FLAT)  # Saturday
    assert price(weekdays_only, _at("2025-06-09 00:30")) == Price(0.2, "wd")  # Monday
    empty = Rates(flat=0.5, seasons=(Season((1, 1), (_day(frozenset(range(7))),), "s"),))
    assert price(empty, _at("2025-06-07 12:00")) == Price(0.5, FLAT)
    assert price(Rates(seasons=(Season((1, 1), (), "s"),)), _at("2025-06-07 12:00")) is None


def test_no_export_rate_is_no_export_price_not_zero() -> None:
    assert set(prices(Tariff("EUR", buy=Rates(flat=0.3)), _at("2025-06-07 12:00"))) == {IMPORT}


def test_the_european_dst_changes() -> None:
    berlin = zone("Europe/Berlin")
    hourly = Rates(
        flat=0.5,
        seasons=(
            Season((1, 1), (_day(frozenset(range(7)), *((h * 60, h, f"h{h}") for h in range(24))),), "s"),
        ),
    )
    # Sunday 30 March 2025, 02:00 CET -> 03:00 CEST at 01:00 UTC; 26 October, 03:00 -> 02:00 at 01:00 UTC
    assert price(hourly, local_time(_utc("2025-03-30 00:59"), berlin)).period == "h1"
    assert price(hourly, local_time(_utc("2025-03-30 01:00"), berlin)).period == "h3"
    assert price(hourly, local_time(_utc("2025-10-26 00:30"), berlin)).period == "h2"
    assert price(hourly, local_time(_utc("2025-10-26 01:30"), berlin)).period == "h2"  # 02:30 again
    assert price(hourly, local_time(_utc("2025-10-26 02:30"), berlin)).period == "h3"
