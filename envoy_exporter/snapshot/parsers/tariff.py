"""``/admin/lib/tariff``: the battery profile and the prices.

``tariff.storage_settings`` is the profile in force (``mode``), the backup reserve and very-low
settings in percent, and whether the batteries may charge from the grid. Gateways without
batteries answer a tariff without ``storage_settings`` (5.0.62): that is a valid answer with
nothing in it, not an error. Older firmware names the economy profile ``savings-mode``.

The prices: ``currency.code``, ``single_rate`` (``rate`` to buy, ``sell``), and ``seasons`` (to
buy) and ``seasons_sell`` each a list of seasons (``start`` "M/D") of day types (``days``
"Mon,Tue,...") of periods (``start`` in minutes after local midnight, ``rate``). A season with
``tiers`` and no day types is priced at the single rate (``pricing`` explains why).
"""

from __future__ import annotations

import re
from typing import Any

from envoy_exporter.snapshot.model import (
    DayType,
    RatePeriod,
    Rates,
    Season,
    StorageSettings,
    Tariff,
    TariffAnswer,
)
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_int,
    as_percent,
    as_str,
    expect_dict,
    expect_list,
    load_json,
)

# The same profile under the name older firmware gives it.
_MODE_NAMES = {"savings-mode": "economy"}
_WEEKDAYS = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}
_MINUTES_PER_DAY = 24 * 60
_MONTH_DAY = re.compile(r"([0-9]{1,2})\s*/\s*([0-9]{1,2})", re.ASCII)


def parse_tariff(body: bytes) -> TariffAnswer:
    data = expect_dict(load_json(body), "tariff")
    tariff = data.get("tariff")
    if tariff is None:
        raise ParseError("tariff answer has no 'tariff'")
    tariff = expect_dict(tariff, "tariff.tariff")
    return TariffAnswer(storage=_storage(tariff.get("storage_settings")), tariff=_prices(tariff))


def _storage(settings: Any) -> StorageSettings:
    if settings is None:
        return StorageSettings()
    settings = expect_dict(settings, "storage_settings")
    # An empty mode says nothing; a label value "" would be a series of no mode.
    mode = as_str(settings.get("mode"), "storage_settings.mode") or None
    return StorageSettings(
        mode=_MODE_NAMES.get(mode, mode) if mode else None,
        reserve_ratio=as_percent(settings.get("reserved_soc"), "storage_settings.reserved_soc"),
        very_low_ratio=as_percent(settings.get("very_low_soc"), "storage_settings.very_low_soc"),
        charge_from_grid=as_bool(settings.get("charge_from_grid"), "storage_settings.charge_from_grid"),
    )


# --------------------------------------------------------------------------------------------
# Prices


def _prices(tariff: dict[str, Any]) -> Tariff | None:
    """The prices, None where the answer has none of them (no currency, no rate, no season)."""
    if not any(key in tariff for key in ("currency", "single_rate", "seasons", "seasons_sell")):
        return None
    currency = tariff.get("currency")
    code = (
        None if currency is None else as_str(expect_dict(currency, "currency").get("code"), "currency.code")
    )
    single = tariff.get("single_rate")
    single = {} if single is None else expect_dict(single, "single_rate")
    return Tariff(
        currency=code or None,
        buy=Rates(_rate(single.get("rate"), "single_rate.rate"), _seasons(tariff.get("seasons"), "seasons")),
        sell=Rates(
            _rate(single.get("sell"), "single_rate.sell"),
            _seasons(tariff.get("seasons_sell"), "seasons_sell"),
        ),
    )


def _rate(value: Any, what: str) -> float | None:
    rate = as_float(value, what)
    if rate is not None and rate < 0:
        raise ParseError(f"{what}: {rate} is not a price")
    return rate


def _seasons(value: Any, what: str) -> tuple[Season, ...]:
    if value is None:
        return ()
    seasons = [
        _season(expect_dict(raw, what), f"{what}[{i}]") for i, raw in enumerate(expect_list(value, what))
    ]
    starts = [s.start for s in seasons]
    if len(set(starts)) != len(starts):
        raise ParseError(f"{what}: two seasons start on the same day")
    return tuple(sorted(seasons, key=lambda s: s.start))


def _season(raw: dict[str, Any], what: str) -> Season:
    start = as_str(raw.get("start"), f"{what}.start")
    month_day = _month_day(start, f"{what}.start")
    day_types = raw.get("days")
    types = () if day_types is None else expect_list(day_types, f"{what}.days")
    return Season(
        start=month_day,
        day_types=tuple(_day_type(expect_dict(t, what), f"{what}.days[{i}]") for i, t in enumerate(types)),
        name=as_str(raw.get("id"), f"{what}.id") or "",
    )


def _month_day(text: str | None, what: str) -> tuple[int, int]:
    # ASCII digits only: str.isdigit() also passes "²", which int() then refuses.
    found = _MONTH_DAY.fullmatch((text or "").strip())
    if found is None:
        raise ParseError(f"{what}: {text!r} is not a month/day")
    month, day = int(found[1]), int(found[2])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ParseError(f"{what}: {text!r} is not a month/day")
    return month, day


def _day_type(raw: dict[str, Any], what: str) -> DayType:
    names = as_str(raw.get("days"), f"{what}.days") or ""
    weekdays = set()
    for name in names.split(","):
        key = name.strip().lower()[:3]
        if key not in _WEEKDAYS:
            raise ParseError(f"{what}.days: {name!r} is not a weekday")
        weekdays.add(_WEEKDAYS[key])
    periods = raw.get("periods")
    listed = () if periods is None else expect_list(periods, f"{what}.periods")
    parsed = [_period(expect_dict(p, what), f"{what}.periods[{i}]") for i, p in enumerate(listed)]
    return DayType(weekdays=frozenset(weekdays), periods=tuple(sorted(parsed, key=lambda p: p.start_min)))


def _period(raw: dict[str, Any], what: str) -> RatePeriod:
    start = as_int(raw.get("start"), f"{what}.start")
    if start is None or not 0 <= start < _MINUTES_PER_DAY:
        raise ParseError(f"{what}.start: {start!r} is not a minute of the day")
    return RatePeriod(
        start_min=start, rate=_rate(raw.get("rate"), f"{what}.rate"), name=as_str(raw.get("id"), what) or ""
    )
