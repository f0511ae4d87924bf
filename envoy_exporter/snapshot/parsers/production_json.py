"""``/production.json`` and ``/production.json?details=1`` (firmware 4 and later).

The parser reports what the gateway said, section by section; judging it (disabled CTs,
all-zero phases, the wrapped inverter counter, total equal to net) is ``assemble``'s job.
"""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import (
    WH,
    AcbStorage,
    EimSection,
    InvertersSection,
    ProductionJson,
    Reading,
)
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_int,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    load_json,
    number_at,
)

_LISTS = ("production", "consumption", "storage")


def parse_production_json(body: bytes) -> ProductionJson:
    data = expect_dict(load_json(body), "production.json")
    if not any(key in data for key in _LISTS):
        # e.g. {"status": 401, ...}: JSON, but not this endpoint's answer
        raise ParseError("production.json has none of production/consumption/storage")
    production = _sections(data, "production")
    return ProductionJson(
        inverters=next((_inverters(s) for s in production if _type(s) == "inverters"), None),
        production=next((_eim(s, "production") for s in production if _type(s) == "eim"), None),
        consumption=tuple(
            _eim(s, "consumption") for s in _sections(data, "consumption") if _type(s) == "eim"
        ),
        storage=next((_acb(s) for s in _sections(data, "storage") if _type(s) == "acb"), None),
    )


def _sections(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    return [expect_dict(s, f"{key} section") for s in expect_list(value, key)]


def _type(section: dict[str, Any]) -> str | None:
    return as_str(section.get("type"), "section type")


def _count(section: dict[str, Any], what: str) -> int:
    count = as_int(section.get("activeCount"), f"{what}.activeCount")
    if count is None:
        raise ParseError(f"{what}: missing 'activeCount'")
    return count


def _joules(obj: dict[str, Any], key: str, what: str) -> float | None:
    wh = number_at(obj, key, what)
    return None if wh is None else wh * WH


def _inverters(section: dict[str, Any]) -> InvertersSection:
    what = "production inverters"
    return InvertersSection(
        active_count=_count(section, what),
        reading_time=as_timestamp(section.get("readingTime"), f"{what}.readingTime"),
        power_w=number_at(section, "wNow", what),
        lifetime_j=_joules(section, "whLifetime", what),
    )


def _eim(section: dict[str, Any], where: str) -> EimSection:
    what = f"{where} eim"
    lines = section.get("lines")
    return EimSection(
        # 4.2.33 leaves measurementType out of its consumption section: None, never guessed.
        measurement_type=as_str(section.get("measurementType"), f"{what}.measurementType"),
        active_count=_count(section, what),
        reading_time=as_timestamp(section.get("readingTime"), f"{what}.readingTime"),
        total=_reading(section, what),
        lines=()
        if lines is None
        else tuple(
            _reading(expect_dict(line, f"{what} line"), f"{what} line {n}")
            for n, line in enumerate(expect_list(lines, f"{what}.lines"), start=1)
        ),
    )


def _reading(obj: dict[str, Any], what: str) -> Reading:
    return Reading(
        power_w=number_at(obj, "wNow", what),
        lifetime_j=_joules(obj, "whLifetime", what),
        today_j=_joules(obj, "whToday", what),
        last_seven_days_j=_joules(obj, "whLastSevenDays", what),
        voltage_v=number_at(obj, "rmsVoltage", what),
        current_a=number_at(obj, "rmsCurrent", what),
        reactive_var=number_at(obj, "reactPwr", what),
        apparent_va=number_at(obj, "apprntPwr", what),
        power_factor=number_at(obj, "pwrFactor", what),
    )


def _acb(section: dict[str, Any]) -> AcbStorage:
    what = "storage acb"
    percent = number_at(section, "percentFull", what)
    return AcbStorage(
        active_count=_count(section, what),
        power_w=number_at(section, "wNow", what),
        energy_j=_joules(section, "whNow", what),
        state=as_str(section.get("state"), f"{what}.state"),
        soc_ratio=None if percent is None else percent / 100,
    )
