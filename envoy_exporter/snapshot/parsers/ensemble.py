"""The Ensemble endpoints (storage and grid control, firmware 7 and later).

* ``/ivp/ensemble/inventory``: the devices in groups by type: ``ENCHARGE`` (IQ Batteries),
  ``ENPOWER`` (IQ System Controller), ``COLLAR`` (IQ Meter Collar) and others not read here;
* ``/ivp/ensemble/secctrl``: the batteries' aggregate and the backup reserve;
* ``/ivp/ensemble/power``: each IQ Battery's power and state of charge.

Each parser fills only what its endpoint knows; ``assemble`` merges them by serial.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from envoy_exporter.snapshot.model import WH, Battery, Device, Enpower, Ensemble, StorageAggregate
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    group_devices,
    load_json,
)

ENCHARGE = "ENCHARGE"
ENPOWER = "ENPOWER"
COLLAR = "COLLAR"

# No captured firmware writes a temperature_unit: the Enpower reports °F (72-113 in the
# captures), the Encharge and the Collar °C, as pyenphase reads them too. A unit the gateway
# does give wins.
_DEFAULT_UNIT = {ENCHARGE: "C", ENPOWER: "F", COLLAR: "C"}
# Status codes kept per device, each one a series of enphase_device_status; more are left out.
MAX_STATUSES = 16


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/inventory


def parse_ensemble_inventory(body: bytes) -> Ensemble:
    """Batteries and the system controller; ``[]`` (no Ensemble devices) is a valid answer."""
    groups = [expect_dict(g, "ensemble group") for g in expect_list(load_json(body), "ensemble inventory")]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        group_type = as_str(group.get("type"), "ensemble group type") or "unknown"
        by_type.setdefault(group_type, []).extend(group_devices(group, group_type))
    # An Enpower, where there is one, is the system controller; a Meter Collar takes its place
    # on the systems that have one instead (8.3.1598).
    controllers = [
        *(_enpower(raw, serial) for serial, raw in _with_serial(by_type.get(ENPOWER, []), ENPOWER)),
        *(_collar(raw, serial) for serial, raw in _with_serial(by_type.get(COLLAR, []), COLLAR)),
    ]
    return Ensemble(
        batteries=tuple(
            _encharge(raw, serial) for serial, raw in _with_serial(by_type.get(ENCHARGE, []), ENCHARGE)
        ),
        enpower=controllers[0] if controllers else None,
        devices=tuple(
            _device(raw, serial, group_type)
            for group_type, devices in by_type.items()
            for serial, raw in _with_serial(devices, group_type)
        ),
    )


# The grid state each device type reports under its own key.
_GRID_STATE_KEY = {ENPOWER: "Enpwr_grid_mode", COLLAR: "grid_state", ENCHARGE: "reported_enc_grid_state"}


def _device(raw: dict[str, Any], serial: str, device_type: str) -> Device:
    """Any Ensemble device with the flags, status codes and states it reports, for the same
    device series the ``/inventory.json`` devices have."""
    grid_key = _GRID_STATE_KEY.get(device_type)
    return Device(
        serial=serial,
        device_type=device_type,
        part_number=as_str(raw.get("part_num"), f"{serial}.part_num"),
        firmware=as_str(raw.get("img_pnum_running"), f"{serial}.img_pnum_running"),
        communicating=as_bool(raw.get("communicating"), f"{serial}.communicating"),
        operating=as_bool(raw.get("operating"), f"{serial}.operating"),
        last_report_s=as_timestamp(raw.get("last_rpt_date"), f"{serial}.last_rpt_date"),
        statuses=statuses(raw, serial),
        admin_state=as_str(raw.get("admin_state_str"), f"{serial}.admin_state_str") or None,
        grid_state=(as_str(raw.get(grid_key), f"{serial}.{grid_key}") or None) if grid_key else None,
    )


def statuses(raw: dict[str, Any], serial: str) -> tuple[str, ...]:
    """The ``device_status`` codes of a device, each once, in the gateway's order, at most
    ``MAX_STATUSES`` of them: each is a series, and the captures show at most 3 per device."""
    value = raw.get("device_status")
    if value is None:
        return ()
    codes = (
        as_str(code, f"{serial}.device_status") for code in expect_list(value, f"{serial}.device_status")
    )
    return tuple(dict.fromkeys(code for code in codes if code))[:MAX_STATUSES]


def _with_serial(devices: list[dict[str, Any]], what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Devices without a serial cannot be labelled, so they are left out."""
    for raw in devices:
        serial = as_str(raw.get("serial_num"), f"{what} serial_num")
        if serial:
            yield serial, raw


def _encharge(raw: dict[str, Any], serial: str) -> Battery:
    capacity_wh = as_float(raw.get("encharge_capacity"), f"{serial}.encharge_capacity")
    dc_switch_off = as_bool(raw.get("dc_switch_off"), f"{serial}.dc_switch_off")
    return Battery(
        serial=serial,
        battery_type="encharge",
        soc_ratio=_ratio(raw, "percentFull", serial),
        capacity_j=None if capacity_wh is None else capacity_wh * WH,
        temperature_c=_celsius(raw, ENCHARGE, serial),
        communicating=as_bool(raw.get("communicating"), f"{serial}.communicating"),
        operating=as_bool(raw.get("operating"), f"{serial}.operating"),
        dc_switch_on=None if dc_switch_off is None else not dc_switch_off,
    )


def _enpower(raw: dict[str, Any], serial: str) -> Enpower:
    mains = as_str(raw.get("mains_oper_state"), f"{serial}.mains_oper_state")
    admin = as_str(raw.get("mains_admin_state"), f"{serial}.mains_admin_state")
    return Enpower(
        serial=serial,
        grid_connected=None if mains is None else mains == "closed",
        grid_enabled=None if admin is None else admin == "closed",
        grid_mode=as_str(raw.get("Enpwr_grid_mode"), f"{serial}.Enpwr_grid_mode"),
        temperature_c=_celsius(raw, ENPOWER, serial),
        communicating=as_bool(raw.get("communicating"), f"{serial}.communicating"),
    )


def _collar(raw: dict[str, Any], serial: str) -> Enpower:
    # The collar reports its MID (microgrid interconnect device: the relay between the home
    # and the grid) as mid_state "close"/"open", and its operating mode as grid_state
    # ("on_grid"; admin_state_str ENCMN_MDE_ON_GRID). grid_connected means "mains relay
    # closed" for the Enpower, so it comes from the MID here; grid_state is the collar's
    # counterpart of Enpwr_grid_mode. The capture (8.3.1598) has close + on_grid.
    mid = as_str(raw.get("mid_state"), f"{serial}.mid_state")
    return Enpower(
        serial=serial,
        grid_connected=None if mid is None else mid in ("close", "closed"),
        grid_mode=as_str(raw.get("grid_state"), f"{serial}.grid_state"),
        temperature_c=_celsius(raw, COLLAR, serial),
        communicating=as_bool(raw.get("communicating"), f"{serial}.communicating"),
    )


def _celsius(raw: dict[str, Any], device_type: str, serial: str) -> float | None:
    value = as_float(raw.get("temperature"), f"{serial}.temperature")
    if value is None:
        return None
    unit = as_str(raw.get("temperature_unit"), f"{serial}.temperature_unit") or _DEFAULT_UNIT[device_type]
    return (value - 32.0) * 5.0 / 9.0 if unit.upper().startswith("F") else value


def _ratio(raw: dict[str, Any], key: str, what: str) -> float | None:
    percent = as_float(raw.get(key), f"{what}.{key}")
    return None if percent is None else percent / 100.0


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/secctrl


def parse_secctrl(body: bytes) -> Ensemble:
    """The storage aggregate: all batteries together where AC Batteries count in, else the
    Encharge figures. ``aggregate`` is None when the gateway reports no battery capacity."""
    data = expect_dict(load_json(body), "secctrl")
    if not any(key in data for key in ("agg_soc", "Max_energy", "ENC_agg_soc", "Enc_max_available_capacity")):
        # e.g. {"error": "404 - Not Found"} on firmware without Ensemble
        raise ParseError("secctrl has no battery aggregate")
    return Ensemble(aggregate=_aggregate(data))


def _aggregate(data: dict[str, Any]) -> StorageAggregate | None:
    def number(key: str) -> float | None:
        return as_float(data.get(key), f"secctrl.{key}")

    acb_energy = number("ACB_agg_energy")
    if _has_acb(
        acb_energy, number("ACB_agg_soc"), number("Max_energy"), number("Enc_max_available_capacity")
    ):
        # agg_soc and Max_energy cover Encharge and ACB together; there is no combined
        # available energy, so it is the sum of the two (pyenphase does the same).
        soc, capacity = number("agg_soc"), number("Max_energy")
        available = _sum(number("ENC_agg_avail_energy"), acb_energy)
    else:
        soc, capacity = number("ENC_agg_soc"), number("Enc_max_available_capacity")
        available = number("ENC_agg_avail_energy")
    if not capacity:
        # Gateways without batteries answer all zeros: a 0 % state of charge would be a lie.
        return None
    # adjusted_backup_soc is the reserve in force (the gateway may raise the configured one).
    reserve = number("adjusted_backup_soc")
    if reserve is None:
        reserve = number("configured_backup_soc")
    return StorageAggregate(
        soc_ratio=None if soc is None else soc / 100.0,
        available_j=None if available is None else available * WH,
        capacity_j=capacity * WH,
        reserve_ratio=None if reserve is None else reserve / 100.0,
    )


def _has_acb(
    acb_energy: float | None, acb_soc: float | None, all_max: float | None, encharge_max: float | None
) -> bool:
    """AC Batteries report here through their ACB_ figures, or, empty, through a total
    capacity larger than the Encharge one."""
    return bool(acb_energy) or bool(acb_soc) or (all_max or 0.0) > (encharge_max or 0.0)


def _sum(a: float | None, b: float | None) -> float | None:
    if a is None and b is None:
        return None
    return (a or 0.0) + (b or 0.0)


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/power


def parse_ensemble_power(body: bytes) -> Ensemble:
    data = expect_dict(load_json(body), "ensemble power")
    # Real firmware spells the key "devices:", colon included; "devices" is accepted too.
    devices = data.get("devices:", data.get("devices"))
    if devices is None:
        raise ParseError("ensemble power has no 'devices:' list")
    entries = [
        expect_dict(d, "ensemble power device") for d in expect_list(devices, "ensemble power devices")
    ]
    return Ensemble(
        batteries=tuple(_battery_power(raw, serial) for serial, raw in _with_serial(entries, "power"))
    )


def _battery_power(raw: dict[str, Any], serial: str) -> Battery:
    milliwatts = as_float(raw.get("real_power_mw"), f"{serial}.real_power_mw")
    return Battery(
        serial=serial,
        battery_type="encharge",
        soc_ratio=_ratio(raw, "soc", serial),
        # The gateway's sign is the model's, positive = discharging: in 8.1.41 a full (100 %)
        # battery gives +24 W; in 8.3.1598 both give about -0.5 kW while below a 100 % reserve.
        power_w=None if milliwatts is None else milliwatts / 1000.0,
    )
