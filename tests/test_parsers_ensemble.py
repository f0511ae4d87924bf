"""The Ensemble endpoints: IQ Batteries, the system controller or Meter Collar, the aggregate."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_FIXTURES, needs_shared
from parser_mutations import assert_damage_is_handled, assert_truncations_refused

from envoy_exporter.snapshot.model import WH, Battery, Device, Enpower, Ensemble, StorageAggregate
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.ensemble import (
    parse_ensemble_inventory,
    parse_ensemble_power,
    parse_secctrl,
)

ENSEMBLE = FIXTURES / "ensemble"


def _body(name: str) -> bytes:
    return (ENSEMBLE / name).read_bytes()


def _fahrenheit(value: float) -> float:
    return (value - 32) * 5 / 9


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/inventory


def test_encharge_and_enpower() -> None:
    ensemble = parse_ensemble_inventory(_body("ivp_ensemble_inventory_enpower.json"))
    assert ensemble.batteries == (
        Battery(
            serial="482409010001",
            battery_type="encharge",
            soc_ratio=0.73,
            capacity_j=3500 * WH,
            temperature_c=24.0,
            communicating=True,
            dc_switch_on=True,
        ),
        Battery(
            serial="482409010002",
            battery_type="encharge",
            soc_ratio=0.71,
            capacity_j=3500 * WH,
            temperature_c=25.0,
            communicating=False,
            operating=True,
            dc_switch_on=True,
        ),
    )
    assert ensemble.enpower == Enpower(
        serial="482408020001",
        grid_connected=True,
        grid_enabled=True,
        grid_mode="multimode-ongrid",
        temperature_c=pytest.approx(35.0),  # 95 °F
        communicating=True,
    )
    assert ensemble.aggregate is None


def test_ensemble_devices_with_flags_status_and_states() -> None:
    devices = parse_ensemble_inventory(_body("ivp_ensemble_inventory_enpower.json")).devices
    assert [(d.serial, d.device_type) for d in devices] == [
        ("482409010001", "ENCHARGE"),
        ("482409010002", "ENCHARGE"),
        ("482408020001", "ENPOWER"),
    ]
    assert devices[2] == Device(
        serial="482408020001",
        device_type="ENPOWER",
        part_number="860-00276-r50",
        firmware="1.2.2064_release/20.34",
        communicating=True,
        last_report_s=1767225390.0,
        statuses=("envoy.global.ok", "prop.done"),
        admin_state="ENPWR_STATE_OPER_CLOSED",
        grid_state="multimode-ongrid",
    )
    assert devices[1].operating is True and devices[1].communicating is False


def test_collar_and_its_combiner_as_devices() -> None:
    devices = parse_ensemble_inventory(_body("ivp_ensemble_inventory_collar.json")).devices
    collar = next(d for d in devices if d.device_type == "COLLAR")
    assert (collar.communicating, collar.grid_state) == (True, "off_grid")
    assert collar.admin_state is not None
    assert {d.device_type for d in devices} >= {"COLLAR", "ENCHARGE"}


def test_a_battery_with_its_dc_switch_off() -> None:
    device = {"serial_num": "3", "dc_switch_off": True}
    body = json.dumps([{"type": "ENCHARGE", "devices": [device]}]).encode()
    (battery,) = parse_ensemble_inventory(body).batteries
    assert battery.dc_switch_on is False


def test_collar_stands_in_for_the_system_controller() -> None:
    ensemble = parse_ensemble_inventory(_body("ivp_ensemble_inventory_collar.json"))
    assert ensemble.enpower == Enpower(
        serial="482510040001",
        grid_connected=False,  # mid_state "open": the home is islanded
        grid_mode="off_grid",
        temperature_c=31.0,  # the collar reports °C
        communicating=True,
    )
    # The C6 combiner controller and RGM are not batteries or grid relays.
    assert [b.serial for b in ensemble.batteries] == ["492410030001"]
    assert ensemble.batteries[0].capacity_j == 5000 * WH


@pytest.mark.parametrize(
    ("mid_state", "connected"), [("close", True), ("closed", True), ("open", False), (None, None)]
)
def test_collar_grid_connection_follows_its_mid_relay(mid_state: str | None, connected: bool | None) -> None:
    device: dict[str, Any] = {"serial_num": "9", "grid_state": "on_grid"}
    if mid_state is not None:
        device["mid_state"] = mid_state
    body = json.dumps([{"type": "COLLAR", "devices": [device]}]).encode()
    enpower = parse_ensemble_inventory(body).enpower
    assert enpower is not None and enpower.grid_connected is connected


def test_enpower_open_mains_relay_and_an_explicit_unit() -> None:
    device = {"serial_num": "1", "mains_oper_state": "open", "temperature": 30, "temperature_unit": "C"}
    body = json.dumps([{"type": "ENPOWER", "devices": [device]}]).encode()
    assert parse_ensemble_inventory(body).enpower == Enpower(
        serial="1", grid_connected=False, temperature_c=30.0
    )


def test_an_encharge_in_fahrenheit_where_the_gateway_says_so() -> None:
    device = {"serial_num": "2", "temperature": 77, "temperature_unit": "F"}
    body = json.dumps([{"type": "ENCHARGE", "devices": [device]}]).encode()
    (battery,) = parse_ensemble_inventory(body).batteries
    assert battery.temperature_c == pytest.approx(25.0)


def test_no_ensemble_devices() -> None:
    assert parse_ensemble_inventory(b"[]") == Ensemble()
    assert (
        parse_ensemble_inventory(b'[{"type": "ENCHARGE", "devices": []}, {"type": "ENPOWER"}]') == Ensemble()
    )


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/secctrl


def test_secctrl_encharge_aggregate() -> None:
    assert parse_secctrl(_body("ivp_ensemble_secctrl_encharge.json")) == Ensemble(
        aggregate=StorageAggregate(
            soc_ratio=0.72,
            available_j=5040 * WH,
            capacity_j=7000 * WH,
            reserve_ratio=0.30,  # adjusted_backup_soc, the reserve in force, not the configured 25
        )
    )


def test_secctrl_with_acbs_is_the_all_battery_aggregate() -> None:
    assert parse_secctrl(_body("ivp_ensemble_secctrl_acb.json")).aggregate == StorageAggregate(
        soc_ratio=0.48,  # agg_soc, not the Encharge's 55
        available_j=(1925 + 465) * WH,  # Encharge + ACB
        capacity_j=5000 * WH,  # Max_energy, not the Encharge's 3500
        reserve_ratio=0.10,
    )


def test_secctrl_with_empty_acbs_still_counts_their_capacity() -> None:
    body = json.dumps(
        {"agg_soc": 30, "Max_energy": 4700, "ENC_agg_soc": 40, "ENC_agg_avail_energy": 1400}
        | {"Enc_max_available_capacity": 3500, "ACB_agg_soc": 0, "ACB_agg_energy": 0}
    ).encode()
    assert parse_secctrl(body).aggregate == StorageAggregate(
        soc_ratio=0.30, available_j=1400 * WH, capacity_j=4700 * WH
    )


def test_secctrl_without_batteries_has_no_aggregate() -> None:
    # A system controller without batteries (8.2.4345) answers zeros and a configured reserve.
    body = b'{"configured_backup_soc": 43, "adjusted_backup_soc": 43, "agg_soc": 0, "Max_energy": 0, ' + (
        b'"ENC_agg_soc": 0, "ENC_agg_avail_energy": 0, "Enc_max_available_capacity": 0, "ACB_agg_energy": 0}'
    )
    assert parse_secctrl(body) == Ensemble()


def test_secctrl_reserve_falls_back_to_the_configured_one() -> None:
    body = b'{"configured_backup_soc": 15, "ENC_agg_soc": 50, "Enc_max_available_capacity": 1000}'
    aggregate = parse_secctrl(body).aggregate
    assert aggregate == StorageAggregate(soc_ratio=0.5, capacity_j=1000 * WH, reserve_ratio=0.15)


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/power


def test_power_per_battery_with_the_gateways_sign() -> None:
    assert parse_ensemble_power(_body("ivp_ensemble_power.json")).batteries == (
        Battery(serial="482409010001", battery_type="encharge", soc_ratio=0.73, power_w=1250.5),
        Battery(serial="482409010002", battery_type="encharge", soc_ratio=0.71, power_w=-840.0),
        Battery(serial="482409010003", battery_type="encharge", soc_ratio=1.0, power_w=0.0),
    )


def test_power_accepts_the_key_without_its_colon() -> None:
    body = b'{"devices": [{"serial_num": "7", "real_power_mw": -1500, "soc": 12}]}'
    assert parse_ensemble_power(body).batteries == (
        Battery(serial="7", battery_type="encharge", soc_ratio=0.12, power_w=-1.5),
    )


def test_power_without_batteries() -> None:
    assert parse_ensemble_power(b'{"devices:": []}') == Ensemble()


# --------------------------------------------------------------------------------------------
# Bad input: ParseError, never another exception

BAD_COMMON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="blank"),
    pytest.param(b"<html>\r\n<head><title>401 Authorization Required</title></head>", id="html"),
    pytest.param(b'{"error": "404 - Not Found"}', id="error-object"),
    pytest.param(b"null", id="null"),
    pytest.param(b"42", id="number"),
]


@pytest.mark.parametrize(
    "body",
    [
        *BAD_COMMON,
        pytest.param(b'[{"type": "ENCHARGE", "devices": [{"serial_num": "1", "perc', id="truncated"),
        pytest.param(b'[{"type": "ENCHARGE", "devices": {}}]', id="devices-object"),
        pytest.param(b'[{"type": "ENCHARGE", "devices": [7]}]', id="device-number"),
        pytest.param(b'[{"type": ["ENPOWER"], "devices": []}]', id="type-list"),
        pytest.param(b'[{"type": "ENCHARGE", "devices": [{"serial_num": 1}]}]', id="serial-number"),
        pytest.param(
            b'[{"type": "ENCHARGE", "devices": [{"serial_num": "1", "percentFull": "9"}]}]', id="soc-str"
        ),
        pytest.param(
            b'[{"type": "ENPOWER", "devices": [{"serial_num": "1", "temperature": true}]}]', id="t-bool"
        ),
        pytest.param(
            b'[{"type": "ENPOWER", "devices": [{"serial_num": "1", "mains_oper_state": 1}]}]', id="mains"
        ),
        pytest.param(
            b'[{"type": "COLLAR", "devices": [{"serial_num": "1", "mid_state": false}]}]', id="mid-bool"
        ),
    ],
)
def test_bad_ensemble_inventory(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_ensemble_inventory(body)


@pytest.mark.parametrize(
    "body",
    [
        *BAD_COMMON,
        pytest.param(b'{"agg_soc": 39, "Max_en', id="truncated"),
        pytest.param(b"[]", id="list"),
        pytest.param(b'{"shutdown": false}', id="no-aggregate"),
        pytest.param(b'{"ENC_agg_soc": "50", "Enc_max_available_capacity": 100}', id="soc-str"),
        pytest.param(b'{"ENC_agg_soc": 50, "Enc_max_available_capacity": [100]}', id="capacity-list"),
        pytest.param(b'{"agg_soc": 50, "Max_energy": 100, "ACB_agg_energy": true}', id="acb-bool"),
        pytest.param(
            b'{"ENC_agg_soc": 50, "Enc_max_available_capacity": 1, "adjusted_backup_soc": "x"}', id="rsv"
        ),
    ],
)
def test_bad_secctrl(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_secctrl(body)


@pytest.mark.parametrize(
    "body",
    [
        *BAD_COMMON,
        pytest.param(b'{"devices:": [{"serial_num": "1", "real_power_mw": 10', id="truncated"),
        pytest.param(b"[]", id="list"),
        pytest.param(b'{"devices:": null}', id="devices-null"),
        pytest.param(b'{"devices:": {"serial_num": "1"}}', id="devices-object"),
        pytest.param(b'{"devices:": ["1"]}', id="device-string"),
        pytest.param(b'{"devices:": [{"serial_num": "1", "real_power_mw": "10"}]}', id="power-str"),
        pytest.param(b'{"devices:": [{"serial_num": "1", "soc": false}]}', id="soc-bool"),
    ],
)
def test_bad_ensemble_power(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_ensemble_power(body)


GOOD = [
    (parse_ensemble_inventory, "ivp_ensemble_inventory_enpower.json"),
    (parse_ensemble_inventory, "ivp_ensemble_inventory_collar.json"),
    (parse_secctrl, "ivp_ensemble_secctrl_acb.json"),
    (parse_ensemble_power, "ivp_ensemble_power.json"),
]


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_damaged_value_gives_a_result_or_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_damage_is_handled(parse, _body(name))


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_truncation_is_a_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_truncations_refused(parse, _body(name))


# --------------------------------------------------------------------------------------------
# The real captures and what pyenphase asserts for them


def _storage_expectations() -> dict[str, dict[str, Any]]:
    expected = json.loads((SHARED_FIXTURES / "expected.json").read_text())
    return {name: e["storage_and_ensemble"] for name, e in expected.items() if e.get("storage_and_ensemble")}


def _parse_capture(parse: Callable[[bytes], Ensemble], name: str, file: str) -> Ensemble:
    return parse((SHARED_FIXTURES / name / file).read_bytes())


def _celsius(value: float, unit: str) -> float:
    return _fahrenheit(value) if unit == "F" else value


@needs_shared
@pytest.mark.parametrize(
    ("parse", "file"),
    [
        (parse_ensemble_inventory, "ivp_ensemble_inventory"),
        (parse_secctrl, "ivp_ensemble_secctrl"),
        (parse_ensemble_power, "ivp_ensemble_power"),
    ],
)
def test_every_capture_parses_or_is_refused(parse: Callable[[bytes], Ensemble], file: str) -> None:
    parsed = refused = 0
    for path in SHARED_FIXTURES.glob(f"*/{file}"):
        body = path.read_bytes()
        try:
            parse(body)
        except ParseError:
            # only the 404 object and the 401 HTML page are refused
            assert b"404 - Not Found" in body or b"401 Authorization Required" in body, path
            refused += 1
        else:
            parsed += 1
    assert parsed >= 10 and refused >= 3


@needs_shared
def test_captures_match_pyenphase_encharge_inventory_and_power() -> None:
    checked = 0
    for name, storage in _storage_expectations().items():
        if "encharge_inventory" in storage:
            batteries = {
                b.serial: b
                for b in _parse_capture(parse_ensemble_inventory, name, "ivp_ensemble_inventory").batteries
            }
            assert set(batteries) == set(storage["encharge_inventory"]), name
            for serial, values in storage["encharge_inventory"].items():
                battery = batteries[serial]
                assert battery.soc_ratio == pytest.approx(values["percent_full"] / 100)
                assert battery.capacity_j == values["encharge_capacity"] * WH
                assert battery.temperature_c == pytest.approx(
                    _celsius(values["temperature"], values["temperature_unit"])
                )
                assert battery.communicating is values["communicating"]
                assert battery.operating is values["operating"]
                checked += 1
        if "encharge_power" in storage:
            powers = {
                b.serial: b
                for b in _parse_capture(parse_ensemble_power, name, "ivp_ensemble_power").batteries
            }
            assert set(powers) == set(storage["encharge_power"]), name
            for serial, values in storage["encharge_power"].items():
                assert powers[serial].power_w == pytest.approx(values["real_power_mw"] / 1000)
                assert powers[serial].soc_ratio == pytest.approx(values["soc"] / 100)
                checked += 1
    assert checked >= 30


@needs_shared
def test_captures_match_pyenphase_enpower_and_collar() -> None:
    checked = 0
    for name, storage in _storage_expectations().items():
        controller = _parse_capture(parse_ensemble_inventory, name, "ivp_ensemble_inventory").enpower
        if "enpower" in storage:
            values = storage["enpower"]
            assert controller == Enpower(
                serial=values["serial_number"],
                grid_connected=values["mains_oper_state"] == "closed",
                grid_enabled=values["mains_admin_state"] == "closed",
                grid_mode=values["grid_mode"],
                temperature_c=pytest.approx(_celsius(values["temperature"], values["temperature_unit"])),
                communicating=values["communicating"],
            ), name
            checked += 1
        if "collar" in storage:
            values = storage["collar"]
            assert controller is not None and controller.serial == values["serial_number"]
            assert controller.grid_connected is (values["mid_state"] == "close")
            assert controller.grid_mode == values["grid_state"]
            checked += 1
    assert checked == 6  # five Enpowers and one collar


@needs_shared
def test_captures_match_pyenphase_storage_aggregate() -> None:
    checked = 0
    for name, storage in _storage_expectations().items():
        expected = storage.get("battery_aggregate") or storage.get("encharge_aggregate")
        if not expected:
            continue
        aggregate = _parse_capture(parse_secctrl, name, "ivp_ensemble_secctrl").aggregate
        if not expected["max_available_capacity"]:
            assert aggregate is None, name  # no batteries behind the system controller
            checked += 1
            continue
        assert aggregate is not None, name
        assert aggregate.soc_ratio == pytest.approx(expected["state_of_charge"] / 100), name
        assert aggregate.available_j == pytest.approx(expected["available_energy"] * WH), name
        assert aggregate.capacity_j == pytest.approx(expected["max_available_capacity"] * WH), name
        reserve = storage.get("encharge_aggregate", {}).get("reserve_state_of_charge")
        if reserve is not None:
            assert aggregate.reserve_ratio == pytest.approx(reserve / 100), name
        checked += 1
    assert checked == 7
