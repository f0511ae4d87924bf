"""How many requests a scrape costs the gateway at a 60 s scrape interval, and that no power
value served is older than the scrape.

Each gateway is collected as a scrape would, 60 s apart on the client's injected clocks (the
requests and the sockets are real, the waiting is not): the project's own simulated gateway
always, and the real captures of a mixed fleet replayed by ../shared's fake gateway
(skipped without it). ``scripts/capture_report.py --interval 60`` prints the same figures for
every capture.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

import pytest
from conftest import ROOT, SHARED, SHARED_FIXTURES, needs_shared

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.demo.server import DemoGateway
from envoy_exporter.demo.simulator import Plant
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import Snapshot
from envoy_exporter.snapshot.outcome import Outcome

sys.path.insert(0, str(ROOT / "scripts"))
import capture_report

pytestmark = pytest.mark.e2e

INTERVAL = 60.0
# After the first (detecting) collection: a whole cycle of the 5- and 15-minute caches, so that the
# mean of the counts is the long-run one.
SCRAPES = 30
MIX = ("8.3.1598_collar", "7.6.175_with_cts_3phase", "8.2.4345_with_device_data", "5.0.62", "3.9.36")


def scrape_every_minute(
    client: GatewayClient, clocks: capture_report.Clocks, requests: Callable[[], int]
) -> tuple[list[int], list[Snapshot]]:
    """Requests the gateway answered per collection after the first, and each snapshot."""
    client.collect(timeout=60)
    counts, snapshots = [], []
    for _ in range(SCRAPES):
        clocks.mono += INTERVAL
        clocks.wall += INTERVAL
        before = requests()
        snapshots.append(client.collect(timeout=60))
        counts.append(requests() - before)
    return counts, snapshots


def assert_powers_are_fresh(snapshots: list[Snapshot]) -> None:
    """Every production and consumption power comes from a request of its own collection."""
    for snapshot in snapshots:
        outcome = {key: result.outcome for key, result in snapshot.endpoints.items()}
        assert snapshot.up
        if snapshot.production_source == "meter":
            if outcome["production_json"] is Outcome.CACHED:
                # production.json from its slow cadence: the powers are this scrape's CT readings
                assert outcome["meter_readings"] is Outcome.OK
                production_ct = next(m for m in snapshot.meters if m.config.measurement_type == "production")
                assert snapshot.production.total.power_w == production_ct.total.power_w
        elif snapshot.production_source == "inverters":
            assert outcome["api_v1_production"] is Outcome.OK
        else:
            assert outcome["production_html"] is Outcome.OK


def test_the_simulated_gateway_at_a_60_s_interval() -> None:
    gateway = DemoGateway(Plant(), "127.0.0.1", 0)
    seen: list[str] = []
    answer = gateway.handle

    def handle(target: str, authorization: str, cookie: str):
        seen.append(target)
        return answer(target, authorization, cookie)

    gateway.handle = handle  # type: ignore[method-assign]
    gateway.start()
    clocks = capture_report.Clocks()
    settings = GatewaySettings(name="demo", host=gateway.url, token=Secret(gateway.token))
    client = GatewayClient(settings, None, clock=clocks.clock, wall=clocks.now)
    try:
        counts, snapshots = scrape_every_minute(client, clocks, lambda: len(seen))
    finally:
        client.close()
        gateway.stop()
    # Every scrape: the CT readings, the battery powers and the storage aggregate, production.json
    # (an AC battery reports its power there) and the Ensemble inventory (the system controller's
    # relay). Every fifth: the microinverters and /inventory.json; every fifteenth the settings
    # (tariff, dry contacts, generator, /home.json).
    assert counts == ([5, 5, 5, 5, 7] * 2 + [5, 5, 5, 5, 11]) * 2
    assert_powers_are_fresh(snapshots)


@pytest.fixture(scope="module")
def fake_gateway():
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared is not beside the repo")
    sys.path.insert(0, str(SHARED / "conformance"))
    import fake_gateway

    return fake_gateway


def run_capture(fake_gateway, name: str) -> tuple[list[int], list[Snapshot]]:
    gateway = fake_gateway.Gateway(SHARED_FIXTURES / name)
    gateway.start(tls=False)
    clocks = capture_report.Clocks()
    settings = GatewaySettings(
        name=name, host=gateway.url, token=Secret(gateway.token) if gateway.token_era else None
    )
    client = GatewayClient(settings, None, clock=clocks.clock, wall=clocks.now)

    def answered() -> int:
        capture_report._settle(gateway)
        return len(gateway.requests)

    try:
        return scrape_every_minute(client, clocks, answered)
    finally:
        client.close()
        gateway.stop()


# Requests per scrape after the first collection, at a 60 s interval.
EXPECTED = {
    # readings, battery powers, storage aggregate and the Ensemble inventory (the Meter Collar's
    # relay); every fifth scrape the inverter list and /inventory.json; every fifteenth
    # production.json's energy figures and the four settings
    "8.3.1598_collar": ([4, 4, 4, 4, 5] * 2 + [4, 4, 4, 4, 10]) * 2,
    # readings; every fifth scrape the inverters; every fifteenth production.json and the tariff
    "7.6.175_with_cts_3phase": ([1, 1, 1, 1, 2] * 2 + [1, 1, 1, 1, 4]) * 2,
    # readings and the Ensemble inventory (an Enpower); every fifth device_data; every fifteenth
    # production.json, the tariff, the dry contacts and the generator
    "8.2.4345_with_device_data": ([2, 2, 2, 2, 3] * 2 + [2, 2, 2, 2, 7]) * 2,
    # /api/v1/production; the inverters every fifth; production.json (no AC battery) and the
    # tariff every fifteenth (production.json's first expiry falls one scrape later)
    "5.0.62": [2, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 3, 2, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 3],
    # /api/v1/production; the inverters every fifth
    "3.9.36": [1, 1, 1, 1, 2] * 6,
}


@needs_shared
def test_the_fleet_mix_costs_at_most_2_2_requests_per_scrape(fake_gateway) -> None:
    counts = {}
    for name in MIX:
        counts[name], snapshots = run_capture(fake_gateway, name)
        assert_powers_are_fresh(snapshots)
    assert counts == EXPECTED
    # Thirty scrapes hold every cadence (5 and 15 minutes) whole: their mean is the long-run one.
    assert statistics.mean(statistics.mean(c) for c in counts.values()) == pytest.approx(2.1733, abs=1e-4)
