"""Snapshot → metric families, exactly as the metrics contract names them."""

from __future__ import annotations

import gc
import logging
import platform
import shutil
import subprocess
import threading
import time
from dataclasses import replace

import pytest
from exporter_fakes import NOW, FakeClient, rich_snapshot, samples, scrape, value
from prometheus_client.parser import text_string_to_metric_families

from envoy_exporter import __version__
from envoy_exporter.collector import ExporterCollector, GatewayCollector, Lateness, scrape_timeout
from envoy_exporter.config.settings import COLLECTION_DEADLINE
from envoy_exporter.revision import revision
from envoy_exporter.snapshot.model import WH, EndpointResult, Flow, Reading, Reported, Snapshot
from envoy_exporter.snapshot.outcome import Outcome


def collector(*clients: FakeClient, timeout: float = 2.0) -> GatewayCollector:
    return GatewayCollector(clients, timeout, wall=lambda: NOW)


def scrape_clients(*clients: FakeClient, timeout: float = 2.0) -> dict:
    return samples(scrape(collector(*clients, timeout=timeout), ExporterCollector()))


@pytest.fixture
def rich() -> dict:
    client = FakeClient(
        "home", requests={("info", "200"): 3, ("production_json", "401"): 1}, token_expiry=NOW + 86400
    )
    return scrape_clients(client)


def test_production_series(rich):
    assert value(rich, "enphase_production_power_watts", gateway="home", source="meter") == 3000.0
    assert value(rich, "enphase_production_energy_joules_total", gateway="home", source="meter") == 5000 * WH
    assert value(rich, "enphase_production_energy_today_joules", gateway="home") == 12 * WH
    assert value(rich, "enphase_production_energy_seven_day_joules", gateway="home") == 80 * WH
    assert (
        value(rich, "enphase_production_phase_power_watts", gateway="home", source="meter", phase="L2")
        == 1001.0
    )
    assert (
        value(
            rich, "enphase_production_phase_energy_joules_total", gateway="home", source="meter", phase="L3"
        )
        == 1650 * WH
    )


def test_reported_production_is_exported_for_auditing():
    corrected = replace(
        rich_snapshot(),
        reported=(
            Reported("production", "meter", "", 1234 * WH),
            Reported("production", "meter", "L1", 400 * WH),
            Reported("consumption", "total", "", 9000 * WH),
        ),
    )
    got = scrape_clients(FakeClient("home", corrected))
    assert (
        value(got, "enphase_production_energy_reported_joules", gateway="home", source="meter") == 1234 * WH
    )
    assert [k for k in got if k[0] == "enphase_production_energy_reported_joules"] == [
        ("enphase_production_energy_reported_joules", frozenset({("gateway", "home"), ("source", "meter")}))
    ]
    assert value(got, "enphase_production_energy_joules_total", gateway="home", source="meter") == 5000 * WH


def test_consumption_series(rich):
    assert value(rich, "enphase_consumption_power_watts", gateway="home", measurement="total") == 1200.0
    assert value(rich, "enphase_consumption_power_watts", gateway="home", measurement="net") == -1800.0
    assert (
        value(rich, "enphase_consumption_energy_joules_total", gateway="home", measurement="total")
        == 9000 * WH
    )
    # Net lifetime falls while exporting: a gauge, and never a counter labelled "net".
    assert value(rich, "enphase_net_consumption_energy_joules", gateway="home") == -250 * WH
    assert value(rich, "enphase_consumption_energy_joules_total", gateway="home", measurement="net") is None
    assert (
        value(rich, "enphase_consumption_energy_today_joules", gateway="home", measurement="total") == 7 * WH
    )
    assert (
        value(rich, "enphase_consumption_energy_seven_day_joules", gateway="home", measurement="total")
        == 60 * WH
    )
    assert (
        value(rich, "enphase_consumption_phase_power_watts", gateway="home", measurement="net", phase="L1")
        == -600
    )
    assert (
        value(
            rich,
            "enphase_consumption_phase_energy_joules_total",
            gateway="home",
            measurement="total",
            phase="L1",
        )
        == 3000 * WH
    )
    assert value(rich, "enphase_net_consumption_phase_energy_joules", gateway="home", phase="L1") == -100 * WH


def test_meter_series(rich):
    info = {
        "gateway": "home",
        "meter": "production",
        "eid": "704643328",
        "phase_mode": "three",
        "phase_count": "3",
    }
    assert value(rich, "enphase_meter_info", **info, state="enabled") == 1
    disabled = {
        "gateway": "home",
        "meter": "storage",
        "eid": "704643840",
        "phase_mode": "",
        "phase_count": "0",
    }
    assert value(rich, "enphase_meter_info", **disabled, state="disabled") == 1
    assert value(rich, "enphase_meter_power_watts", gateway="home", meter="net-consumption") == -1800.0
    assert value(rich, "enphase_meter_reactive_power_var", gateway="home", meter="production") == -150.0
    assert (
        value(rich, "enphase_meter_apparent_power_voltamperes", gateway="home", meter="production") == 3100.0
    )
    assert (
        value(rich, "enphase_meter_energy_delivered_joules_total", gateway="home", meter="net-consumption")
        == 2000 * WH
    )
    assert (
        value(rich, "enphase_meter_energy_received_joules_total", gateway="home", meter="net-consumption")
        == 2250 * WH
    )
    phase = {"gateway": "home", "meter": "production", "phase": "L1"}
    assert value(rich, "enphase_meter_phase_voltage_volts", **phase) == 230.5
    assert value(rich, "enphase_meter_phase_current_amperes", **phase) == 4.4
    assert value(rich, "enphase_meter_phase_frequency_hertz", **phase) == 50.01
    assert value(rich, "enphase_meter_phase_power_factor", **phase) == 0.97
    assert value(rich, "enphase_meter_phase_power_watts", **phase) == 1000.0
    assert value(rich, "enphase_meter_phase_energy_delivered_joules_total", **phase) == 1700 * WH
    assert value(rich, "enphase_meter_phase_energy_received_joules_total", **phase) == 1 * WH
    # The meter-level voltage of a three-phase meter means little: the contract has none.
    assert not any(name == "enphase_meter_voltage_volts" for name, _ in rich)
    # The disabled meter has its info series only.
    assert not [k for k in rich if ("meter", "storage") in k[1] and k[0] != "enphase_meter_info"]


def test_inverter_device_relay_series(rich):
    one = {"gateway": "home", "serial": "999100000001"}
    expected = {
        "enphase_inverter_power_watts": 250.0,
        "enphase_inverter_max_power_watts": 290.0,
        "enphase_inverter_last_report_timestamp_seconds": NOW - 100,
        "enphase_inverter_energy_joules_total": 400 * WH,
        "enphase_inverter_energy_today_joules": 1.5 * WH,
        "enphase_inverter_dc_voltage_volts": 36.1,
        "enphase_inverter_dc_current_amperes": 7.2,
        "enphase_inverter_ac_voltage_volts": 231.0,
        "enphase_inverter_ac_current_amperes": 1.1,
        "enphase_inverter_ac_frequency_hertz": 50.0,
        "enphase_inverter_temperature_celsius": 41.0,
    }
    for name, want in expected.items():
        assert value(rich, name, **one) == want, name
    two = {"gateway": "home", "serial": "999100000002"}
    assert value(rich, "enphase_inverter_power_watts", **two) == 0.0  # a real 0 stays
    assert value(rich, "enphase_inverter_energy_joules_total", **two) is None  # not reported: absent
    pcu = {"gateway": "home", "serial": "999100000001", "device_type": "PCU"}
    assert (
        value(rich, "enphase_device_info", **pcu, part_number="800-01391-r03", firmware="520-00082-r01") == 1
    )
    for flag in ("producing", "communicating", "provisioned", "operating"):
        assert value(rich, f"enphase_device_{flag}", **pcu) == 1
    relay = {"gateway": "home", "serial": "999200000001"}
    assert value(rich, "enphase_device_communicating", **relay, device_type="NSRB") == 0
    assert value(rich, "enphase_device_producing", **relay, device_type="NSRB") is None
    assert value(rich, "enphase_relay_closed", **relay) == 1
    assert value(rich, "enphase_relay_line_connected", **relay, line="1") == 1
    assert value(rich, "enphase_relay_line_connected", **relay, line="2") == 0


def test_storage_series(rich):
    enc = {"gateway": "home", "serial": "999300000001"}
    assert value(rich, "enphase_battery_state_of_charge_ratio", **enc, battery_type="encharge") == 0.8
    assert value(rich, "enphase_battery_power_watts", **enc) == -500.0
    assert value(rich, "enphase_battery_capacity_joules", **enc) == 3360 * WH
    assert value(rich, "enphase_battery_temperature_celsius", **enc) == 25.0
    acb = {"gateway": "home", "serial": "999300000002"}
    assert value(rich, "enphase_battery_state_of_charge_ratio", **acb, battery_type="acb") == 0.25
    assert value(rich, "enphase_battery_power_watts", **acb) is None
    assert value(rich, "enphase_storage_state_of_charge_ratio", gateway="home") == 0.7
    assert value(rich, "enphase_storage_available_energy_joules", gateway="home") == 2352 * WH
    assert value(rich, "enphase_storage_capacity_joules", gateway="home") == 3360 * WH
    assert value(rich, "enphase_storage_reserve_ratio", gateway="home") == 0.3
    assert value(rich, "enphase_grid_connected", gateway="home") == 1


def test_health_series(rich):
    assert value(rich, "enphase_up", gateway="home") == 1
    assert value(rich, "enphase_scrape_duration_seconds", gateway="home") == 0.25
    assert value(rich, "enphase_data_age_seconds", gateway="home") == 2.0
    assert value(rich, "enphase_gateway_requests_total", gateway="home", endpoint="info", code="200") == 3
    assert (
        value(rich, "enphase_gateway_requests_total", gateway="home", endpoint="production_json", code="401")
        == 1
    )
    assert value(rich, "enphase_token_expiry_timestamp_seconds", gateway="home") == NOW + 86400
    info = {
        "serial": "999012345678",
        "firmware": "D8.2.4345",
        "part_number": "800-00999-r01",
        "metered": "true",
    }
    assert value(rich, "enphase_gateway_info", gateway="home", **info, auth="token") == 1
    assert value(rich, "enphase_endpoint_up", gateway="home", endpoint="production_json") == 1
    assert value(rich, "enphase_endpoint_up", gateway="home", endpoint="meter_readings") == 1  # from cache
    assert value(rich, "enphase_endpoint_up", gateway="home", endpoint="inventory") == 0
    assert (
        value(rich, "enphase_endpoint_up", gateway="home", endpoint="production_html") is None
    )  # unsupported
    build = {"version": __version__, "revision": revision(), "python_version": platform.python_version()}
    assert value(rich, "enphase_exporter_build_info", **build) == 1


def test_every_gateway_series_has_the_gateway_label(rich):
    for name, labels in rich:
        if name != "enphase_exporter_build_info":
            assert ("gateway", "home") in labels, name


def test_total_only_on_counters():
    text = scrape(collector(FakeClient("home", requests={("info", "200"): 1})), ExporterCollector())
    families = list(text_string_to_metric_families(text))
    assert {f.type for f in families} == {"gauge", "counter"}
    for family in families:
        for sample in family.samples:
            assert sample.name.endswith("_total") == (family.type == "counter"), sample.name


def test_none_values_are_absent_never_zero():
    sparse = Snapshot(
        collected_at=NOW,
        production_source="inverters",
        production=Flow(total=Reading(power_w=512.0)),
        consumption_net=Flow(total=Reading(power_w=None, lifetime_j=None)),
    )
    got = scrape_clients(FakeClient("shed", sparse, last_duration=None, auth_scheme=None))
    data = {name for name, _ in got if name not in ("enphase_up", "enphase_data_age_seconds")}
    assert data == {
        "enphase_production_power_watts",
        "enphase_exporter_build_info",
        "enphase_energy_corrections_total",
    }
    assert value(got, "enphase_production_power_watts", gateway="shed", source="inverters") == 512.0
    assert value(got, "enphase_up", gateway="shed") == 1
    assert value(got, "enphase_token_expiry_timestamp_seconds", gateway="shed") is None
    assert value(got, "enphase_scrape_duration_seconds", gateway="shed") is None


def test_no_production_means_down():
    snapshot = replace(rich_snapshot(), production=None)
    got = scrape_clients(FakeClient("home", snapshot))
    assert value(got, "enphase_up", gateway="home") == 0
    assert value(got, "enphase_consumption_power_watts", gateway="home", measurement="total") == 1200.0


def test_stale_snapshot_keeps_values_but_is_down():
    # The client hands back its last good snapshot, the failed endpoints of this collection marked,
    # and says it is not fresh.
    stale = replace(
        rich_snapshot(collected_at=NOW - 95.0),
        endpoints={
            "production_json": EndpointResult(Outcome.TIMEOUT),
            "meter_readings": EndpointResult(Outcome.TIMEOUT),
        },
    )
    got = scrape_clients(FakeClient("home", stale, fresh=False))
    assert value(got, "enphase_up", gateway="home") == 0
    assert value(got, "enphase_data_age_seconds", gateway="home") == 95.0
    assert value(got, "enphase_production_power_watts", gateway="home", source="meter") == 3000.0
    assert value(got, "enphase_endpoint_up", gateway="home", endpoint="production_json") == 0


def test_a_gateway_past_the_deadline_serves_its_last_snapshot_as_down():
    client = FakeClient("slow")
    first = samples(scrape(collector(client, timeout=1.0)))
    assert value(first, "enphase_up", gateway="slow") == 1
    client.hold = 30.0
    started = time.monotonic()
    second = samples(scrape(collector(client, timeout=0.2)))
    assert time.monotonic() - started < 10.0  # not the 30 s the gateway holds
    assert value(second, "enphase_up", gateway="slow") == 0
    assert value(second, "enphase_production_power_watts", gateway="slow", source="meter") == 3000.0
    # Its endpoints keep the verdict of the last finished collection: a slow gateway is not
    # a failed one, and a first collection that takes longer than a scrape shows no failure.
    assert value(second, "enphase_endpoint_up", gateway="slow", endpoint="production_json") == 1
    # A scrape arriving while the gateway still holds joins the collection in flight.
    samples(scrape(collector(client, timeout=0.1)))
    assert client.calls == 2
    client.release.set()


def test_a_later_scrape_with_a_longer_budget_gets_the_collection_it_joined():
    # Scrape A (0.2 s) starts a collection that takes 1 s; scrape B joins it 50 ms later with 5 s
    # to spare. B waits for it and is up; A gave up on it and is not. Neither takes the other's
    # deadline.
    client = FakeClient("slow", hold=1.0)
    got: dict[str, dict] = {}
    a = threading.Thread(target=lambda: got.update(a=scrape_clients(client, timeout=0.2)))
    a.start()
    time.sleep(0.05)
    started = time.monotonic()
    got["b"] = scrape_clients(client, timeout=5.0)
    waited = time.monotonic() - started
    a.join(5)
    assert client.calls == 1
    assert 0.5 < waited < 4.0
    assert value(got["b"], "enphase_up", gateway="slow") == 1
    assert value(got["b"], "enphase_data_age_seconds", gateway="slow") == 2.0
    assert value(got["a"], "enphase_up", gateway="slow") == 0
    assert value(got["a"], "enphase_production_power_watts", gateway="slow", source="meter") is None


def test_counter_corrections_are_exported_by_kind():
    got = scrape_clients(FakeClient("home"))
    assert value(got, "enphase_energy_corrections_total", gateway="home", kind="wrap") == 1
    assert value(got, "enphase_energy_corrections_total", gateway="home", kind="jump") == 0


def test_a_gateway_that_never_answered_shows_only_that_it_is_down_and_since_when():
    client = FakeClient("dead", hold=30.0, requests={("info", "timeout"): 1}, born=NOW - 300.0)
    got = scrape_clients(client, timeout=0.1)
    client.release.set()
    assert {name for name, _ in got} == {
        "enphase_up",
        "enphase_data_age_seconds",
        "enphase_scrape_duration_seconds",
        "enphase_gateway_requests_total",
        "enphase_energy_corrections_total",
        "enphase_exporter_build_info",
    }
    assert value(got, "enphase_up", gateway="dead") == 0
    # No data yet: its age counts from the exporter's start, not from now.
    assert value(got, "enphase_data_age_seconds", gateway="dead") == 300.0


def test_a_client_that_raises_costs_only_its_own_series():
    class Broken(FakeClient):
        def start(self):
            raise RuntimeError("bug")

    got = scrape_clients(Broken("broken"), FakeClient("fine"))
    assert value(got, "enphase_up", gateway="broken") == 0
    assert value(got, "enphase_up", gateway="fine") == 1


def test_several_gateways_share_each_family():
    got = scrape_clients(FakeClient("a"), FakeClient("b"))  # samples() asserts no duplicate series
    assert value(got, "enphase_production_power_watts", gateway="a", source="meter") == 3000.0
    assert value(got, "enphase_production_power_watts", gateway="b", source="meter") == 3000.0


def test_a_scrape_waits_no_longer_than_its_budget_and_the_collection_goes_on():
    client = FakeClient("home", hold=30.0)
    started = time.monotonic()
    first = scrape_clients(client, timeout=0.3)
    assert 0.25 < time.monotonic() - started < 5.0
    assert value(first, "enphase_up", gateway="home") == 0
    client.release.set()  # the collection finishes after the scrape gave up on it
    for _ in range(100):
        if client.start().done():
            break
        time.sleep(0.01)
    second = scrape_clients(client, timeout=2.0)
    assert value(second, "enphase_up", gateway="home") == 1


def test_making_a_scrape_never_collects():
    client = FakeClient("home")
    collector(client)
    assert client.calls == 0


@pytest.mark.parametrize(
    ("header", "budget"),
    [
        (None, 8.5),
        ("10", 8.5),
        ("30", 26.5),
        ("abc", 8.5),
        ("-1", 8.5),
        ("inf", 8.5),
        ("nan", 8.5),
        ("0.5", 0.5),
        # Clamped to what a collection may take: past threading.TIMEOUT_MAX a wait overflows.
        ("1e300", COLLECTION_DEADLINE),
        ("3600", COLLECTION_DEADLINE),
    ],
)
def test_scrape_timeout(header, budget):
    assert scrape_timeout(header) == pytest.approx(budget)


def test_a_huge_scrape_timeout_still_scrapes():
    got = scrape_clients(FakeClient("home"), timeout=scrape_timeout("1e300"))
    assert value(got, "enphase_up", gateway="home") == 1


promtool = shutil.which("promtool")


@pytest.mark.e2e
@pytest.mark.skipif(promtool is None, reason="promtool is not installed")
def test_promtool_accepts_a_full_scrape():
    clients = [
        FakeClient(
            "home", requests={("info", "200"): 3, ("meter_readings", "timeout"): 1}, token_expiry=NOW + 60
        ),
        FakeClient("barn", replace(rich_snapshot(), production_source="legacy"), auth_scheme="digest"),
    ]
    text = scrape(collector(*clients), ExporterCollector())
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    # The contract's names pass promtool's lints: no exceptions, not even warnings.
    assert (result.stdout + result.stderr).strip() == ""
    assert result.returncode == 0


def test_a_gateway_too_slow_for_the_scrapes_is_told_when_it_starts_and_when_it_ends(caplog) -> None:
    slow, late = FakeClient("slow", hold=30.0), Lateness()
    with caplog.at_level(logging.INFO, logger="envoy_exporter.collector.scrape"):
        for _ in range(3):
            scrape(GatewayCollector([slow], 0.05, late=late))
        slow.release.set()
        for _ in range(2):
            scrape(GatewayCollector([slow], 5.0, late=late))
    assert [r.getMessage() for r in caplog.records if r.name == "envoy_exporter.collector.scrape"] == [
        "slow: the collection takes longer than the scrape allows; the last data is served",
        "slow: collections finish within the scrape's time again (after 0 s)",
    ]


def test_what_is_told_of_late_gateways_is_the_servers_and_leaves_with_the_gateway() -> None:
    slow, late = FakeClient("slow", hold=30.0), Lateness()
    scrape(GatewayCollector([slow], 0.05, late=late))
    assert len(late) == 1 and len(Lateness()) == 0  # nothing kept at module level
    slow.release.set()
    slow.start().result(5)
    del slow
    for _ in range(100):  # until the collection's thread has let go of the client
        gc.collect()
        if not len(late):
            break
        time.sleep(0.01)
    assert len(late) == 0
