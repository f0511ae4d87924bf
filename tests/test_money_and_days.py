"""Money and days on real captures: the rate in force in the gateway's time zone, import priced at
the import rate and export at the export rate, lifetimes that move with the CT on every scrape,
per-phase production from the CT's channels, the Meter Collar's relay within one scrape, and no
always-zero net series.

Each test replays a copy of a capture with ../shared's fake gateway (skipped without it) and
collects it with a ``GatewayClient`` on injected clocks at the default cache lifetimes; between
scrapes it changes the copy's answers the way the gateway's would change.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_FIXTURES, Clocks, load_fake_gateway, needs_shared
from prometheus_client.parser import text_string_to_metric_families

from envoy_exporter.collector.data import add_snapshot
from envoy_exporter.collector.exposition import gateway_labels, join
from envoy_exporter.collector.families import Families
from envoy_exporter.config.load import load_config
from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import WH, Rates, Tariff

pytestmark = [pytest.mark.e2e, needs_shared]

TOU = "8.2.127_with_3cts_and_battery_split"  # time-of-use tariff in USD, three CTs, split phase
COLLAR = "8.3.1598_collar"
NEW_YORK = "America/New_York"
# 8.2.127's summer weekday rates (USD per kWh) and its export rate (the single rate's ``sell``)
PEAK = 0.6300299763679504  # period_1, 16:00-21:00
SHOULDER = 0.5212500095367432  # period_2 15:00-16:00, period_3 21:00-23:59
OFF_PEAK = 0.321370005607605  # filler
SELL = 9.899999713525176e-05


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class Site:
    """A copy of one capture served by the fake gateway, and a client collecting it."""

    def __init__(self, tmp: Path, capture: str, wall: float, **settings: Any) -> None:
        self.dir = tmp / capture
        shutil.copytree(SHARED_FIXTURES / capture, self.dir)
        self.gateway = load_fake_gateway().Gateway(self.dir)
        self.gateway.start()
        self.clocks = Clocks(wall=wall)
        self.state_dir = tmp / "state"
        self.settings = GatewaySettings(
            name="site",
            host=self.gateway.url,
            token=Secret(self.gateway.token) if self.gateway.token_era else None,
            **settings,
        )
        self.client = self._client()

    def _client(self) -> GatewayClient:
        return GatewayClient(self.settings, self.state_dir, clock=self.clocks.clock, wall=self.clocks.now)

    def restart(self, down_s: float) -> None:
        """The exporter stops, stays down ``down_s``, and starts again with its state_dir."""
        self.client.close()
        self.clocks.advance(down_s)
        self.client = self._client()

    def start_up(self) -> None:
        """The start-up's collection, as the exporter makes it (the live series only)."""
        self.client.start(first=True).result(timeout=60)

    def scrape(self, after_s: float = 0.0) -> dict[tuple[str, frozenset], float]:
        self.clocks.advance(after_s)
        families = Families()
        add_snapshot(families, gateway_labels("site"), self.client.collect(timeout=60))
        text = join([families.groups()], "text/plain; version=0.0.4; charset=utf-8").decode()
        return {
            (sample.name, frozenset(sample.labels.items()) - {("gateway", "site")}): sample.value
            for metric in text_string_to_metric_families(text)
            for sample in metric.samples
        }

    def edit(self, name: str, change: Callable[[Any], None]) -> None:
        """Change one answer of the copy (a JSON body) in place."""
        path = self.dir / name
        body, _ = json.JSONDecoder().raw_decode(path.read_text())
        change(body)
        path.write_text(json.dumps(body))

    def close(self) -> None:
        self.client.close()
        self.gateway.stop()


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(capture: str, wall: float, **settings: Any) -> Site:
        made.append(Site(tmp_path, capture, wall, **settings))
        return made[-1]

    yield make
    for site in made:
        site.close()


@pytest.fixture
def exporter_in_utc() -> Iterator[None]:
    """The exporter's own local time is UTC, as in a container."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _meter(readings: list, eid_of: dict, measurement: str) -> dict:
    return next(r for r in readings if eid_of[r["eid"]] == measurement)


def add_energy(site: Site, measurement: str, delivered_wh: float = 0.0, received_wh: float = 0.0) -> None:
    """The CT ``measurement`` meters ``delivered_wh`` / ``received_wh`` more, on its first channel."""
    meters, _ = json.JSONDecoder().raw_decode((site.dir / "ivp_meters").read_text())
    eid_of = {m["eid"]: m["measurementType"] for m in meters}

    def change(readings: list) -> None:
        meter = _meter(readings, eid_of, measurement)
        for part in (meter, meter["channels"][0]):
            part["actEnergyDlvd"] += delivered_wh
            part["actEnergyRcvd"] += received_wh

    site.edit("ivp_meters_readings", change)


# --------------------------------------------------------------------------------------------
# The rate in force


@pytest.mark.parametrize(
    ("moment", "rate"),
    [
        ("2024-07-03 20:30", PEAK),  # Wednesday 16:30 EDT
        ("2024-07-03 01:00", SHOULDER),  # Tuesday 21:00 EDT: 01:00 in UTC would be off-peak
        ("2024-07-03 12:00", OFF_PEAK),  # 08:00 EDT
        ("2024-01-06 21:10", 0.5047900080680847),  # Saturday 16:10 EST: winter's period_1
    ],
)
def test_the_rate_in_force_in_the_gateways_time_zone(sites, moment: str, rate: float) -> None:
    samples = sites(TOU, _utc(moment), timezone=NEW_YORK).scrape()
    price = "enphase_tariff_price_per_kilowatt_hour"
    assert value(samples, price, direction="import", currency="USD") == pytest.approx(rate)
    assert value(samples, price, direction="export", currency="USD") == pytest.approx(SELL)
    assert value(samples, "enphase_gateway_utc_offset_seconds") == (
        -4 * 3600 if moment.startswith("2024-07") else -5 * 3600
    )


def test_the_time_zone_the_gateway_reports_when_none_is_configured(sites) -> None:
    # The Collar's /home.json says US/Eastern; 16:00-19:00 on weekdays is its peak (0.375 USD).
    samples = sites(COLLAR, _utc("2025-07-16 20:30")).scrape()  # Wednesday 16:30 EDT
    assert value(samples, "enphase_gateway_utc_offset_seconds") == -4 * 3600
    price = "enphase_tariff_price_per_kilowatt_hour"
    assert value(samples, price, direction="import", currency="USD") == pytest.approx(0.375)
    assert value(samples, "enphase_tariff_period", direction="import", period="peak-1_") == 1


# --------------------------------------------------------------------------------------------
# Cost and credit


def test_import_costs_the_import_rate_and_export_earns_the_export_rate(sites) -> None:
    site = sites(TOU, _utc("2024-07-03 20:30"), timezone=NEW_YORK)
    first = site.scrape()
    assert value(first, "enphase_grid_import_cost_total", currency="USD") == 0.0
    assert value(first, "enphase_grid_export_credit_total", currency="USD") == 0.0
    add_energy(site, "net-consumption", delivered_wh=40, received_wh=20)
    second = site.scrape(after_s=60)
    assert value(second, "enphase_grid_import_cost_total", currency="USD") == pytest.approx(0.04 * PEAK)
    assert value(second, "enphase_grid_export_credit_total", currency="USD") == pytest.approx(0.02 * SELL)


def test_each_part_at_the_rate_of_its_time_and_kept_across_a_restart(sites) -> None:
    site = sites(TOU, _utc("2024-07-03 18:59"), timezone=NEW_YORK)  # 14:59 EDT: off-peak
    site.scrape()
    add_energy(site, "net-consumption", delivered_wh=100)
    site.scrape(after_s=30)  # 14:59:30: off-peak
    cost = OFF_PEAK * 0.1
    # The exporter is down from 15:00 to 16:30; 1 kWh flows meanwhile: priced when next seen,
    # at the peak rate in force then.
    site.restart(down_s=90 * 60)
    add_energy(site, "net-consumption", delivered_wh=1000)
    samples = site.scrape(after_s=1)
    cost += PEAK * 1.0
    assert value(samples, "enphase_grid_import_cost_total", currency="USD") == pytest.approx(cost)
    # the state file is the counters' kind: owner-only
    assert (site.state_dir / "money-site.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("configured", [None, Tariff("EUR", buy=Rates(flat=0.2))], ids=["none", "EUR"])
def test_energy_of_a_restart_is_priced_by_the_gateways_tariff_after_the_start_up(sites, configured) -> None:
    # The start-up's collection leaves the gateway's tariff for the next one: the energy that flowed
    # while the exporter was down waits for it, rather than being priced by the configuration's
    # tariff (in its currency) or not at all.
    site = sites(TOU, _utc("2024-07-03 18:59"), timezone=NEW_YORK, tariff=configured)
    site.scrape()
    site.restart(down_s=90 * 60)  # back at 16:30 EDT, peak
    add_energy(site, "net-consumption", delivered_wh=1000)
    site.start_up()
    samples = site.scrape(after_s=1)
    assert value(samples, "enphase_grid_import_cost_total", currency="USD") == pytest.approx(PEAK * 1.0)
    assert value(samples, "enphase_grid_import_cost_total", currency="EUR") is None


def test_energy_of_a_restart_is_priced_in_the_gateways_time_zone_after_the_start_up(
    sites, tmp_path, exporter_in_utc
) -> None:
    # The exporter runs in UTC (a container); the gateway reports Europe/London (BST, UTC+1), and
    # the configuration's time-of-use tariff prices 16:00-17:00 at the peak rate. The start-up's
    # collection leaves /home.json to the next one: the energy waits for the gateway's zone.
    config = tmp_path / "exporter.yml"
    config.write_text(
        "gateways:\n  - host: a\n    tariff:\n      currency: GBP\n      import: 0.10\n"
        '      periods:\n        - {start: "16:00", name: peak, import: 0.50}\n'
        '        - {start: "17:00", name: evening, import: 0.10}\n'
    )
    tariff = load_config(config, env={}).gateways[0].tariff
    site = sites("8.3.5169_ACB_inventory", _utc("2026-06-20 12:00"), tariff=tariff)

    def no_tariff_of_its_own(body: dict) -> None:
        body["tariff"]["single_rate"]["rate"] = 0
        body["tariff"]["seasons"] = []

    site.edit("admin_lib_tariff", no_tariff_of_its_own)
    site.scrape()
    site.restart(down_s=3.5 * 3600)  # back at 15:30 UTC, 16:30 in London: peak
    add_energy(site, "net-consumption", delivered_wh=1000)
    site.start_up()
    samples = site.scrape(after_s=1)
    assert value(samples, "enphase_gateway_utc_offset_seconds") == 3600
    assert value(samples, "enphase_grid_import_cost_total", currency="GBP") == pytest.approx(0.50)


def test_no_cost_where_no_meter_tells_import_from_export(sites) -> None:
    # 7.6.175_total: a total-consumption CT only (and prices in EUR)
    samples = sites("7.6.175_total", _utc("2024-07-03 12:00"), timezone="Europe/Amsterdam").scrape()
    assert value(samples, "enphase_tariff_price_per_kilowatt_hour", direction="import", currency="EUR")
    assert not [
        key for key in samples if key[0].startswith(("enphase_grid_import_cost", "enphase_grid_export"))
    ]


# --------------------------------------------------------------------------------------------
# Lifetimes that move with the CT, per-phase production from its channels


def test_twenty_wh_on_the_production_ct_move_the_lifetime_within_one_scrape(sites) -> None:
    site = sites(TOU, _utc("2024-07-03 16:00"))
    counter = "enphase_production_energy_joules_total"
    before = site.scrape()
    lifetime = value(before, counter, source="meter")
    assert lifetime == pytest.approx(3165834.272 * WH)  # production.json's own value
    add_energy(site, "production", delivered_wh=20)  # on the CT's first channel, L1
    after = site.scrape(after_s=60)  # production.json comes from the cache now
    assert value(after, counter, source="meter") - lifetime == pytest.approx(72_000.0)
    phase_counter = "enphase_production_phase_energy_joules_total"
    assert value(after, phase_counter, source="meter", phase="L1") - value(
        before, phase_counter, source="meter", phase="L1"
    ) == pytest.approx(72_000.0)

    # When production.json is read again, its own value stands (the gateway's: 30 Wh more now).
    def produced(body: dict) -> None:
        body["production"][1]["whLifetime"] += 30

    site.edit("production.json", produced)
    add_energy(site, "production", delivered_wh=10)
    reread = site.scrape(after_s=900)
    assert value(reread, counter, source="meter") == pytest.approx((3165834.272 + 30) * WH)


def test_l1_and_l2_production_from_the_ct_channels(sites) -> None:
    # production.json of 8.2.127 has no "lines"; its production CT has two channels in use.
    samples = sites(TOU, _utc("2024-07-03 16:00")).scrape()
    power = "enphase_production_phase_power_watts"
    assert value(samples, power, source="meter", phase="L1") == pytest.approx(856.031)
    assert value(samples, power, source="meter", phase="L2") == pytest.approx(858.394)
    assert value(samples, power, source="meter", phase="L3") is None
    energy = "enphase_production_phase_energy_joules_total"
    assert value(samples, energy, source="meter", phase="L1") == pytest.approx(1581746.293 * WH)


def test_no_always_zero_net_today_or_seven_day_series(sites) -> None:
    samples = sites(TOU, _utc("2024-07-03 16:00")).scrape()
    for name in ("enphase_consumption_energy_today_joules", "enphase_consumption_energy_seven_day_joules"):
        assert value(samples, name, measurement="net") is None
        assert value(samples, name, measurement="total") is not None


# --------------------------------------------------------------------------------------------
# The grid relay


def test_the_collars_opening_is_seen_within_one_scrape(sites) -> None:
    site = sites(COLLAR, _utc("2025-07-16 12:00"))
    assert value(site.scrape(), "enphase_grid_connected") == 1

    def open_relay(groups: list) -> None:
        for group in groups:
            for device in group["devices"]:
                if group["type"] == "COLLAR":
                    device["mid_state"] = "open"

    site.scrape(after_s=15)
    site.edit("ivp_ensemble_inventory", open_relay)
    assert value(site.scrape(after_s=15), "enphase_grid_connected") == 0


def test_the_dry_contact_settings_beside_the_relay_states(sites) -> None:
    samples = sites(COLLAR, _utc("2025-07-16 12:00")).scrape()
    assert value(samples, "enphase_dry_contact_closed", contact="NC1") == 0
    assert value(samples, "enphase_dry_contact_mode", contact="NC1", mode="manual") == 1
    assert value(samples, "enphase_dry_contact_type", contact="NC1", type="none") == 1
    assert value(samples, "enphase_dry_contact_soc_low_setting_ratio", contact="NC1") == pytest.approx(0.30)
    assert value(samples, "enphase_dry_contact_soc_high_setting_ratio", contact="NC1") == pytest.approx(0.70)
