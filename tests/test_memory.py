"""What a gateway keeps between collections: nothing that only the cycle collector could free.

The exporter freezes what lives after its collections out of the collector's sight
(``freezer``), so an object that is freed only by the cycle collector and happens to be alive
at a freeze is never freed: a collection that left a reference cycle behind would leak its
readings at every scrape.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable

import pytest
import requests_mock
from conftest import Clocks, free_port
from test_client import METERED, TOKEN_ERA, Gateway, client_for, token_for

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.counters import CounterKeeper
from envoy_exporter.snapshot.model import (
    WH,
    WRAP_J,
    Flow,
    InverterReading,
    Meter,
    MeterChannel,
    MeterConfig,
    Reading,
    Snapshot,
)

T0 = 1_750_000_000.0


@pytest.mark.parametrize("routes", [METERED, TOKEN_ERA], ids=["digest", "token"])
def test_a_collection_leaves_no_reference_cycle(routes) -> None:
    clocks = Clocks()
    with requests_mock.Mocker() as m:
        Gateway(m, dict(routes)).install()
        client = client_for(clocks, token=token_for(clocks) if routes is TOKEN_ERA else None)
        client.collect(timeout=5)  # detection, the keepers, the first of everything
        clocks.advance(61)

        def collect() -> None:
            assert client.collect(timeout=5).up
            clocks.advance(61)

        left = _cycles_left(collect)
        client.close()
    assert left == Counter()


@pytest.mark.parametrize("scheme", ["http://", ""], ids=["http", "https then http"])
def test_a_gateway_that_refuses_connections_leaves_no_reference_cycle(scheme) -> None:
    # A gateway switched off or moved: every collection fails to connect. The exceptions of a
    # failed connection refer to the frames that raised them, and a frame that keeps one of them
    # in a local closes a cycle, which a freeze would keep for good, at every scrape.
    client = GatewayClient(
        GatewaySettings(name="off", host=f"{scheme}127.0.0.1:{free_port()}", timeout=1.0), None
    )
    client.collect(timeout=5)

    def collect() -> None:
        assert not client.collect(timeout=5).up

    left = _cycles_left(collect)
    client.close()
    assert left == Counter()


def _cycles_left(collect: Callable[[], None], times: int = 3) -> Counter[str]:
    """The objects, by type, that only the cycle collector could free after ``collect`` ran
    ``times`` times: what a freeze would keep for good."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(times):
            collect()
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


def _snapshot(at: float, production_j: float) -> Snapshot:
    config = MeterConfig(1, "net-consumption", "enabled", "split", 2, "normal")
    return Snapshot(
        collected_at=at,
        production_source="inverters",
        production=Flow(
            total=Reading(power_w=1500.0, lifetime_j=production_j),
            phases={"L1": Reading(lifetime_j=4_000_000 * WH)},
        ),
        consumption_total=Flow(total=Reading(lifetime_j=-0.0)),
        meters=(
            Meter(
                config=config,
                total=MeterChannel(eid=1, delivered_j=700_000 * WH, received_j=400_000 * WH),
                phases={"L1": MeterChannel(eid=1, delivered_j=350_000 * WH)},
            ),
        ),
        inverters=(InverterReading(serial="482100000001", lifetime_j=600_000 * WH),),
    )


def test_counters_the_keeper_leaves_as_read_are_not_copied() -> None:
    keeper = CounterKeeper(None, clock=lambda: T0)
    keeper.apply("gw1", _snapshot(T0, 8_100_000 * WH))
    read = _snapshot(T0 + 60, 8_100_100 * WH)
    out = keeper.apply("gw1", read)
    assert out.production is read.production
    assert out.meters[0] is read.meters[0]
    assert out.inverters[0] is read.inverters[0]
    assert repr(out.consumption_total.total.lifetime_j) == "0.0"  # equal to -0.0, but not written alike
    # A wrapped production counter: that reading is corrected, the rest stays as read.
    wrapped = _snapshot(T0 + 120, 8_100_200 * WH - WRAP_J)
    out = keeper.apply("gw1", wrapped, max_power_w=6000)
    assert out.production.total.lifetime_j == pytest.approx(8_100_200 * WH, abs=1.0)
    assert out.production.total is not wrapped.production.total
    assert out.meters[0] is wrapped.meters[0]
    assert out.inverters[0] is wrapped.inverters[0]
