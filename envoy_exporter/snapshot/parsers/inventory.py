"""``/inventory.json``: every device the gateway manages, in groups by type.

Groups are ``PCU`` (microinverters), ``ACB`` (AC Batteries), ``NSRB`` (Q-Relays), ``ESUB``
and others; each device carries the same status flags. Q-Relays add the relay and line
states, AC Batteries their state of charge and cell temperature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from envoy_exporter.snapshot.model import Battery, Device, Inventory, Relay
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_int,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    group_devices,
    load_json,
)
from envoy_exporter.snapshot.parsers.ensemble import statuses

# admin_state 0 is a decommissioned device (pyenphase drops those); 3 is what the devices
# listed only by /inventory.json?deleted=1 carry (8.3.5433: no status flags, silent for years).
# Live devices show 1 (firmware 4) or 2.
_GONE_ADMIN_STATES = frozenset({0, 3})
_LINES = ("1", "2", "3")


def parse_inventory(body: bytes) -> Inventory:
    groups = [expect_dict(g, "inventory group") for g in expect_list(load_json(body), "inventory")]
    devices: list[Device] = []
    relays: list[Relay] = []
    batteries: list[Battery] = []
    for group_type, serial, raw in _live_devices(groups):
        devices.append(_device(raw, serial, group_type))
        if group_type == "NSRB":
            relays.append(_relay(raw, serial))
        elif group_type == "ACB":
            batteries.append(_acb(raw, serial))
    return Inventory(devices=tuple(devices), relays=tuple(relays), batteries=tuple(batteries))


def _live_devices(groups: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(group type, serial, device) of every device still in service, each serial once.

    Entries without a serial cannot be labelled; a serial listed twice (8.3.5169 lists one
    PCU twice) would give duplicate series, so only its first entry counts.
    """
    seen: set[str] = set()
    for group in groups:
        group_type = as_str(group.get("type"), "inventory group type") or "unknown"
        for raw in group_devices(group, group_type):
            serial = _serial(raw, group_type)
            if serial is None or serial in seen or _gone(raw, serial):
                continue
            seen.add(serial)
            yield group_type, serial, raw


def _serial(raw: dict[str, Any], group_type: str) -> str | None:
    return as_str(raw.get("serial_num"), f"{group_type} serial_num") or None


def _gone(raw: dict[str, Any], serial: str) -> bool:
    return as_int(raw.get("admin_state"), f"{serial}.admin_state") in _GONE_ADMIN_STATES


def _flag(raw: dict[str, Any], key: str, serial: str) -> bool | None:
    return as_bool(raw.get(key), f"{serial}.{key}")


def _device(raw: dict[str, Any], serial: str, group_type: str) -> Device:
    return Device(
        serial=serial,
        device_type=group_type,
        part_number=as_str(raw.get("part_num"), f"{serial}.part_num"),
        firmware=as_str(raw.get("img_pnum_running"), f"{serial}.img_pnum_running"),
        producing=_flag(raw, "producing", serial),
        communicating=_flag(raw, "communicating", serial),
        provisioned=_flag(raw, "provisioned", serial),
        operating=_flag(raw, "operating", serial),
        last_report_s=_epoch(raw.get("last_rpt_date"), f"{serial}.last_rpt_date"),
        statuses=statuses(raw, serial),
    )


def _epoch(value: Any, what: str) -> float | None:
    """Epoch seconds; firmware 8 writes them as strings of digits ("1781988156")."""
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise ParseError(f"{what}: expected epoch seconds, got {value[:20]!r}")
        value = int(value)
    return as_timestamp(value, what)


def _relay(raw: dict[str, Any], serial: str) -> Relay:
    state = as_str(raw.get("relay"), f"{serial}.relay")
    lines = {line: _flag(raw, f"line{line}-connected", serial) for line in _LINES}
    return Relay(
        serial=serial,
        closed=None if state is None else state == "closed",
        lines_connected={line: connected for line, connected in lines.items() if connected is not None},
    )


def _acb(raw: dict[str, Any], serial: str) -> Battery:
    percent = as_float(raw.get("percentFull"), f"{serial}.percentFull")
    return Battery(
        serial=serial,
        battery_type="acb",
        soc_ratio=None if percent is None else percent / 100,
        # The only temperature an ACB reports; in °C like the Encharge's.
        temperature_c=as_float(raw.get("maxCellTemp"), f"{serial}.maxCellTemp"),
        communicating=_flag(raw, "communicating", serial),
        operating=_flag(raw, "operating", serial),
        state=as_str(raw.get("charge_status"), f"{serial}.charge_status") or None,
    )
