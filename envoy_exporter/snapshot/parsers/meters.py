"""``/ivp/meters`` (the CT configuration) and ``/ivp/meters/readings`` (their readings).

Both are lists keyed by ``eid``; ``assemble`` matches one to the other. Gateways without CTs
answer ``[]``. Readings carry energies in Wh, converted to joules here; every meter lists
three channels whatever its phase count, and leaving the unused ones out is ``assemble``'s job.
"""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import WH, MeterChannel, MeterConfig, MeterReading
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


def parse_meters(body: bytes) -> tuple[MeterConfig, ...]:
    # Old firmware answers {"error": "404 - Not Found"}: a dict, so expect_list refuses it.
    entries = expect_list(load_json(body), "meters")
    return tuple(_config(expect_dict(entry, "meter")) for entry in entries)


def parse_meter_readings(body: bytes) -> tuple[MeterReading, ...]:
    entries = expect_list(load_json(body), "meter readings")
    return tuple(_reading(expect_dict(entry, "meter reading")) for entry in entries)


def _config(entry: dict[str, Any]) -> MeterConfig:
    eid = _eid(entry, "meter")
    what = f"meter {eid}"
    return MeterConfig(
        eid=eid,
        measurement_type=_required_str(entry, "measurementType", what),
        state=_required_str(entry, "state", what),
        phase_mode=as_str(entry.get("phaseMode"), f"{what}.phaseMode"),
        phase_count=_required_int(entry, "phaseCount", what),
        metering_status=as_str(entry.get("meteringStatus"), f"{what}.meteringStatus"),
        status_flags=tuple(
            flag
            for flag in (as_str(f, f"{what}.statusFlags") for f in _list(entry, "statusFlags", what))
            if flag
        ),
    )


def _reading(entry: dict[str, Any]) -> MeterReading:
    total = _channel(entry, "meter reading")
    what = f"meter reading {total.eid}"
    return MeterReading(
        total=total,
        channels=tuple(
            _channel(expect_dict(channel, f"{what} channel"), f"{what} channel")
            for channel in _list(entry, "channels", what)
        ),
    )


def _channel(entry: dict[str, Any], what: str) -> MeterChannel:
    eid = _eid(entry, what)
    what = f"{what} {eid}"

    def number(key: str) -> float | None:
        return number_at(entry, key, what)

    return MeterChannel(
        eid=eid,
        timestamp_s=as_timestamp(entry.get("timestamp"), f"{what}.timestamp"),
        power_w=number("activePower"),
        reactive_var=number("reactivePower"),
        apparent_va=number("apparentPower"),
        voltage_v=number("voltage"),
        current_a=number("current"),
        frequency_hz=number("freq"),
        power_factor=number("pwrFactor"),
        delivered_j=_joules(number("actEnergyDlvd")),
        received_j=_joules(number("actEnergyRcvd")),
    )


def _eid(entry: dict[str, Any], what: str) -> int:
    # Without its eid a meter cannot be matched with its configuration, so it is an error.
    return _required_int(entry, "eid", what)


def _required_int(entry: dict[str, Any], key: str, what: str) -> int:
    value = as_int(entry.get(key), f"{what}.{key}")
    if value is None:
        raise ParseError(f"{what}: missing {key!r}")
    return value


def _required_str(entry: dict[str, Any], key: str, what: str) -> str:
    value = as_str(entry.get(key), f"{what}.{key}")
    if value is None:
        raise ParseError(f"{what}: missing {key!r}")
    return value


def _list(entry: dict[str, Any], key: str, what: str) -> list[Any]:
    """An optional list: absent or null is empty, anything else but a list is an error."""
    value = entry.get(key)
    return [] if value is None else expect_list(value, f"{what}.{key}")


def _joules(wh: float | None) -> float | None:
    return None if wh is None else wh * WH
