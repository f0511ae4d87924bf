"""Protecting the gateway, proven through the exporter's real HTTP server: scrapes of /metrics and
/probe on loopback, the requests counted by the gateway itself.

The exporter runs in this process as ``cli.serve`` runs it (the harness of
``scripts/bench_scrapes.py``, which prints the same figures on the real clock). The gateways: the
project's demo gateway (always), and real captures replayed by ../shared's fake gateway (skipped
without it). Time passes by jumping the gateway clients' clocks: a cache lifetime runs out
without the test waiting for it, and cache ages are exact; threads, sockets and the scrape
deadlines are real.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import ROOT, SHARED, SHARED_FIXTURES, needs_shared
from exporter_fakes import samples, value

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL
from envoy_exporter.gateway.auth.token_keeper import CHECK_JWT_PATH

sys.path.insert(0, str(ROOT / "scripts"))
import bench_scrapes as bench

pytestmark = pytest.mark.e2e

# Read at most once in 10 s: they change with an installation or a firmware push only, or (the
# inverters) report every 5 minutes.
SLOW_PATHS = (
    "/info",
    "/api/v1/production/inverters",
    "/ivp/pdm/device_data",
    "/inventory.json",
    "/ivp/meters",
)
INVERTER_PATHS = ("/api/v1/production/inverters", "/ivp/pdm/device_data")
READINGS_PATH = "/ivp/meters/readings"
GRID_PATH = "/ivp/ensemble/inventory"  # the grid relay's state, on the readings' cadence


@pytest.fixture(
    scope="module",
    params=[
        "demo",
        # Token firmware, CT meters, batteries, and 404s on /ivp/pdm/device_data and /inventory.json
        pytest.param("8.3.1598_collar", marks=needs_shared),
    ],
)
def gateway(request: pytest.FixtureRequest) -> Iterator[bench.CountedGateway]:
    if request.param == "demo":
        # 10 ms an answer: a collection lasts long enough for concurrent scrapes to meet it
        counted: bench.CountedGateway = bench.CountingDemo(latency=0.01)
    else:
        counted = bench.CountingCapture(bench.load_fake_gateway(SHARED), SHARED_FIXTURES / request.param)
    yield counted
    counted.stop()


@dataclass
class Served:
    """A fresh exporter, its warm-up collection done, on a gateway shared by the module's tests."""

    gateway: bench.CountedGateway
    exporter: bench.Exporter
    clocks: bench.Clocks
    first: int  # requests the gateway had answered before this exporter started

    @property
    def name(self) -> str:
        return self.gateway.name

    def requests(self) -> list[bench.Request]:
        return self.gateway.seen()[self.first :]

    def asked_since(self, start: int) -> Counter[str]:
        """The paths asked since the gateway answered ``start`` requests of this exporter."""
        return Counter(r.path for r in self.requests()[start:])

    def get_up(self, *paths: str) -> None:
        """GET each path at once, one thread each, and expect the gateway up in every answer."""
        answers = bench.burst(self.exporter, list(paths))
        assert [status for status, _ in answers] == [200] * len(paths)
        for _, body in answers:
            assert value(samples(body), "enphase_up", gateway=self.name) == 1


@pytest.fixture
def served(gateway: bench.CountedGateway) -> Iterator[Served]:
    clocks, first = bench.Clocks(frozen=True), len(gateway.seen())
    exporter = bench.start(gateway, clocks)
    yield Served(gateway, exporter, clocks, first)
    exporter.close()


def one_collection(warm_up: list[bench.Request]) -> Counter[str]:
    """What a full collection asks once detection is done: every path that answered in the
    warm-up, once. The session /auth/check_jwt gave is kept, and a 404 is remembered."""
    return Counter(r.path for r in warm_up if r.status == 200 and r.path != CHECK_JWT_PATH)


def test_ten_concurrent_scrapes_cost_one_collection(served):
    warm_up = served.requests()
    # Every cache entry has expired, /info's too: a full collection is due.
    served.clocks.jump(bench.LONGEST_TTL)
    served.get_up(*["/metrics"] * 10)
    assert served.asked_since(len(warm_up)) == one_collection(warm_up)


def test_probe_shares_the_client_and_cache_of_metrics(served):
    warm_up = served.requests()
    served.clocks.jump(bench.LONGEST_TTL)
    probe = f"/probe?target={served.name}"
    # Racing each other at a cold cache, /metrics and /probe join one collection ...
    served.get_up(*["/metrics", probe] * 5)
    assert served.asked_since(len(warm_up)) == one_collection(warm_up)
    # ... and a /probe right after a /metrics that refreshed the CT readings (and, both gateways
    # having a system controller or Meter Collar, its relay state) asks nothing.
    served.clocks.jump(DEFAULT_CACHE_TTL["readings"])
    before = len(served.requests())
    served.get_up("/metrics")
    assert served.asked_since(before) == Counter({READINGS_PATH: 1, GRID_PATH: 1})
    before = len(served.requests())
    served.get_up(probe)
    assert served.asked_since(before) == Counter()


def test_ten_scrapes_in_ten_seconds_read_slow_endpoints_once_and_keep_data_fresh(served):
    asked: dict[str, list[int]] = {}  # path -> the seconds it was asked at; 0 is the warm-up
    seen: list[bench.Request] = []
    for second in range(11):
        if second:
            served.clocks.jump(1.0)
            served.get_up("/metrics")
        now = served.requests()
        for r in now[len(seen) :]:
            asked.setdefault(r.path, []).append(second)
        seen = now

    for path in SLOW_PATHS:
        assert len(asked.get(path, [])) <= 1, path
    assert any(path in asked for path in INVERTER_PATHS)
    # Refreshed when the lifetime runs out, not before: the CT readings every 5 s. Both gateways
    # are CT systems, where the readings carry every power: production.json adds only energy
    # figures and is read on the "energy" cadence (snapshot/plan.py); unless an AC battery reports
    # its power there, as the demo's does: then every 10 s.
    assert DEFAULT_CACHE_TTL["energy"] == 900 and DEFAULT_CACHE_TTL["production"] == 10
    assert DEFAULT_CACHE_TTL["readings"] == 5
    production = [
        second for path, seconds in asked.items() if path.startswith("/production") for second in seconds
    ]
    assert production == ([0, 10] if served.name == "demo" else [0])
    assert asked[READINGS_PATH] == [0, 5, 10]
    assert asked[GRID_PATH] == [0, 5, 10]
