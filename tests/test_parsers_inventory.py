"""``/inventory.json``: device flags for every device, relays for Q-Relays, ACB state of charge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_FIXTURES, needs_shared
from parser_mutations import assert_damage_is_handled, assert_truncations_refused

from envoy_exporter.snapshot.model import Battery, Device, Inventory, Relay
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.inventory import parse_inventory

BODY = (FIXTURES / "inventory" / "inventory_pcu_acb_nsrb.json").read_bytes()


def test_every_live_device_with_its_flags() -> None:
    inventory = parse_inventory(BODY)
    assert [(d.serial, d.device_type) for d in inventory.devices] == [
        ("482401001001", "PCU"),
        ("482401001002", "PCU"),
        ("121931002001", "ACB"),
        ("121931002002", "ACB"),
        ("482405003001", "NSRB"),
        ("482405003002", "NSRB"),
    ]
    assert inventory.devices[0] == Device(
        serial="482401001001",
        device_type="PCU",
        part_number="800-01391-r03",
        firmware="521-00005-r06-v10.40.02",
        producing=True,
        communicating=True,
        provisioned=True,
        operating=True,
        last_report_s=1767225300.0,  # firmware 8 writes epoch seconds as a string
        statuses=("envoy.global.ok",),
    )


def test_a_serial_listed_twice_counts_once_as_first_listed() -> None:
    twice = [d for d in parse_inventory(BODY).devices if d.serial == "482401001002"]
    assert twice == [
        Device(
            serial="482401001002",
            device_type="PCU",
            part_number="800-01391-r03",
            firmware="521-00005-r06-v10.40.02",
            producing=False,
            communicating=True,
            provisioned=True,
            operating=False,
            last_report_s=1767225310.0,
            statuses=("envoy.cond_flags.pcu_ctrl.dc-pwr-low",),
        )
    ]


def test_deleted_and_decommissioned_devices_are_left_out() -> None:
    serials = {d.serial for d in parse_inventory(BODY).devices}
    assert "121901009009" not in serials  # admin_state 3, as /inventory.json?deleted=1 lists them
    assert "121901009010" not in serials  # admin_state 0, decommissioned


def test_relays_closed_and_open_with_their_lines() -> None:
    assert parse_inventory(BODY).relays == (
        Relay(serial="482405003001", closed=True, lines_connected={"1": True, "2": True, "3": True}),
        Relay(serial="482405003002", closed=False, lines_connected={"1": False, "2": True}),
    )


def test_acbs_are_batteries_with_state_of_charge() -> None:
    assert parse_inventory(BODY).batteries == (
        Battery(
            serial="121931002001",
            battery_type="acb",
            soc_ratio=0.64,
            temperature_c=23.0,
            communicating=True,
            operating=True,
            state="charging",
        ),
        Battery(
            serial="121931002002",
            battery_type="acb",
            soc_ratio=0.07,
            communicating=True,
            operating=True,
            state="idle",
        ),
    )


def test_empty_groups_and_an_empty_inventory() -> None:
    assert parse_inventory(b"[]") == Inventory()
    groups = b'[{"type": "PCU", "devices": []}, {"type": "NSRB"}, {"type": "ESUB", "devices": null}]'
    assert parse_inventory(groups) == Inventory()


def test_a_relay_without_relay_state_or_lines() -> None:
    inventory = parse_inventory(b'[{"type": "NSRB", "devices": [{"serial_num": "5", "admin_state": 1}]}]')
    assert inventory.relays == (Relay(serial="5"),)
    assert inventory.devices == (Device(serial="5", device_type="NSRB"),)


def test_devices_without_a_serial_are_left_out() -> None:
    body = b'[{"type": "PCU", "devices": [{"producing": true}, {"serial_num": "", "producing": true}]}]'
    assert parse_inventory(body) == Inventory()


# --------------------------------------------------------------------------------------------
# Bad input: ParseError, never another exception


def _one(group_type: str, device: str) -> bytes:
    """An inventory of one group holding one device, given as JSON text."""
    return f'[{{"type": "{group_type}", "devices": [{device}]}}]'.encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'[{"type": "PCU", "devices": [{"part_num": "800-0', id="truncated"),
        pytest.param(b"<!DOCTYPE html><html><body>login</body></html>", id="html"),
        pytest.param(b'{"error": "404 - Not Found"}', id="error-object"),
        pytest.param(b'{"type": "ACB"}', id="object"),
        pytest.param(b"[1]", id="group-number"),
        pytest.param(b'[{"type": 1, "devices": []}]', id="type-number"),
        pytest.param(b'[{"type": "PCU", "devices": {}}]', id="devices-object"),
        pytest.param(_one("PCU", '"x"'), id="device-string"),
        pytest.param(_one("PCU", '{"serial_num": 12}'), id="serial-number"),
        pytest.param(_one("PCU", '{"serial_num": "1", "producing": "yes"}'), id="flag-str"),
        pytest.param(_one("PCU", '{"serial_num": "1", "admin_state": "2"}'), id="admin-str"),
        pytest.param(_one("ACB", '{"serial_num": "1", "percentFull": "50"}'), id="soc-str"),
        pytest.param(_one("NSRB", '{"serial_num": "1", "relay": true}'), id="relay-bool"),
        pytest.param(_one("NSRB", '{"serial_num": "1", "line2-connected": 2}'), id="line-2"),
    ],
)
def test_bad_inventory(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_inventory(body)


def test_every_damaged_value_gives_a_result_or_parse_error() -> None:
    assert_damage_is_handled(parse_inventory, BODY)


def test_every_truncation_is_a_parse_error() -> None:
    assert_truncations_refused(parse_inventory, BODY)


# --------------------------------------------------------------------------------------------
# The real captures and what pyenphase asserts for them


def _expected() -> dict[str, Any]:
    return json.loads((SHARED_FIXTURES / "expected.json").read_text())


@needs_shared
def test_every_inventory_capture() -> None:
    paths = [*SHARED_FIXTURES.glob("*/inventory"), *SHARED_FIXTURES.glob("*/inventory.json_deleted_1")]
    assert len(paths) >= 4
    for path in paths:
        inventory = parse_inventory(path.read_bytes())
        raw = json.loads(path.read_bytes())
        live = {
            d["serial_num"] for g in raw for d in g["devices"] if d.get("admin_state") not in (0, 3)
        }  # the captures' live devices, all with the status flags
        assert {d.serial for d in inventory.devices} == live, path
        assert all(d.communicating is not None for d in inventory.devices), path
        assert all(d.firmware for d in inventory.devices), path


@needs_shared
def test_deleted_devices_of_8_3_5433_are_left_out() -> None:
    body = (SHARED_FIXTURES / "8.3.5433_tot_is_net_cons" / "inventory.json_deleted_1").read_bytes()
    inventory = parse_inventory(body)
    assert len(inventory.devices) == 12  # of 20 listed, 8 deleted (admin_state 3)
    assert {d.device_type for d in inventory.devices} == {"PCU"}
    assert sum(d.operating is False for d in inventory.devices) == 12


@needs_shared
def test_captures_match_pyenphase_acb_inventory() -> None:
    expected = _expected()
    acb_2 = expected["8.2.4382_ACB_2"]["asserted_acb_explicit"]
    acb_2_count = acb_2["acb_power_and_counts"]["acb_inventory_len"]
    acb_5169 = expected["8.3.5169_ACB_inventory"]["storage_and_ensemble"]["acb_inventory"]
    cases = [
        ("8.2.4382_ACB_2", acb_2["acb_inventory_devices"], acb_2_count),
        ("8.3.5169_ACB_inventory", acb_5169, len(acb_5169)),
    ]
    for name, devices, count in cases:
        inventory = parse_inventory((SHARED_FIXTURES / name / "inventory").read_bytes())
        batteries = {b.serial: b for b in inventory.batteries}
        assert len(batteries) == count, name  # "2 not decommissioned"
        for serial, values in devices.items():
            battery = batteries[serial]
            assert battery.battery_type == "acb"
            assert battery.soc_ratio == pytest.approx(values["percent_full"] / 100), serial
            if "max_cell_temp" in values:
                assert battery.temperature_c == values["max_cell_temp"], serial
            device = next(d for d in inventory.devices if d.serial == serial)
            if "part_num" in values:
                assert device.part_number == values["part_num"]
