"""``/api/v1/production`` and ``/api/v1/production/inverters`` (firmware 3.9 and later)."""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import WH, AcbReading, InverterReading, Reading, V1Inverters
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_float,
    as_int,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    load_json,
)

# devType of the inverters list. Firmware before 5 writes no devType: everything is a PCU then.
_PCU = 1
_ACB = 11  # AC battery: it reports watts like an inverter but is storage


def parse_v1_production(body: bytes) -> Reading:
    data = expect_dict(load_json(body), "/api/v1/production")
    power = as_float(data.get("wattsNow"), "wattsNow")
    if power is None:
        # An error body such as {"status": 401, ...} is JSON without the figures.
        raise ParseError("/api/v1/production has no wattsNow")
    return Reading(
        power_w=power,
        today_j=_joules(data, "wattHoursToday"),
        last_seven_days_j=_joules(data, "wattHoursSevenDays"),
        lifetime_j=_joules(data, "wattHoursLifetime"),
    )


def parse_v1_inverters(body: bytes) -> V1Inverters:
    entries = [
        expect_dict(entry, "inverter entry")
        for entry in expect_list(load_json(body), "/api/v1/production/inverters")
    ]
    inverters: list[InverterReading] = []
    batteries: list[AcbReading] = []
    for entry in entries:
        dev_type = as_int(entry.get("devType"), "devType")
        if dev_type in (None, _PCU):
            inverters.append(InverterReading(**_fields(entry)))
        elif dev_type == _ACB:
            batteries.append(AcbReading(**_fields(entry)))
        # Other device types are neither inverters nor batteries we know how to export.
    return V1Inverters(inverters=tuple(inverters), batteries=tuple(batteries))


def _joules(data: dict[str, Any], key: str) -> float | None:
    wh = as_float(data.get(key), key)
    return None if wh is None else wh * WH


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    serial = as_str(entry.get("serialNumber"), "serialNumber")
    if not serial:
        raise ParseError("inverter entry without a usable serialNumber")
    return {
        "serial": serial,
        "power_w": as_float(entry.get("lastReportWatts"), f"{serial}.lastReportWatts"),
        "max_power_w": as_float(entry.get("maxReportWatts"), f"{serial}.maxReportWatts"),
        "last_report_s": as_timestamp(entry.get("lastReportDate"), f"{serial}.lastReportDate"),
    }
