"""``/ivp/pdm/device_data`` (firmware 8.2 and later): per-device detail, keyed by eid.

Besides microinverters (``devName`` "pcu") it lists the CT meters ("eim"), relays ("nsrb")
and AC batteries ("acb"); PCUs and ACBs are read here. Electrical values come in milli-units.

An AC battery's power is the net energy of its last report over that report's length:
``(joulesProduced - joulesUsed) / duration``, positive while discharging. Its ``watts.now`` is
no guide: 8.3.5169 shows 4 W and 5 W there (the same unsigned figures as
``/api/v1/production/inverters``) while each unit drew 939 J and 938 J in 932 s, -1.0 W apiece,
and the ``/production.json`` storage section of the same moment says -2 W for the two together.
"""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import WH, Battery, DeviceData, InverterReading
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_int,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    load_json,
)

_META = ("deviceCount", "deviceDataLimit")
_MILLI = 1000.0


def parse_device_data(body: bytes) -> DeviceData:
    data = expect_dict(load_json(body), "device_data")
    _check_complete(data)
    inverters: list[InverterReading] = []
    batteries: list[Battery] = []
    for eid, entry in data.items():
        if eid in _META:
            continue
        device = expect_dict(entry, f"device {eid}")
        kind = as_str(device.get("devName"), "devName")
        # "active" is what tells a present device from a removed one. "modGone" is no guide:
        # removed PCUs carry active=false with it, but 8.3.5169 sets it on every live PCU.
        if kind not in ("pcu", "acb") or not as_bool(device.get("active"), "active"):
            continue
        if kind == "pcu":
            inverters.append(_inverter(device))
        elif (battery := _battery(device)) is not None:
            batteries.append(battery)
    return DeviceData(inverters=tuple(inverters), batteries=tuple(batteries))


def _check_complete(data: dict[str, Any]) -> None:
    # The gateway stops listing at deviceDataLimit; a cut list would silently under-count
    # the inverters, so it is refused and the client falls back to /api/v1/production/inverters.
    count = as_int(data.get("deviceCount"), "deviceCount")
    limit = as_int(data.get("deviceDataLimit"), "deviceDataLimit")
    if count is not None and limit is not None and count >= limit:
        raise ParseError(f"device_data lists {count} devices, its limit is {limit}: list is cut")


def _inverter(device: dict[str, Any]) -> InverterReading:
    serial = as_str(device.get("sn"), "pcu sn")
    if not serial:
        raise ParseError("pcu entry without sn")
    channels = expect_list(device.get("channels"), f"{serial}.channels")
    if not channels:
        raise ParseError(f"{serial}: no channels")
    channel = expect_dict(channels[0], f"{serial}.channels[0]")
    watts = _part(channel, "watts", serial)
    energy = _part(channel, "wattHours", serial)
    last = _part(channel, "lastReading", serial)
    lifetime = _part(channel, "lifetime", serial)
    today_wh = as_float(energy.get("today"), f"{serial}.wattHours.today")
    return InverterReading(
        serial=serial,
        power_w=as_float(watts.get("now"), f"{serial}.watts.now"),
        max_power_w=as_float(watts.get("max"), f"{serial}.watts.max"),
        last_report_s=as_timestamp(last.get("endDate"), f"{serial}.lastReading.endDate"),
        lifetime_j=as_float(lifetime.get("joulesProduced"), f"{serial}.lifetime.joulesProduced"),
        today_j=None if today_wh is None else today_wh * WH,
        dc_voltage_v=_milli(last, "dcVoltageINmV", serial),
        dc_current_a=_milli(last, "dcCurrentINmA", serial),
        ac_voltage_v=_milli(last, "acVoltageINmV", serial),
        ac_current_a=_milli(last, "acCurrentInmA", serial),
        ac_frequency_hz=_milli(last, "acFrequencyINmHz", serial),
        temperature_c=as_float(last.get("channelTemp"), f"{serial}.lastReading.channelTemp"),
        last_report_duration_s=as_float(last.get("duration"), f"{serial}.lastReading.duration"),
        last_report_energy_j=as_float(last.get("joulesProduced"), f"{serial}.lastReading.joulesProduced"),
    )


def _battery(device: dict[str, Any]) -> Battery | None:
    """An AC battery; None where it lists no channel (nothing to report, and no reason to cost
    the microinverters of the same answer)."""
    serial = as_str(device.get("sn"), "acb sn")
    if not serial:
        raise ParseError("acb entry without sn")
    channels = expect_list(device.get("channels"), f"{serial}.channels")
    if not channels:
        return None
    last = _part(expect_dict(channels[0], f"{serial}.channels[0]"), "lastReading", serial)
    soc = as_float(last.get("SOC"), f"{serial}.lastReading.SOC")
    return Battery(
        serial=serial,
        battery_type="acb",
        soc_ratio=None if soc is None else soc / 100,
        power_w=_net_power(last, serial),
        temperature_c=as_float(last.get("maxCellTemp"), f"{serial}.lastReading.maxCellTemp"),
    )


def _net_power(last: dict[str, Any], serial: str) -> float | None:
    """Mean power over the last report, positive while discharging (see the module's doc)."""
    produced = as_float(last.get("joulesProduced"), f"{serial}.lastReading.joulesProduced")
    used = as_float(last.get("joulesUsed"), f"{serial}.lastReading.joulesUsed")
    duration = as_float(last.get("duration"), f"{serial}.lastReading.duration")
    if produced is None or used is None or duration is None or duration <= 0:
        return None
    return (produced - used) / duration


def _part(channel: dict[str, Any], key: str, serial: str) -> dict[str, Any]:
    # Absent parts are "not reported"; a part of the wrong shape is a broken body.
    value = channel.get(key)
    return {} if value is None else expect_dict(value, f"{serial}.{key}")


def _milli(reading: dict[str, Any], key: str, serial: str) -> float | None:
    value = as_float(reading.get(key), f"{serial}.lastReading.{key}")
    return None if value is None else value / _MILLI
