"""The families beyond energy flows: settings, contacts, generator, grid controller, CT status, the
inverters' own production, batteries by type, device status codes and connectivity."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest
from exporter_fakes import NOW, FakeClient, rich_snapshot, samples, scrape, value

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.snapshot.model import (
    WH,
    Battery,
    Device,
    DryContact,
    Enpower,
    Generator,
    HomeStatus,
    MeterConfig,
    NetworkInterface,
    Reading,
    Snapshot,
    StorageGroup,
    StorageSettings,
)

GW = {"gateway": "site"}


def system_snapshot() -> Snapshot:
    base = rich_snapshot()
    production_meter, net_meter, storage_meter = base.meters
    return replace(
        base,
        meters=(
            replace(
                production_meter,
                config=replace(
                    production_meter.config,
                    metering_status="check-wiring",
                    status_flags=("production-imbalance", "negative-production"),
                ),
            ),
            net_meter,
            # disabled: its stale status says nothing
            replace(
                storage_meter,
                config=MeterConfig(
                    704643840, "storage", "disabled", None, 0, "not-metering", ("power-on-unused-phase",)
                ),
            ),
        ),
        inverters=(
            replace(base.inverters[0], last_report_duration_s=903.0, last_report_energy_j=216_000.0),
            base.inverters[1],
        ),
        devices=(
            *base.devices,
            Device(
                serial="999300000001",
                device_type="ENCHARGE",
                communicating=True,
                operating=False,
                last_report_s=NOW - 60,
                statuses=("envoy.global.ok", "prop.done"),
                admin_state="ENCHG_STATE_READY",
                grid_state="multimode-ongrid",
            ),
            Device(
                serial="999100000009",
                device_type="PCU",
                communicating=True,
                statuses=("envoy.cond_flags.pcu_ctrl.dc-pwr-low", "envoy.cond_flags.obs_strs.failure"),
            ),
        ),
        batteries=(
            replace(base.batteries[0], dc_switch_on=False),
            Battery(
                serial="999300000002", battery_type="acb", soc_ratio=0.25, power_w=-180.0, state="charging"
            ),
        ),
        enpower=Enpower(
            serial="999400000001",
            grid_connected=False,
            grid_enabled=False,
            grid_mode="multimode-offgrid",
            temperature_c=31.5,
        ),
        inverters_total=Reading(power_w=2900.0, lifetime_j=4900 * WH),
        storage_groups=(
            StorageGroup("acb", power_w=-180.0, state="charging"),
            StorageGroup("encharge", power_w=-500.0),
        ),
        storage_settings=StorageSettings(
            mode="economy", reserve_ratio=0.25, very_low_ratio=0.08, charge_from_grid=True
        ),
        dry_contacts=(DryContact("NC1", closed=True), DryContact("NO1", closed=False)),
        generator=Generator(present=True, relay_closed=True),
        home=HomeStatus(
            enlighten_connected=False,
            last_enlighten_report_s=NOW - 90_000,
            interfaces=(
                NetworkInterface("eth0", "ethernet", up=False),
                NetworkInterface("wlan0", "wifi", up=True, signal_ratio=0.6),
            ),
        ),
    )


def _scrape(snapshot: Snapshot) -> str:
    return scrape(GatewayCollector((FakeClient("site", snapshot),), 2.0, wall=lambda: NOW))


@pytest.fixture
def got() -> dict:
    return samples(_scrape(system_snapshot()))


def test_storage_settings(got):
    assert value(got, "enphase_storage_mode", **GW, mode="economy") == 1
    assert value(got, "enphase_storage_reserve_setting_ratio", **GW) == 0.25
    assert value(got, "enphase_storage_very_low_setting_ratio", **GW) == 0.08
    assert value(got, "enphase_storage_charge_from_grid", **GW) == 1


def test_controller_relays_and_grid(got):
    assert value(got, "enphase_dry_contact_closed", **GW, contact="NC1") == 1
    assert value(got, "enphase_dry_contact_closed", **GW, contact="NO1") == 0
    assert value(got, "enphase_generator_present", **GW) == 1
    assert value(got, "enphase_generator_relay_closed", **GW) == 1
    assert value(got, "enphase_grid_enabled", **GW) == 0
    assert value(got, "enphase_grid_connected", **GW) == 0
    assert value(got, "enphase_grid_mode", **GW, mode="multimode-offgrid") == 1
    assert value(got, "enphase_system_controller_temperature_celsius", **GW, serial="999400000001") == 31.5


def test_ct_metering_status_and_flags_of_enabled_meters_only(got):
    production = {**GW, "meter": "production"}
    assert value(got, "enphase_meter_metering_status", **production, status="check-wiring") == 1
    assert value(got, "enphase_meter_metering_status", **GW, meter="net-consumption", status="normal") == 1
    assert value(got, "enphase_meter_status_flag", **production, flag="production-imbalance") == 1
    assert value(got, "enphase_meter_status_flag", **production, flag="negative-production") == 1
    storage = [k for k in got if k[0].startswith("enphase_meter_") and ("meter", "storage") in k[1]]
    assert [k[0] for k in storage] == ["enphase_meter_info"]


def test_inverters_own_production_is_a_family_of_its_own(got):
    assert value(got, "enphase_inverters_power_watts", **GW) == 2900.0
    assert value(got, "enphase_inverters_energy_joules_total", **GW) == 4900 * WH
    production = [v for (name, _), v in got.items() if name == "enphase_production_power_watts"]
    assert production == [3000.0]  # sum() over production still counts once


def test_batteries_by_type_and_per_unit_state(got):
    assert value(got, "enphase_storage_power_watts", **GW, battery_type="acb") == -180.0
    assert value(got, "enphase_storage_power_watts", **GW, battery_type="encharge") == -500.0
    assert value(got, "enphase_storage_state", **GW, battery_type="acb", state="charging") == 1
    assert value(got, "enphase_battery_state", **GW, serial="999300000002", state="charging") == 1
    assert value(got, "enphase_battery_power_watts", **GW, serial="999300000002") == -180.0
    assert value(got, "enphase_battery_dc_switch_on", **GW, serial="999300000001") == 0


def test_device_status_flags_and_states(got):
    encharge = {**GW, "serial": "999300000001", "device_type": "ENCHARGE"}
    assert value(got, "enphase_device_communicating", **encharge) == 1
    assert value(got, "enphase_device_operating", **encharge) == 0
    assert value(got, "enphase_device_last_report_timestamp_seconds", **encharge) == NOW - 60
    assert value(got, "enphase_device_status", **encharge, status="envoy.global.ok") == 1
    assert value(got, "enphase_device_admin_state", **encharge, state="ENCHG_STATE_READY") == 1
    assert value(got, "enphase_device_grid_state", **encharge, state="multimode-ongrid") == 1
    pcu = {**GW, "serial": "999100000009", "device_type": "PCU"}
    assert value(got, "enphase_device_status", **pcu, status="envoy.cond_flags.pcu_ctrl.dc-pwr-low") == 1
    assert value(got, "enphase_device_status", **pcu, status="envoy.cond_flags.obs_strs.failure") == 1


def test_inverter_last_report_interval(got):
    inverter = {**GW, "serial": "999100000001"}
    assert value(got, "enphase_inverter_last_report_duration_seconds", **inverter) == 903.0
    assert value(got, "enphase_inverter_last_report_energy_joules", **inverter) == 216_000.0
    assert value(got, "enphase_inverter_last_report_duration_seconds", **GW, serial="999100000002") is None


def test_connectivity(got):
    assert value(got, "enphase_gateway_enlighten_connected", **GW) == 0
    assert value(got, "enphase_gateway_enlighten_last_report_timestamp_seconds", **GW) == NOW - 90_000
    assert value(got, "enphase_gateway_network_interface_up", **GW, interface="eth0", type="ethernet") == 0
    assert value(got, "enphase_gateway_network_interface_up", **GW, interface="wlan0", type="wifi") == 1
    assert value(got, "enphase_gateway_network_signal_ratio", **GW, interface="wlan0", type="wifi") == 0.6
    assert value(got, "enphase_gateway_network_signal_ratio", **GW, interface="eth0", type="ethernet") is None


NEW_FAMILIES = (
    "enphase_storage_mode",
    "enphase_storage_reserve_setting_ratio",
    "enphase_dry_contact_closed",
    "enphase_generator_present",
    "enphase_grid_enabled",
    "enphase_grid_mode",
    "enphase_inverters_power_watts",
    "enphase_storage_power_watts",
    "enphase_device_status",
    "enphase_gateway_enlighten_connected",
    "enphase_gateway_network_interface_up",
)


def test_not_reported_means_absent():
    got = samples(_scrape(rich_snapshot()))
    assert [name for name in NEW_FAMILIES if any(k[0].startswith(name) for k in got)] == []


promtool = shutil.which("promtool")


@pytest.mark.e2e
@pytest.mark.skipif(promtool is None, reason="promtool is not installed")
def test_promtool_accepts_the_new_families():
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=_scrape(system_snapshot()),
        capture_output=True,
        text=True,
        timeout=30,
    )
    # The contract's names pass promtool's lints: no exception accepted.
    assert (result.stdout + result.stderr).strip() == ""
    assert result.returncode == 0
